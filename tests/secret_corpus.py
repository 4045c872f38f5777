"""Synthetic secrets of the formats credential scanners (gitleaks, detect-secrets) look for, each in the
places code keeps them. Random but seeded: none of them is a real credential."""
from __future__ import annotations

import base64
import random
import string

LOWER, UPPER, DIGITS = string.ascii_lowercase, string.ascii_uppercase, string.digits
ALNUM = LOWER + UPPER + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    """n random characters; with letters and digits in the alphabet, at least one of each (as real keys)."""
    mixed = any(c.isdigit() for c in alphabet) and any(c.isalpha() for c in alphabet) and alphabet != HEX
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        if not mixed or (any(c.isdigit() for c in s) and any(c.isalpha() for c in s)):
            return s


# family -> secret maker
FAMILIES = {
    "aws_access_key_id": lambda r: "AKIA" + _r(r, UPPER + DIGITS, 16),
    "aws_secret_access_key": lambda r: _r(r, B64, 40),
    "github_pat_classic": lambda r: "ghp_" + _r(r, ALNUM, 36),
    "github_oauth": lambda r: "gho_" + _r(r, ALNUM, 36),
    "github_app": lambda r: "ghs_" + _r(r, ALNUM, 36),
    "github_fine_grained": lambda r: "github_pat_" + _r(r, ALNUM, 22) + "_" + _r(r, ALNUM, 59),
    "gitlab_pat": lambda r: "glpat-" + _r(r, URLSAFE, 20),
    "slack_bot": lambda r: "xoxb-" + _r(r, DIGITS, 12) + "-" + _r(r, DIGITS, 13) + "-" + _r(r, ALNUM, 24),
    "slack_webhook": lambda r: "https://hooks.slack.com/services/T" + _r(r, UPPER + DIGITS, 8) + "/B"
                               + _r(r, UPPER + DIGITS, 8) + "/" + _r(r, ALNUM, 24),
    "stripe_live": lambda r: "sk_live_" + _r(r, ALNUM, 24),
    "stripe_restricted": lambda r: "rk_live_" + _r(r, ALNUM, 24),
    "google_api": lambda r: "AIza" + _r(r, URLSAFE, 35),
    "openai": lambda r: "sk-proj-" + _r(r, URLSAFE, 48),
    "anthropic": lambda r: "sk-ant-api03-" + _r(r, URLSAFE, 80),
    "npm": lambda r: "npm_" + _r(r, ALNUM, 36),
    "pypi": lambda r: "pypi-AgEIcHlwaS5vcmc" + _r(r, URLSAFE, 60),
    "huggingface": lambda r: "hf_" + _r(r, ALNUM, 34),
    "sendgrid": lambda r: "SG." + _r(r, URLSAFE, 22) + "." + _r(r, URLSAFE, 43),
    "twilio": lambda r: "SK" + _r(r, HEX, 32),
    "mailgun": lambda r: "key-" + _r(r, HEX, 32),
    "shopify": lambda r: "shpat_" + _r(r, HEX, 32),
    "digitalocean": lambda r: "dop_v1_" + _r(r, HEX, 64),
    "vault": lambda r: "hvs." + _r(r, URLSAFE, 90),
    "telegram_bot": lambda r: _r(r, DIGITS, 10) + ":AA" + _r(r, URLSAFE, 33),
    "databricks": lambda r: "dapi" + _r(r, HEX, 32),
    "jwt": lambda r: "eyJhbGciOiJIUzI1NiJ9.eyJ" + _r(r, URLSAFE, 40) + "." + _r(r, URLSAFE, 43),
    "age_key": lambda r: "AGE-SECRET-KEY-1" + _r(r, UPPER + DIGITS, 58),
    "password": lambda r: _r(r, ALNUM + "!#%&*", 14),
    "hex_secret": lambda r: _r(r, HEX, 40),
}

# where a secret sits: (context name, template); {s} is the secret
CONTEXTS = [
    ("python_assign", 'API_KEY = "{s}"\n'),
    ("python_call", 'client = Client(token="{s}", timeout=10)\n'),
    ("js_const", "const apiKey = '{s}';\n"),
    ("json", '{{"api_key": "{s}", "region": "eu"}}\n'),
    ("yaml", "credentials:\n  secret_key: {s}\n"),
    ("dotenv", "SERVICE_TOKEN={s}\n"),
    ("shell_export", "export APP_SECRET={s}\n"),
    ("header", 'headers = {{"Authorization": "Bearer {s}"}}\n'),
]
# contexts for formats that are not tokens
PASSWORD_CONTEXTS = [
    ("url", 'DATABASE_URL = "postgresql://app:{s}@db.internal:5432/app"\n'),
    ("dsn", 'dsn = "host=db.internal port=5432 user=app password={s} dbname=app"\n'),
    ("netrc", "machine api.example.com login deploy password {s}\n"),
    ("python_pass", 'db_pass = "{s}"\n'),
    ("ini", "[database]\npassword = {s}\n"),
    ("basic_auth", 'headers = {{"Authorization": "Basic {s}"}}\n'),
]
WINDOW = 8  # a stored run of this many characters of a secret counts as a leak


def leaked(secret: str, stored: str) -> bool:
    return any(secret[i:i + WINDOW] in stored for i in range(max(1, len(secret) - WINDOW + 1)))


PEM = ("-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----\n")


def samples(seed: int = 0) -> list[tuple[str, str, str]]:
    """(family/context, text, secret) for every family in every context that suits it."""
    rng = random.Random(seed)
    out = []
    for family, make in FAMILIES.items():
        contexts = PASSWORD_CONTEXTS if family == "password" else CONTEXTS
        for ctx, template in contexts:
            secret = make(rng)
            if ctx == "basic_auth":  # what the header really carries: base64 of user:password
                secret = base64.b64encode(f"app:{secret}".encode()).decode()
            out.append((f"{family}/{ctx}", template.format(s=secret), secret))
    for kind in ("RSA ", "EC ", "OPENSSH ", ""):
        body = "\n".join(_r(rng, B64, 64) for _ in range(4))
        out.append((f"private_key/{kind.strip() or 'pkcs8'}", "KEY = '''" + PEM.format(kind=kind, body=body) + "'''\n",
                    body.split("\n")[1]))
    return out
