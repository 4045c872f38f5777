"""Secret redaction and sensitive-file detection for locally stored training telemetry.

`redact(text)` replaces well-known credential formats with `<REDACTED:kind>` before any raw code is
written to disk; `is_sensitive_path(path)` says whether a file is one whose content must never be stored
(dotenv files, keys, SSH/AWS/GnuPG directories, credential stores...). Both are deliberately conservative:
a false positive costs a few characters of training data, a false negative leaks a secret.

Pure stdlib, no I/O.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

__all__ = [
    "SECRET_KINDS",
    "find_secrets",
    "is_sensitive_path",
    "redact",
    "redact_count",
    "redact_fim",
    "redact_parts",
    "shannon_entropy",
]

# Placeholders in configuration templates that are not secrets.
_PLACEHOLDER = re.compile(
    r"^(?:\$\{?[\w.-]*\}?|\{\{.*\}\}|<[^<>]*>|%\(?\w*\)?s|\*+|x+|\.{3,}|your[\w-]*|changeme|none|null|"
    r"true|false|redacted)$",
    re.IGNORECASE)

_B64_CHARS = "A-Za-z0-9+/=_-"
_HEX_CHARS = "0-9a-fA-F"


def shannon_entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _tag(kind: str) -> str:
    return f"<REDACTED:{kind}>"


# --- whole-match patterns, most specific first --------------------------------------------------------
# Each entry: (kind, compiled pattern). The whole match is replaced by the tag.
_WHOLE: list[tuple[str, re.Pattern[str]]] = [
    # PEM private keys; a block cut off by the end of the text (prefix ends inside it) is redacted too.
    ("private_key", re.compile(
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        re.DOTALL)),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b")),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b")),
    ("github_token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b")),
    ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("slack_token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}")),
    ("slack_webhook", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}")),
    ("stripe_key", re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    # OpenAI-style keys (sk-..., sk-proj-...); a digit is required so kebab-case names do not match.
    ("openai_key", re.compile(r"\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}")),
    ("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("pypi_token", re.compile(r"\bpypi-AgE[A-Za-z0-9_-]{50,}")),
    ("huggingface_token", re.compile(r"\bhf_[A-Za-z0-9]{34,}\b")),
    ("sendgrid_key", re.compile(r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")),
    ("twilio_key", re.compile(r"\bSK[0-9a-f]{32}\b")),
    ("mailgun_key", re.compile(r"\bkey-[0-9a-f]{32}\b")),
    ("shopify_token", re.compile(r"\bshp(?:at|ss|ca|pa)_[0-9a-fA-F]{32}\b")),
    ("digitalocean_token", re.compile(r"\bdo[opr]_v1_[0-9a-f]{64}\b")),
    ("vault_token", re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}")),
    ("telegram_bot_token", re.compile(r"\b\d{8,10}:AA[A-Za-z0-9_-]{33}\b")),
    ("databricks_token", re.compile(r"\bdapi[0-9a-f]{32}\b")),
    ("age_secret_key", re.compile(r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b")),
]

# --- value-only patterns: group "v" is replaced, the rest (the name, the quotes) is kept ----------------
_STRONG_NAMES = (r"password|passwd|passphrase|pwd|(?:\b|(?<=[_-]))pass\b|secret|secret[_-]?key|client[_-]?secret|"
                 r"api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|"
                 r"bearer[_-]?token|session[_-]?token|credentials?")
_ANNOTATION = r"(?:[ \t]*:[ \t]*[A-Za-z_][\w\[\]., |]{0,40}?)?"  # `password: str = "..."`
_VALUE: list[tuple[str, re.Pattern[str]]] = [
    # aws_secret_access_key = "...40 chars..." (quoted or not; env files, ini, code)
    ("aws_secret_access_key", re.compile(
        r"(?i:aws[_-]?secret(?:[_-]?access)?[_-]?key)[\"']?\s*(?:[:=]|:=|=>)\s*[\"']?(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])")),
    # URLs with credentials: scheme://user:password@host -> the password is redacted.
    ("url_password", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^/\s:@'\"]{1,256}:(?P<v>[^/\s@'\"]+)@")),
    # Generic assignments of quoted strings to secret-looking names: password = "...", "api_key": '...'.
    ("secret", re.compile(
        r"(?i:" + _STRONG_NAMES + r")[\"']?\]?" + _ANNOTATION + r"\s*(?:[:=]|:=|==|=>|\+=)\s*[rbuf]?"
        r"(?P<q>[\"'`])(?P<v>[^\"'`\n]{4,}?)(?P=q)")),
    # ...ending in "token" (github_token = "..."): stricter, tokenizers are full of `token = "return"`.
    ("token", re.compile(
        r"(?i:token)[\"']?\]?" + _ANNOTATION + r"\s*(?:[:=]|:=|=>)\s*[rbuf]?"
        r"(?P<q>[\"'`])(?P<v>(?=[^\"'`\s]*\d)[^\"'`\s]{12,})(?P=q)")),
    # HTTP credentials: Authorization: Bearer <token> / Basic <base64>
    ("bearer_token", re.compile(r"(?i:\b(?:bearer|basic))[ \t]+(?P<v>[A-Za-z0-9._~+/=-]{16,})")),
    # key=value inside connection strings (libpq DSN, ODBC), no spaces: host=db password=s3cret dbname=app
    ("dsn_password", re.compile(r"(?i:(?<![\w.])(?:password|passwd|pwd))=(?P<v>[^\s'\";,()]{4,})")),
    # .netrc: machine host login user password secret (on one line or its own)
    ("netrc_password", re.compile(r"(?m)(?:\b(?:machine|login|default)\b.*?[ \t]|^[ \t]*)password[ \t]+(?P<v>\S+)")),
    # Unquoted YAML / ini / properties values on a line of their own: `secret_key: v`, `password = v`
    ("secret", re.compile(
        r"(?m)^[ \t]*[\w.-]*(?i:" + _STRONG_NAMES + r"|token)[\w.-]*[ \t]*[:=][ \t]*"
        r"(?P<v>[^\s'\"`#,;(){}\[\]<>]{8,})[ \t]*$")),
    # Unquoted env / shell style at the start of a line: export DB_PASSWORD=s3cr3t-v4lue
    ("secret", re.compile(
        r"(?m)^[ \t]*(?:export[ \t]+)?[A-Z0-9_]{0,64}(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY|ACCESS_KEY|"
        r"PRIVATE_KEY|CREDENTIALS?)[ \t]*=[ \t]*(?P<v>[^\s'\"$(){}\[\],;#`]{8,})")),
]

_QUOTED = re.compile(r"(?P<q>[\"'`])(?P<v>[" + _B64_CHARS + r"]{20,})(?P=q)")
_HEX_ONLY = re.compile(r"[" + _HEX_CHARS + r"]+")
_IDENTIFIER_LIKE = re.compile(r"[A-Za-z_][A-Za-z_.]*")

SECRET_KINDS = tuple(sorted({k for k, _ in _WHOLE} | {k for k, _ in _VALUE}
                            | {"high_entropy_base64", "high_entropy_hex"}))


def _is_placeholder(v: str) -> bool:
    v = v.strip()
    return (not v or "<REDACTED:" in v or bool(_PLACEHOLDER.match(v)) or len(set(v)) == 1)


def _entropy_kind(v: str) -> str | None:
    if _HEX_ONLY.fullmatch(v):
        if len(v) >= 32 and shannon_entropy(v) > 3.0 and not v.isdigit():
            return "high_entropy_hex"
        return None
    if len(v) >= 20 and shannon_entropy(v) > 4.5:
        return "high_entropy_base64"
    return None


def find_secrets(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping `(start, end, kind)` spans of the secrets in `text`, in order."""
    if not text:
        return []
    spans: list[tuple[int, int, str]] = []
    for kind, pat in _WHOLE:
        spans += [(m.start(), m.end(), kind) for m in pat.finditer(text)]
    for kind, pat in _VALUE:
        for m in pat.finditer(text):
            v = m.group("v")
            if _is_placeholder(v):
                continue
            if kind == "url_password" and v.startswith(("$", "{", "%", "<")):
                continue
            if kind == "secret" and "q" not in pat.groupindex:  # unquoted (env, YAML, ini)
                if _IDENTIFIER_LIKE.fullmatch(v) or v.replace(".", "").isdigit():
                    continue
            if kind == "dsn_password" and _IDENTIFIER_LIKE.fullmatch(v) and text[m.end("v"):m.end("v") + 1] in (
                    ",", ")", "\n", ""):
                continue  # a keyword argument passing a variable: connect(password=password)
            spans.append((*m.span("v"), kind))
    for m in _QUOTED.finditer(text):
        kind = _entropy_kind(m.group("v"))
        if kind is not None:
            spans.append((*m.span("v"), kind))
    spans.sort(key=lambda t: (t[0], -t[1]))
    merged: list[tuple[int, int, str]] = []
    for st, en, kind in spans:
        if merged and st < merged[-1][1]:
            if en > merged[-1][1]:
                merged[-1] = (merged[-1][0], en, merged[-1][2])
            continue
        merged.append((st, en, kind))
    return merged


