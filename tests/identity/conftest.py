"""Single sign-on fixtures: a real OpenID Connect provider (node) and the API configured for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from tailor.config import Settings
from tailor.db import migrate
from tailor.db.models import GroupMapping, Membership, Role, Team, User
from tailor.db.session import make_engine, session_factory
from tailor.services.identity.oidc import OidcClient, pkce_pair
from tests.conftest import create_team, create_user
from tests.support.idp import CLIENT_ID, CLIENT_SECRET, IdentityProvider, free_port, walk_to

ADMIN_GROUP = "tailor-platform-admins"  # TAILOR_OIDC_ADMIN_GROUPS of the test app


@dataclass
class SsoApp:
    """The live API with single sign-on, its database, and the provider it trusts."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    settings: Settings
    idp: IdentityProvider

    @property
    def callback(self) -> str:
        return self.url + "/console/sso/callback"


def oidc_settings(workspace: Path, idp: IdentityProvider) -> Settings:
    """Settings naming the provider, as an operator would set them."""
    return Settings(
        workspace=workspace,
        oidc_issuer=idp.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_display_name="Example SSO",
        oidc_admin_groups=[ADMIN_GROUP],
    )


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoApp]:
    """The real app (SQLite, file store) served by uvicorn, and the provider, both started."""
    root = tmp_path_factory.mktemp("sso")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idp = IdentityProvider(root / "idp", [f"{url}/console/sso/callback"]).start()
    settings = oidc_settings(root / "ws", idp)
    settings.ensure_workspace()
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield SsoApp(url, engine, session_factory(engine), settings, idp)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
        idp.stop()


def make_team(app: SsoApp, slug: str) -> Team:
    """A team owned by someone else (who signs in with a token)."""
    with app.sessions() as session:
        owner = create_user(session)
        team = create_team(session, owner, slug)
        session.commit()
        session.refresh(team)
        session.expunge(team)
    return team


def map_group(app: SsoApp, group: str, team: Team, role: Role) -> None:
    """An admin's mapping: members of `group` get `role` in `team`."""
    with app.sessions() as session:
        session.add(GroupMapping(group_name=group, team_id=team.id, role=role))
        session.commit()


def roles_of(app: SsoApp, email: str) -> dict[str, Role]:
    """The teams (slug -> role) the user with this address is a member of."""
    with app.sessions() as session:
        rows = session.execute(
            select(Team.slug, Membership.role)
            .join(Membership, Membership.team_id == Team.id)
            .join(User, User.id == Membership.user_id)
            .where(User.email == email)
        ).all()
    return {slug: role for slug, role in rows}


def headless_sign_in(app: SsoApp, http: httpx.Client, login: str) -> httpx.Response:
    """Sign in to the console through the provider without a browser; the callback's answer."""
    start = http.get(app.url + "/console/sign-in/sso")
    assert start.status_code == 303, start.text
    callback = walk_to(http, start.headers["location"], login, app.callback)
    return http.get(callback)


def provider_id_token(idp: IdentityProvider, client: OidcClient, login: str, nonce: str) -> str:
    """A real ID token from the provider, through the code flow, for `login`."""
    redirect_uri = idp.redirect_uris[0]
    verifier, challenge = pkce_pair()
    url = client.authorization_url(
        redirect_uri=redirect_uri, state="s", nonce=nonce, code_challenge=challenge
    )
    with httpx.Client() as http:
        callback = httpx.URL(walk_to(http, url, login, redirect_uri))
    code = callback.params["code"]
    return client.exchange_code(code=code, code_verifier=verifier, redirect_uri=redirect_uri)
