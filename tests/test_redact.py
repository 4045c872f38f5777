import pytest

from server.telemetry.redact import (
    SECRET_KINDS,
    find_secrets,
    is_sensitive_path,
    redact,
    redact_count,
    redact_fim,
    redact_parts,
    shannon_entropy,
)

# Synthetic secrets in each standard format (none of them is a real credential).
SECRETS = {
    "aws_access_key_id": ('key_id = "AKIAZ3MPLE7Q2W4R6T8Y"', "AKIAZ3MPLE7Q2W4R6T8Y"),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY=Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVbNm12",
                              "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVbNm12"),
    "github_ghp": ('GH = "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"', "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"),
    "github_gho": ("auth(gho_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2)", "gho_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"),
    "github_ghs": ("t = 'ghs_Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8'", "ghs_Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8"),
    "github_pat": ("github_pat_11ABCDEFG0123456789_abcdefghijKLMNOPQRSTuvwxyz0123456789abcdefghijkl",
                   "github_pat_11ABCDEFG0123456789_abcdefghijKLMNOPQRSTuvwxyz"),
    "gitlab": ('gl = "glpat-Ab12Cd34Ef56Gh78Ij90"', "glpat-Ab12Cd34Ef56Gh78Ij90"),
    "slack": ("SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-123456789012"),
    "stripe": ('stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    "stripe_restricted": ("rk_live_51H8abcDEF0123456789xyz", "rk_live_51H8abcDEF0123456789xyz"),
    "google": ('maps_key = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"', "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    "openai": ('client = OpenAI(api="sk-proj-Ab3De5Gh7Jk9Lm1No3Pq5Rs7Tu9Vw")', "sk-proj-Ab3De5Gh7Jk9Lm1No3Pq5Rs7Tu9Vw"),
    "pem": ("KEY = '''-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq9Zx\nQ2w3E4r5T6y7U8i9O0p\n"
            "-----END RSA PRIVATE KEY-----'''", "MIIEpAIBAAKCAQEA7bq9Zx"),
    "pem_truncated": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA",
                      "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA"),
    "jwt": ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
    "password": ('db_password = "correct horse battery"', "correct horse battery"),
    "password_json": ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
    "password_annotated": ('password: str = "Tr0ub4dor&3"', "Tr0ub4dor&3"),
    "secret": ("CLIENT_SECRET = 'q8w7e6r5t4y3'", "q8w7e6r5t4y3"),
    "api_key": ('config["api_key"] = "live-9f8e7d6c5b4a"', "live-9f8e7d6c5b4a"),
    "token": ('github_token = "abc123def456ghi789"', "abc123def456ghi789"),
    "env_unquoted": ("export DB_PASSWORD=s3cr3t-v4lue-2024", "s3cr3t-v4lue-2024"),
    "url": ('engine = create_engine("postgresql://admin:Sup3rS3cret@db.internal:5432/app")', "Sup3rS3cret"),
    "high_entropy_b64": ('blob = "Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A="', "Zm9vYmFyQmF6UXV4MTIz"),
    "high_entropy_hex": ('salt = "8f3a9c2e71d04b5fa6e8c9d1b2f3a4e5"', "8f3a9c2e71d04b5fa6e8c9d1b2f3a4e5"),
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_redacts_standard_formats(name):
    text, secret = SECRETS[name]
    out, n = redact_count(text)
    assert secret not in out, out
    assert "<REDACTED:" in out and n >= 1


def test_kinds_are_named():
    assert redact('k = "AKIAZ3MPLE7Q2W4R6T8Y"') == 'k = "<REDACTED:aws_access_key_id>"'
    assert redact("x = 'ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8'") == "x = '<REDACTED:github_token>'"
    assert redact('password = "hunter2hunter2"') == 'password = "<REDACTED:secret>"'
    assert redact("postgres://bob:pa55w0rd@db/x") == "postgres://bob:<REDACTED:url_password>@db/x"
    assert "private_key" in SECRET_KINDS and "jwt" in SECRET_KINDS


def test_everything_around_a_secret_is_kept():
    text = 'def connect():\n    password = "hunter2hunter2"\n    return db.connect(user="app", password=password)\n'
    out = redact(text)
    assert out == text.replace("hunter2hunter2", "<REDACTED:secret>")


def test_secret_split_by_the_cursor():
    prefix, suffix = 'AWS_KEY = "AKIAZ3MP', 'LE7Q2W4R6T8Y"\nprint(AWS_KEY)\n'
    assert redact(prefix) == prefix and redact(suffix) == suffix  # neither half alone looks like a key
    p, c, s, n = redact_fim(prefix, "", suffix)
    assert n == 1 and "AKIAZ3MP" not in p and "LE7Q2W4R6T8Y" not in s
    assert p == 'AWS_KEY = "<REDACTED:aws_access_key_id>' and s.endswith('"\nprint(AWS_KEY)\n')
    # completed by the model
    p, c, s, n = redact_fim('token = "ghp_A1b2C3d4E5f6G7h8I9j0', 'K1l2M3n4O5p6Q7r8"', "\n")
    assert n == 1 and "ghp_" not in p and "K1l2" not in c
    # cut by the cursor while a completion sits in between
    p, c, s, n = redact_fim('k = "AKIAZ3MP', "x", 'LE7Q2W4R6T8Y"')
    assert "AKIAZ3MP" not in p and "LE7Q2W4R6T8Y" not in s


def test_spans():
    text = 'a = "AKIAZ3MPLE7Q2W4R6T8Y"; password = "hunter2hunter2"'
    spans = find_secrets(text)
    assert [k for _, _, k in spans] == ["aws_access_key_id", "secret"]
    assert text[spans[1][0]:spans[1][1]] == "hunter2hunter2"
    assert redact_parts(["x = 1", "y = 2"]) == (["x = 1", "y = 2"], 0)


ORDINARY_CODE = """\
import os
import hashlib
from dataclasses import dataclass

MAX_TOKENS = 4096
DEFAULT_TOKEN_LIMIT = 512
SECRET_KEY = os.environ["SECRET_KEY"]
api_key = os.getenv("API_KEY")
password = getpass.getpass("Password: ")
token = "return"
token_type = "bearer"
password_hint = "the name of your first pet"
KEYWORDS = ["def", "class", "return", "lambda", "yield"]


@dataclass
class Token:
    kind: str
    text: str


def tokenize(source: str) -> list[Token]:
    tokens = []
    for token in source.split():
        if token == "def":
            tokens.append(Token("keyword", token))
    return tokens


def get_secret(name: str) -> str:
    return vault.read(f"secret/data/{name}")["data"]


def connect(user, password, host):
    url = f"https://{user}:{password}@{host}/api"
    legacy = "http://%s:%s@%s" % (user, password, host)
    return requests.get("https://example.com/api/v1/items?page=2", auth=(user, password))


request_id = "550e8400-e29b-41d4-a716-446655440000"
commit = "a1b2c3d"
path = "/usr/local/lib/python3.11/site-packages"
message = "Please enter your password and try again"
label = "sk-button-primary-large-variant"
class_name = "ThisIsAnOrdinaryCamelCaseName"
digest = hashlib.sha256(data).hexdigest()
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
logger.info("token=%s refreshed", token_id)
if password == confirm_password:
    save(password=password)
"""


def test_no_false_positives_on_ordinary_code():
    assert redact(ORDINARY_CODE) == ORDINARY_CODE
    for line in ORDINARY_CODE.splitlines():
        assert redact(line) == line


def test_placeholders_are_not_secrets():
    for text in ('password = "${DB_PASSWORD}"', 'password = "<your password>"', "api_key = '{{ api_key }}'",
                 'password = "********"', 'secret = "changeme"', "PASSWORD=$DB_PASSWORD"):
        assert redact(text) == text


def test_empty_and_large_inputs():
    assert redact("") == ""
    big = ORDINARY_CODE * 40 + 'x = "AKIAZ3MPLE7Q2W4R6T8Y"\n' + "a." * 20000
    out = redact(big)
    assert "AKIAZ3MPLE7Q2W4R6T8Y" not in out and out.startswith(ORDINARY_CODE)


def test_entropy():
    assert shannon_entropy("") == 0
    assert shannon_entropy("aaaa") == 0
    assert abs(shannon_entropy("abcd") - 2.0) < 1e-9


@pytest.mark.parametrize("path", [
    ".env", "/home/u/project/.env", "/p/.env.local", "/p/.env.production", "C:\\work\\app\\.env",
    "/p/certs/server.pem", "/p/tls/private.key", "/home/u/.ssh/id_rsa", "/home/u/.ssh/config",
    "/home/u/id_rsa.pub", "/home/u/id_ed25519", "/home/u/.aws/credentials", "/home/u/.aws/config",
    "/home/u/.netrc", "/p/.npmrc", "/p/store.p12", "/p/cert.pfx", "/p/credentials.json", "/p/credentials",
    "/home/u/.pypirc", "/home/u/.git-credentials", "/p/secrets.yaml", "/p/prod.tfvars", "/P/SERVER.PEM",
    "file:///home/u/project/.env", "file:///home/u/.ssh/known_hosts", "/home/u/.gnupg/pubring.kbx",
    "/p/config/master.key", "/home/u/.kube/config", "/home/u/.docker/config.json",
])
def test_sensitive_paths(path):
    assert is_sensitive_path(path)


@pytest.mark.parametrize("path", [
    "", None, "/p/app.py", "/p/src/keyboard.ts", "/p/environment.py", "/p/env/lib/x.py", "/p/monkey.py",
    "/p/README.md", "/p/tokens.py", "/p/src/auth/password_reset.py", "file:///p/main.go", "/p/keys.py",
    "/p/secret_santa/app.py",
])
def test_ordinary_paths(path):
    assert not is_sensitive_path(path)


TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.mark.parametrize("cut", [5, 12, 20, 30, len(TOKEN) - 1])
@pytest.mark.parametrize("completion", ['"', '"\n', "", 'x"', '"\nprint(GITHUB_TOKEN)'])
def test_no_character_of_a_secret_split_by_the_cursor_is_stored(cut, completion):
    """The probe's leak: the cursor 12 characters into a GitHub token and a completion that closes the
    string made the first pass redact a shorter secret and the second miss the tail in the suffix."""
    line = f'GITHUB_TOKEN = "{TOKEN}"\n'
    at = line.index(TOKEN) + cut
    p, c, s, n = redact_fim(line[:at], completion, line[at:] + "x = 1\n")
    stored = p + c + s
    assert n >= 1 and TOKEN[:cut][-4:] not in p and TOKEN[cut:][:4] not in s, stored
    assert "x = 1" in s


@pytest.mark.parametrize("text,secret", [
    ('headers = {"Authorization": "Bearer abcDEF123ghiJKL456mnoPQR"}', "abcDEF123ghiJKL456mnoPQR"),
    ('DSN = "host=db.internal port=5432 password=Hunter2Pass dbname=app"', "Hunter2Pass"),
    ("machine api.example.com login deploy password s3cr3tNetrc", "s3cr3tNetrc"),
    ("machine api.example.com\n  login deploy\n  password s3cr3tNetrc\n", "s3cr3tNetrc"),
    ('db_pass = "correct-horse-battery"', "correct-horse-battery"),
])
def test_probe_formats_are_redacted(text, secret):
    assert secret not in redact(text)