def _shares(parts: Sequence[str], spans: list[tuple[int, int, str]]) -> list[list[tuple[int, int, str]]]:
    """Each part's share of spans found in the parts joined: (start, end, kind) in the part's own offsets."""
    out, base = [], 0
    for part in parts:
        hi = base + len(part)
        out.append([(max(st, base) - base, min(en, hi) - base, kind) for st, en, kind in spans
                    if st < hi and en > base])
        base = hi
    return out


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    """`text` with each span (overlapping ones merged) replaced by its tag."""
    pieces, pos = [], 0
    for st, en, kind in sorted(spans):
        if en <= pos:
            continue
        if st < pos:  # overlaps the previous span: extend it
            st = pos
        else:
            pieces += [text[pos:st], _tag(kind)]
        pos = en
    pieces.append(text[pos:])
    return "".join(pieces)


def redact_parts(parts: Sequence[str]) -> tuple[list[str], int]:
    """Redact texts that are adjacent in a document (e.g. prefix, completion, suffix) as one text, so a
    secret split between them is still found; each part is returned with its share replaced by the tag."""
    spans = find_secrets("".join(parts))
    return [_replace(part, share) for part, share in zip(parts, _shares(parts, spans))], len(spans)


def redact_count(text: str) -> tuple[str, int]:
    """Redact `text`; also return how many secrets were replaced."""
    (out,), n = redact_parts([text])
    return out, n


