"""Secrets at rest: API token hashing and credential encryption."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken

TOKEN_PREFIX = "tlr_"
VISIBLE_PREFIX_LEN = 12


def new_api_token() -> str:
    """A fresh bearer token; only its hash is ever stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of a token: tokens carry 256 bits of entropy, so no slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def endpoint_token(key: str, team: str) -> str:
    """The bearer token the gateway sends to `team`'s endpoint pods.

    Derived from the platform's endpoint-token key (HMAC, one-way), so that the operator,
    which writes it into the team namespace's Secret, and the gateway, which sends it, agree
    without the gateway reading Secrets; each pod holds its own team's token only, which
    opens no other team's pods.
    """
    mac = hmac.new(key.encode(), b"tailor-endpoint-token:" + team.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def job_token(key: str, job_uid: str) -> str:
    """The bearer token a cluster job's pods report its events with (it writes that job only).

    Derived like `endpoint_token` (HMAC of the job id with the platform's job-token key, its
    own domain prefix): the operator writes it into the job's Secret and the API recomputes
    it, so no token is stored and none opens another job.
    """
    mac = hmac.new(key.encode(), b"tailor-job-token:" + job_uid.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def token_matches(presented: str, expected: str) -> bool:
    """Whether two tokens are equal, compared in constant time."""
    return hmac.compare_digest(presented.encode(), expected.encode())


def visible_prefix(token: str) -> str:
    """The part of a token safe to show in lists, so a person can tell tokens apart."""
    return token[:VISIBLE_PREFIX_LEN]


class CredentialCipher:
    """Encrypts repository credentials with a key kept outside the database."""

    def __init__(self, key_material: str) -> None:
        digest = hashlib.sha256(("tailor-credentials:" + key_material).encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> bytes:
        """Ciphertext for `plaintext`."""
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        """Plaintext, or ValueError when the key changed or the data is corrupt."""
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise ValueError(
                "credential cannot be decrypted with the configured secret key"
            ) from exc


# What every reverse proxy and ingress controller adds to a request it passes on.
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded")


def forwarded(headers: Mapping[str, str]) -> bool:
    """Whether a proxy passed this request on (`headers` as Starlette's: lower-case lookup)."""
    return any(h in headers for h in FORWARDED_HEADERS)


def may_scrape(headers: Mapping[str, str], client_host: str | None, token: str | None) -> bool:
    """Whether a caller may read /metrics, which names every team and adapter it counts.

    With a metrics `token` set, the caller must send it as a bearer token; without one, only
    a caller on this machine, not through a proxy (a local Prometheus, an operator's curl).
    """
    if token:
        scheme, _, sent = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token_matches(sent.strip(), token)
    if forwarded(headers) or client_host is None:
        return False
    try:
        return ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False
