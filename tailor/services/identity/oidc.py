"""Talking to the OpenID Connect provider: discovery, keys, codes, device grants, ID tokens.

Knows nothing of the database or of HTTP frameworks; the HTTP client is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tailor.config import Settings

# Asymmetric algorithms only: "none" and the HMAC ones (keyed with the client secret) are
# never accepted for an ID token here.
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class ProviderError(Exception):
    """The provider could not be reached or answered something unusable."""


class TokenRefused(Exception):
    """An ID token (or the answer that carried it) failed a check; the message says which."""


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document Tailor uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    device_authorization_endpoint: str | None = None


@dataclass(frozen=True)
class DeviceGrant:
    """A device authorization: what the person enters where, and what the CLI polls with."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


@dataclass(frozen=True)
class Pending:
    """The person has not confirmed the device code yet; ask again after `interval` s."""

    interval: int


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcClient:
    """Tailor as a relying party of one provider (settings `oidc_*`).

    The discovery document is read once; the provider's keys are cached and read again when
    an ID token names a key id not among them (the provider rotated its keys).
    """

    def __init__(self, settings: Settings, http: httpx.Client) -> None:
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self._secret = secret.get_secret_value() if secret else None
        self.scopes = list(settings.oidc_scopes)
        self.groups_claim = settings.oidc_groups_claim
        self.skew_s = settings.oidc_clock_skew_s
        self._http = http
        self._lock = threading.RLock()
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None

    # --- discovery and keys

    def metadata(self) -> ProviderMetadata:
        """The provider's endpoints, from its discovery document (read once)."""
        with self._lock:
            if self._metadata is None:
                self._metadata = self._discover()
            return self._metadata

    def _discover(self) -> ProviderMetadata:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = self._get_json(url)
        # The document must speak for the issuer configured, or its keys prove nothing.
        if doc.get("issuer") != self.issuer:
            raise ProviderError(
                f"the discovery document names issuer {doc.get('issuer')!r}, "
                f"not the configured {self.issuer!r}"
            )
        try:
            return ProviderMetadata(
                issuer=str(doc["issuer"]),
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                device_authorization_endpoint=doc.get("device_authorization_endpoint"),
            )
        except KeyError as exc:
            raise ProviderError(f"the discovery document lacks {exc.args[0]}") from exc

    def _key_set(self, kid: str | None) -> KeySet:
        with self._lock:
            if self._keys is None or (kid is not None and not _has_kid(self._keys, kid)):
                self._keys = self._fetch_keys()
            return self._keys

    def _fetch_keys(self) -> KeySet:
        doc = self._get_json(self.metadata().jwks_uri)
        try:
            return KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"the provider's key set cannot be read: {exc}") from exc

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            resp = self._http.get(url)
        except httpx.HTTPError as exc:
            raise ProviderError(f"cannot reach the identity provider at {url}: {exc}") from exc
        if resp.status_code != 200:
            raise ProviderError(f"the identity provider answered {resp.status_code} at {url}")
        return _json_object(resp)

    # --- authorization code flow (console)

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        """Where to send the browser: the provider's sign-in, with PKCE, state and nonce."""
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return self.metadata().authorization_endpoint + "?" + urlencode(query)

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> str:
        """Redeem an authorization code; returns the ID token (not yet checked)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        answer = self._token_request(form)
        if "error" in answer:
            raise TokenRefused(f"the provider refused the code: {_error_text(answer)}")
        return _id_token_of(answer)

    # --- device authorization grant (CLI)

    def start_device(self) -> DeviceGrant:
        """Ask the provider for a device code and the code the person confirms."""
        endpoint = self.metadata().device_authorization_endpoint
        if not endpoint:
            raise ProviderError("the identity provider offers no device authorization grant")
        answer = self._post(endpoint, {"scope": " ".join(self.scopes)})
        if "error" in answer:
            raise ProviderError(f"the provider refused a device code: {_error_text(answer)}")
        try:
            return DeviceGrant(
                device_code=str(answer["device_code"]),
                user_code=str(answer["user_code"]),
                verification_uri=str(answer["verification_uri"]),
                verification_uri_complete=answer.get("verification_uri_complete"),
                expires_in=int(answer["expires_in"]),
                interval=int(answer.get("interval", 5)),
            )
        except (KeyError, ValueError) as exc:
            raise ProviderError(f"unusable device authorization answer: {exc}") from exc

    def poll_device(self, device_code: str) -> str | Pending:
        """The ID token once the person confirmed; `Pending` before; TokenRefused after a
        refusal or expiry."""
        answer = self._token_request(
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": device_code,
            }
        )
        error = answer.get("error")
        if error in ("authorization_pending", "slow_down"):
            return Pending(interval=10 if error == "slow_down" else 5)
        if error:
            raise TokenRefused(f"the device sign-in did not complete: {_error_text(answer)}")
        return _id_token_of(answer)

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        return self._post(self.metadata().token_endpoint, form)

    def _post(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        # A confidential client authenticates with HTTP Basic; a public one names itself.
        if self._secret is None:
            form = {**form, "client_id": self.client_id}
        try:
            if self._secret is None:
                resp = self._http.post(url, data=form)
            else:
                resp = self._http.post(url, data=form, auth=(self.client_id, self._secret))
        except httpx.HTTPError as exc:
            raise ProviderError(f"cannot reach the identity provider at {url}: {exc}") from exc
        if resp.status_code >= 500:
            raise ProviderError(f"the identity provider answered {resp.status_code} at {url}")
        return _json_object(resp)

    # --- ID tokens

    def verify_id_token(
        self, id_token: str, *, nonce: str | None, now: float | None = None
    ) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience, times and nonce hold.

        `nonce` None: the flow sent none (device grant), so the token must carry none either
        way it is not checked. `now` is for tests of expiry (seconds since the epoch).
        """
        try:
            header = jws.extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise TokenRefused(f"not a signed token: {exc}") from exc
        if header.get("alg") not in ALGORITHMS:
            raise TokenRefused(f"signature algorithm {header.get('alg')!r} is not accepted")
        keys = self._key_set(header.get("kid"))
        try:
            token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
        except JoseError as exc:
            raise TokenRefused(f"bad signature: {exc.description or exc}") from exc
        claims = dict(token.claims)
        self._check_claims(claims, nonce, time.time() if now is None else now)
        return claims

    def _check_claims(self, claims: dict[str, Any], nonce: str | None, now: float) -> None:
        if claims.get("iss") != self.issuer:
            raise TokenRefused(f"issued by {claims.get('iss')!r}, not by the configured provider")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if self.client_id not in audiences:
            raise TokenRefused("issued for another client (audience)")
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise TokenRefused("issued for several clients, and not authorised for this one")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise TokenRefused("the token has no expiry or issue time")
        if now > exp + self.skew_s:
            raise TokenRefused("the token has expired")
        if iat > now + self.skew_s:
            raise TokenRefused("the token was issued in the future (check the clocks)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenRefused("the token names no subject")
        if nonce is not None:
            sent = claims.get("nonce")
            if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
                raise TokenRefused("the nonce does not match this sign-in")

    def groups_of(self, claims: dict[str, Any]) -> list[str]:
        """The groups claim (configured name) as a list of names; none if absent."""
        value = claims.get(self.groups_claim)
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return sorted({g for g in value if isinstance(g, str)})
        return []


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _json_object(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError as exc:
        raise ProviderError(
            f"the identity provider answered non-JSON ({resp.status_code})"
        ) from exc
    if not isinstance(body, dict):
        raise ProviderError("the identity provider answered JSON that is not an object")
    return body


def _error_text(answer: dict[str, Any]) -> str:
    text = str(answer.get("error"))
    if answer.get("error_description"):
        text += f" ({answer['error_description']})"
    return text


def _id_token_of(answer: dict[str, Any]) -> str:
    token = answer.get("id_token")
    if not isinstance(token, str):
        raise TokenRefused("the provider sent no ID token (is 'openid' among the scopes?)")
    return token