def redact(text: str) -> str:
    """Replace secrets in `text` with `<REDACTED:kind>`; ordinary code is returned unchanged."""
    return redact_count(text)[0]


def redact_fim(prefix: str, completion: str, suffix: str) -> tuple[str, str, str, int]:
    """Redact a fill-in-the-middle triple: secrets found as the document will read (prefix + completion +
    suffix) and as it reads now (prefix + suffix, so a secret the cursor splits is caught whatever the
    completion does), both found on the original text, then replaced together. Returns the three texts
    and the number of secrets found."""
    accepted = find_secrets(prefix + completion + suffix)
    now = find_secrets(prefix + suffix)
    (pa, ca, sa), (pn, sn) = _shares([prefix, completion, suffix], accepted), _shares([prefix, suffix], now)
    cut, grown = len(prefix), len(completion)
    moved = [(st if st < cut else max(cut, st - grown), en if en <= cut else max(cut, en - grown))
             for st, en, _ in accepted]  # the accepted view's spans, placed in the present text
    extra = sum(1 for st, en, _ in now if not any(a < en and st < b for a, b in moved))
    return (_replace(prefix, pa + pn), _replace(completion, ca), _replace(suffix, sa + sn),
            len(accepted) + extra)


# --- sensitive files ----------------------------------------------------------------------------------
_SENSITIVE_DIRS = {".ssh", ".aws", ".gnupg", ".gpg", ".azure", ".kube", ".docker", ".password-store",
                   ".secrets", "secrets"}
_SENSITIVE_NAMES = {".netrc", "_netrc", ".npmrc", ".yarnrc", ".yarnrc.yml", ".pypirc", ".pgpass", ".my.cnf",
                    ".git-credentials", ".htpasswd", ".dockercfg", ".boto", ".s3cfg", "credentials",
                    "credentials.json", "credentials.yml", "credentials.yaml", "credentials.xml",
                    "credentials.csv", "client_secret.json", "client_secrets.json", "secrets.json",
                    "secrets.yml", "secrets.yaml", "secrets.toml", "master.key", "terraform.tfstate",
                    "terraform.tfstate.backup", "known_hosts", "authorized_keys", "keystore.properties",
                    "local.properties", "wp-config.php", ".vault-token", "kubeconfig"}
_SENSITIVE_PREFIXES = (".env", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "credentials",
                       "service-account", "service_account")
_SENSITIVE_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".kdbx", ".ppk", ".asc", ".gpg",
                       ".pgp", ".crt.key", ".tfvars", ".tfstate", ".ovpn", ".der", ".p8", ".secret",
                       ".secrets", ".htpasswd", ".netrc")


def _to_path(path: str) -> str:
    if "://" in path:
        u = urlparse(path)
        path = unquote(u.path) if u.scheme in ("file", "vscode-remote", "vscode-userdata") else unquote(u.path or path)
    return path.replace("\\", "/")


def is_sensitive_path(path: str | None) -> bool:
    """True for files whose content must never be stored raw: `.env*`, `*.pem`, `*.key`, `id_rsa*`, `.netrc`,
    `.npmrc`, `*.p12`, `*.pfx`, credentials files, anything under `.ssh/`, `.aws/`, `.gnupg/`... Accepts a
    path or a URI (`file:///...`); case-insensitive."""
    if not path:
        return False
    p = PurePosixPath(_to_path(str(path)).lower())
    name = p.name
    if not name:
        return False
    if any(part in _SENSITIVE_DIRS for part in p.parts[:-1]):
        return True
    if "gcloud" in p.parts[:-1] and name.endswith(".json"):
        return True
    return (name in _SENSITIVE_NAMES or name.startswith(_SENSITIVE_PREFIXES)
            or name.endswith(_SENSITIVE_SUFFIXES))
