"""What single sign-on refuses: a replayed state, a wrong nonce, bad ID tokens, another issuer."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from tailor.db.models import User, WebSession
from tailor.services.identity.oidc import OidcClient, TokenRefused
from tests.identity.conftest import (
    SsoApp,
    headless_sign_in,
    oidc_settings,
    provider_id_token,
)
from tests.support.idp import IdentityProvider, walk_to


def _sessions(app: SsoApp) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(WebSession)) or 0


def _users(app: SsoApp, email: str) -> int:
    with app.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(User).where(User.email == email)) or 0
        )


@pytest.fixture
def client(sso: SsoApp) -> Iterator[OidcClient]:
    """A relying party configured like the app (its own key cache)."""
    with httpx.Client(timeout=10) as http:
        yield OidcClient(oidc_settings(sso.settings.workspace, sso.idp), http)


def test_a_replayed_state_is_refused_and_opens_no_session(sso: SsoApp) -> None:
    sso.idp.person("eve", "eve@example.com", [])
    with httpx.Client() as http:
        start = http.get(sso.url + "/console/sign-in/sso")
        callback = walk_to(http, start.headers["location"], "eve", sso.callback)
        assert http.get(callback).status_code == 303
        before = _sessions(sso)
        again = http.get(callback)
    assert again.status_code == 400
    assert "already used" in again.text
    assert _sessions(sso) == before


def test_a_callback_in_another_browser_is_refused(sso: SsoApp) -> None:
    sso.idp.person("fay", "fay@example.com", [])
    with httpx.Client() as victim, httpx.Client() as attacker:
        start = attacker.get(sso.url + "/console/sign-in/sso")
        callback = walk_to(attacker, start.headers["location"], "fay", sso.callback)
        answer = victim.get(callback)  # login CSRF: the attacker's sign-in in the victim's browser
    assert answer.status_code == 400
    assert "another browser" in answer.text
    assert "tailor_console" not in answer.cookies


def test_an_id_token_with_another_nonce_is_refused(sso: SsoApp) -> None:
    sso.idp.person("gil", "gil@example.com", [])
    with httpx.Client() as http:
        start = http.get(sso.url + "/console/sign-in/sso")
        url = urlsplit(start.headers["location"])
        query = dict(parse_qsl(url.query)) | {"nonce": "not-the-one-tailor-sent"}
        forged = url._replace(query=urlencode(query)).geturl()
        answer = http.get(walk_to(http, forged, "gil", sso.callback))
    assert answer.status_code == 400
    assert "nonce does not match" in answer.text
    assert _users(sso, "gil@example.com") == 0


def test_an_answer_naming_another_issuer_is_refused(sso: SsoApp) -> None:
    sso.idp.person("hal", "hal@example.com", [])
    with httpx.Client() as http:
        start = http.get(sso.url + "/console/sign-in/sso")
        callback = urlsplit(walk_to(http, start.headers["location"], "hal", sso.callback))
        query = dict(parse_qsl(callback.query)) | {"iss": "https://idp.attacker.example"}
        answer = http.get(callback._replace(query=urlencode(query)).geturl())
    assert answer.status_code == 400
    assert "another identity provider" in answer.text
    assert _users(sso, "hal@example.com") == 0


def test_an_expired_id_token_is_refused_past_the_clock_skew(
    sso: SsoApp, client: OidcClient
) -> None:
    sso.idp.person("ivy", "ivy@example.com", [])
    token = provider_id_token(sso.idp, client, "ivy", nonce="n-ivy")
    exp = client.verify_id_token(token, nonce="n-ivy")["exp"]
    # Within the skew it is still accepted; past it, refused.
    client.verify_id_token(token, nonce="n-ivy", now=exp + client.skew_s - 1)
    with pytest.raises(TokenRefused, match="expired"):
        client.verify_id_token(token, nonce="n-ivy", now=exp + client.skew_s + 1)


def test_an_id_token_signed_with_another_key_is_refused(sso: SsoApp, client: OidcClient) -> None:
    sso.idp.person("jo", "jo@example.com", [])
    token = provider_id_token(sso.idp, client, "jo", nonce="n-jo")
    signed = jws.extract_compact(token.encode())
    # The same claims and the provider's key id, signed by a key the provider never had.
    forger = RSAKey.generate_key(2048)
    forged = jwt.encode(signed.headers(), json.loads(signed.payload), forger)
    with pytest.raises(TokenRefused, match="bad signature"):
        client.verify_id_token(forged, nonce="n-jo")
    # And the provider's signature over altered claims.
    head, _body, sig = token.split(".")
    body = jws.extract_compact(forged.encode()).payload
    altered = json.loads(body) | {"email": "admin@localhost"}
    tampered = ".".join([head, _b64(json.dumps(altered).encode()), sig])
    with pytest.raises(TokenRefused, match="bad signature"):
        client.verify_id_token(tampered, nonce="n-jo")


def test_an_id_token_from_another_issuer_is_refused(
    sso: SsoApp, client: OidcClient, tmp_path: Path
) -> None:
    # Another provider holding the very same keys: only the issuer tells the tokens apart.
    other = IdentityProvider(tmp_path / "other", sso.idp.redirect_uris, keys=list(sso.idp.keys))
    other.start()
    try:
        other.person("kim", "kim@example.com", [])
        with httpx.Client(timeout=10) as http:
            theirs = OidcClient(oidc_settings(tmp_path / "ws", other), http)
            token = provider_id_token(other, theirs, "kim", nonce="n-kim")
            theirs.verify_id_token(token, nonce="n-kim")  # a good token where it comes from
    finally:
        other.stop()
    with pytest.raises(TokenRefused, match="not by the configured provider"):
        client.verify_id_token(token, nonce="n-kim")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_person_the_provider_sends_without_an_address_is_refused(sso: SsoApp) -> None:
    sso.idp.person("nox", None, ["g"])
    with httpx.Client() as http:
        answer = headless_sign_in(sso, http, "nox")
        assert answer.status_code == 403
        assert "sent no e-mail address" in answer.text
        assert http.get(sso.url + "/console/teams").status_code == 303
