"""Tailor's own secret and PII detectors: what detect-secrets misses, and the fast common cases.

Each detector is a regex plus the group that holds the value to replace, the placeholder it
becomes and an optional check that rejects look-alikes. They run in the order listed: specific
shapes (key blocks, vendor tokens, URL credentials) before generic ones (assignments, entropy),
so a value is counted under its most precise kind.

Searching every file with every regex costs seconds per MB, so each detector names triggers,
and `regex` runs only on the lines a trigger flags (see `tailor.harvest.suspects`):
- `token:<kind>`: a run of 15+ token characters that starts with the detector's `prefix`;
- `re:<name>`: a literal-led regex from ANCHORS;
- anything else: a lower-case word.
A detector without triggers runs on the whole text.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

API_KEY = "<API_KEY>"
TOKEN = "<TOKEN>"
PASSWORD = "<PASSWORD>"
SECRET = "<SECRET>"
EMAIL = "<EMAIL>"
IP_ADDRESS = "<IP_ADDRESS>"
PRIVATE_KEY = "<PRIVATE_KEY>"
PLACEHOLDERS = (API_KEY, TOKEN, PASSWORD, SECRET, EMAIL, IP_ADDRESS, PRIVATE_KEY)

# Languages where `key: value` / `KEY=value` holds literal values rather than expressions.
CONFIG_LANGUAGES = frozenset({"YAML", "Shell", "TOML", "Dockerfile", "Makefile", "Markdown", "SQL"})


@dataclass(frozen=True)
class Detector:
    """One kind of secret: where it is, what replaces it, and what it must not be."""

    kind: str
    placeholder: str
    regex: re.Pattern[str]
    group: int = 0
    accept: Callable[[str], bool] | None = None
    config_only: bool = False
    triggers: tuple[str, ...] = ()
    # For vendor tokens: a regex the token's first characters match (see module docstring).
    prefix: str | None = None


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_FIELD_NAME = re.compile(r"[a-z_\-]*(?:passw(?:or)?d|pwd|secret|token|key)[a-z_\-]*")


def names_a_field(value: str) -> bool:
    """`password`, `api_key`, `secret-token`: a value that names a field, not a secret."""
    return _FIELD_NAME.fullmatch(value.strip().lower()) is not None


def _is_literal(value: str) -> bool:
    # Templates, references and placeholders are not secrets: ${X}, {{x}}, <X>, %(x)s, $X.
    v = value.strip()
    if len(v) < 3 or v[0] in "$<{%*(" or v.endswith(("}}", ">")):
        return False
    if names_a_field(v):
        return False  # `password_field = "password"` names a field, it holds no secret
    return v.lower() not in {"none", "null", "nil", "true", "false", "undefined", "required"}


def _secretish(value: str) -> bool:
    # Weak keywords (token, key, auth) name many ordinary strings: demand a key-like value.
    return (
        _is_literal(value)
        and len(value) >= 12
        and not any(ch.isspace() for ch in value)
        and any(ch.isdigit() for ch in value)
        and any(ch.isalpha() for ch in value)
    )


def high_entropy(value: str) -> bool:
    """A random-looking key: hex with mixed digits/letters, or base64-like above ~85% of max."""
    if any(s in value for s in ("//", "..", "__")) or value[0] in "./" or value.isdigit():
        return False
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        letters = any(c.isalpha() for c in value)
        return len(value) >= 16 and letters and shannon_entropy(value) >= 3.0
    if len(value) < 20 or not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    return shannon_entropy(value) > 0.85 * math.log2(min(len(value), 64))


def _routable_ipv4(value: str) -> bool:
    try:
        addr = ipaddress.IPv4Address(value)
    except ValueError:
        return False
    # Loopback, "any" and netmasks are configuration, not someone's address; four single
    # digits (1.2.3.4) are far more often a version than a host.
    if all(len(part) == 1 for part in value.split(".")):
        return False
    return not (addr.is_loopback or addr.is_unspecified or value.startswith("255."))


def _ipv6(value: str) -> bool:
    # Three or more groups with a digit: not a slice (`a[1::2]`) nor C++ scope (`std::map`).
    if sum(1 for g in value.split(":") if g) < 3 or not any(c.isdigit() for c in value):
        return False
    try:
        addr = ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return not (addr.is_loopback or addr.is_unspecified)


_STRONG_KEYS = (
    r"passw(?:or)?d|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|auth[_-]?token|access[_-]?token|refresh[_-]?token|client[_-]?secret|db[_-]?pass"
)
_WEAK_KEYS = r"token|key|auth|credentials?|signature|salt"
_ASSIGN = r"[\"']?\]?(?:\s*:\s*[A-Za-z_][\w\[\]., |]*?)?\s*(?:=|:=|:|=>)\s*"
_COMMON_TLDS = (
    r"(?:com|org|net|io|dev|ai|co|edu|gov|mil|info|biz|app|cloud|tech|me|us|uk|de|fr|nl|se"
    r"|ch|jp|cn|in|ru|br|ca|au|es|it|pl|be|at|dk|fi|no|ie|nz|za|kr|sg|hk|tw|il|[a-z]{2}\.[a-z]{2})"
)


def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _token(kind: str, placeholder: str, prefix: str, pattern: str) -> Detector:
    """A vendor token: a fixed prefix and a shape."""
    return Detector(kind, placeholder, _rx(pattern), triggers=(f"token:{kind}",), prefix=prefix)


# Literal-led regexes (fast to search) that flag lines for the detectors naming them.
ANCHORS: dict[str, re.Pattern[str]] = {
    "email": _rx(r"@[A-Za-z0-9\-]+\."),
    "ipv4": _rx(r"\.\d{1,3}\.\d{1,3}\."),
    "ipv6": _rx(r":[0-9A-Fa-f]{0,4}:"),
}

_STRONG_WORDS = ("pass", "pwd", "secret", "key", "token")

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        PRIVATE_KEY,
        _rx(
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:.*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|.*)",
            re.DOTALL,
        ),
    ),
    Detector("putty_private_key", PRIVATE_KEY, _rx(r"PuTTY-User-Key-File-\d:.*", re.DOTALL)),
    Detector(
        "url_credentials",
        PASSWORD,
        _rx(r"://[^\s:/@'\"`<>]+:([^\s@/'\"`<>]+)@"),
        1,
        _is_literal,
        triggers=("://",),
    ),
    _token("slack_webhook", TOKEN, r"hooks\.slack\.com", r"https://hooks\.slack\.com/[^\s\"'`<>]+"),
    _token(
        "aws_access_key_id",
        API_KEY,
        r"A3T|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA",
        r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)"
        r"[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    _token(
        "github_token",
        TOKEN,
        r"gh[pousr]_|github_pat_",
        r"(?:gh[pousr]_[A-Za-z0-9_]{36,255}|github_pat_\w{22,})",
    ),
    _token(
        "gitlab_token",
        TOKEN,
        r"gl[a-z]{2,6}-",
        r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glptt|glimt|gloas|glagent)-[\w\-]{20,}",
    ),
    _token("slack_token", TOKEN, r"xox", r"xox[abposre]-[A-Za-z0-9-]{10,}"),
    _token(
        "stripe_key",
        API_KEY,
        r"(?:sk|rk|pk|whsec)_(?:live|test)_",
        r"(?:sk|rk|pk|whsec)_(?:live|test)_[A-Za-z0-9]{16,}",
    ),
    _token("google_api_key", API_KEY, r"AIza", r"AIza[0-9A-Za-z_\-]{35}"),
    _token(
        "google_oauth",
        TOKEN,
        r"GOCSPX-|ya29\.",
        r"(?:GOCSPX-[\w\-]{20,}|ya29\.[\w\-]{20,})",
    ),
    _token(
        "openai_key",
        API_KEY,
        r"sk-",
        r"(?<![\w-])sk-(?:proj-|ant-|svcacct-|admin-)?(?=[\w\-]*\d)[\w\-]{20,}",
    ),
    _token("jwt", TOKEN, r"eyJ", r"eyJ[\w\-]{8,}\.eyJ[\w\-]{8,}\.[\w\-]{8,}"),
    _token(
        "twilio_key",
        API_KEY,
        r"(?:SK|AC)[0-9a-fA-F]{32}",
        r"(?<![A-Za-z0-9])(?:SK|AC)[0-9a-fA-F]{32}(?![A-Za-z0-9])",
    ),
    _token("sendgrid_key", API_KEY, r"SG\.", r"SG\.[\w\-]{16,32}\.[\w\-]{16,64}"),
    _token("npm_token", TOKEN, r"npm_", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    _token("pypi_token", TOKEN, r"pypi-", r"pypi-AgE[\w\-]{50,}"),
    _token("huggingface_token", TOKEN, r"hf_", r"(?<![\w])hf_[A-Za-z0-9]{30,}(?![\w])"),
    _token("mailgun_key", API_KEY, r"key-", r"(?<![\w-])key-[0-9a-f]{32}(?![\w])"),
    _token("shopify_token", TOKEN, r"shp", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    _token("digitalocean_token", TOKEN, r"do[por]_v1_", r"do[por]_v1_[a-f0-9]{64}"),
    _token("databricks_token", TOKEN, r"dapi", r"(?<![\w])dapi[a-f0-9]{32}(?![\w])"),
    _token("square_token", TOKEN, r"sq0", r"sq0(?:atp|csp)-[\w\-]{22,}"),
    # The run after the colon: `123456789:AA...`.
    _token("telegram_bot_token", TOKEN, r"AA", r"(?<!\d)\d{8,10}:AA[\w\-]{33}(?![\w])"),
    Detector(
        "azure_storage_key",
        API_KEY,
        _rx(r"AccountKey=([A-Za-z0-9+/=]{40,})"),
        1,
        _is_literal,
        triggers=("accountkey",),
    ),
    Detector(
        "authorization_header",
        TOKEN,
        _rx(r"(?i:bearer|basic)\s+([A-Za-z0-9._~+/\-]{20,}=*)"),
        1,
        high_entropy,
        triggers=("bearer", "basic"),
    ),
    Detector(
        "password_assignment",
        PASSWORD,
        _rx(rf"(?:{_STRONG_KEYS})\w*{_ASSIGN}([\"'`])([^\"'`\n]+?)\1", re.IGNORECASE),
        2,
        _is_literal,
        triggers=_STRONG_WORDS,
    ),
    Detector(
        "password_assignment",
        PASSWORD,
        _rx(rf"(?:{_STRONG_KEYS})\w*{_ASSIGN}([^\s\"'`,;#]+)", re.IGNORECASE),
        1,
        _is_literal,
        config_only=True,
        triggers=_STRONG_WORDS,
    ),
    Detector(
        "secret_assignment",
        SECRET,
        _rx(rf"(?:{_WEAK_KEYS})\w*{_ASSIGN}([\"'`])([^\"'`\n]+?)\1", re.IGNORECASE),
        2,
        _secretish,
        triggers=("token", "key", "auth", "cred", "signature", "salt"),
    ),
    Detector(
        "high_entropy_string",
        SECRET,
        _rx(r"([\"'`])([A-Za-z0-9+/=_\-.]{16,})\1"),
        2,
        high_entropy,
    ),
    Detector(
        "high_entropy_string",
        SECRET,
        _rx(r"^\s*(?:export\s+)?[A-Za-z_][\w.]*\s*[=:]\s*([A-Za-z0-9+/=_\-.]{16,})\s*$"),
        1,
        high_entropy,
        config_only=True,
        triggers=("=", ":"),
    ),
    Detector(
        "email",
        EMAIL,
        _rx(rf"(?<![\w.%+\-])[\w.%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.{_COMMON_TLDS}\b"),
        0,
        lambda v: not v.lower().endswith(("@example.com", "@example.org", "@example.net")),
        triggers=("re:email",),
    ),
    Detector(
        "ip_address",
        IP_ADDRESS,
        _rx(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"),
        0,
        _routable_ipv4,
        triggers=("re:ipv4",),
    ),
    Detector(
        "ip_address",
        IP_ADDRESS,
        _rx(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
        0,
        _ipv6,
        triggers=("re:ipv6",),
    ),
)
