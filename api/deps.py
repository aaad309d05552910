"""Dependencies: what a route needs, spelled in its signature."""

from __future__ import annotations

import email.message
import hmac
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from celery import Celery
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tailor.config import Settings
from tailor.db.conflicts import conflict_from
from tailor.db.models import Role
from tailor.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from tailor.pagination import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT
from tailor.security import CredentialCipher
from tailor.services.endpoints.service import EndpointHook
from tailor.services.identity.oidc import OidcClient
from tailor.services.teams.service import TeamHook
from tailor.services.tokens.admins import GroupAdmins
from tailor.services.tokens.service import authenticate
from tailor.storage import ObjectStore
from tailor.tenancy import Principal, TeamAccess, team_for

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)


def get_settings_dep(request: Request) -> Settings:
    """The app's settings (set once by `create_app`)."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session whose transaction the request owns: committed on success, else rolled back.

    Used with `scope="function"` (SessionDep), so the commit runs when the route returns and
    before its response is sent: whoever reads the response (and any process it tells) finds
    the change, and a commit that fails answers an error instead of a 200. A unique or
    foreign-key violation, at a flush or at the commit, is a 409.
    """
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        if discarding(request):
            session.rollback()
        else:
            session.commit()
    except IntegrityError as exc:
        session.rollback()
        conflict = conflict_from(exc)
        if conflict is None:
            raise
        raise conflict from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def discard_changes(request: Request) -> None:
    """Roll back the request's transaction although the route answers normally (an error
    page rendered from a caught error must change nothing)."""
    request.state.discard_changes = True


def discarding(request: Request) -> bool:
    """Whether `discard_changes` was called for this request."""
    return bool(getattr(request.state, "discard_changes", False))


def get_store(request: Request) -> ObjectStore:
    """The object store the app was built with."""
    store: ObjectStore = request.app.state.store
    return store


def get_sender(request: Request) -> Celery:
    """Sends Celery tasks by name to the workers."""
    sender: Celery = request.app.state.sender
    return sender


def get_cipher(settings: Annotated[Settings, Depends(get_settings_dep)]) -> CredentialCipher:
    """The credential cipher keyed from settings."""
    return CredentialCipher(settings.encryption_key())


def get_oidc(request: Request) -> OidcClient:
    """The identity provider's client; 404 where single sign-on is not configured."""
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        raise NotFound("single sign-on is not configured (TAILOR_OIDC_ISSUER)")
    return client


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
OidcDep = Annotated[OidcClient, Depends(get_oidc)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
CipherDep = Annotated[CredentialCipher, Depends(get_cipher)]
SenderDep = Annotated[Celery, Depends(get_sender)]

_bearer = HTTPBearer(auto_error=False, description="A Tailor API token (tlr_...).")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def scope_for(method: str) -> str:
    """The token scope a request needs: `read` to look, `write` to change anything."""
    return "read" if method.upper() in SAFE_METHODS else "write"


def current_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from the bearer token; 401 without a valid one, 403 if its scopes do not
    cover the request (an inference token gets no further than here: it is for the gateway)."""
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    principal = authenticate(session, creds.credentials, GroupAdmins.of(settings))
    principal.require_scope(scope_for(request.method))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]

OPERATOR = "operator"


def internal_caller(
    session: SessionDep,
    settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Who may call /v1/internal: the operator's token, or a platform admin's; else 403.

    The operator's token comes from settings (the chart's Secret), not from the database,
    so the operator works before any admin exists. Compared in constant time.
    """
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    expected = settings.operator_token.get_secret_value() if settings.operator_token else ""
    if expected and hmac.compare_digest(creds.credentials.encode(), expected.encode()):
        return OPERATOR
    principal = authenticate(session, creds.credentials, GroupAdmins.of(settings))
    if not principal.platform_admin:
        raise Forbidden("only the platform's operator token may report job status")
    return principal.email


InternalCaller = Annotated[str, Depends(internal_caller)]


def get_kube(request: Request, settings: SettingsDep) -> ApiClient | None:
    """The Kubernetes client in cluster mode (connected on first use), else None.

    Tests put their own client (pointing at the emulator) in `app.state.kube`.
    """
    kube: ApiClient | None = getattr(request.app.state, "kube", None)
    if kube is None and settings.executor == "kubernetes":
        from tailor.k8s import connect

        try:
            kube = request.app.state.kube = connect()
        except Exception:
            # Only calls that need the cluster fail (503, with the fix); the rest still work.
            log.exception("no Kubernetes credentials: neither in-cluster nor KUBECONFIG")
            return None
    return kube


# Typed Any: the `kubernetes` package (the k8s extra) is only imported in cluster mode.
KubeDep = Annotated[Any, Depends(get_kube)]


def _team_access(minimum: Role):  # type: ignore[no-untyped-def]
    def dep(team: str, session: SessionDep, principal: CurrentPrincipal) -> TeamAccess:
        return team_for(session, principal, team, minimum)

    return dep


TeamViewer = Annotated[TeamAccess, Depends(_team_access(Role.viewer))]
TeamMember = Annotated[TeamAccess, Depends(_team_access(Role.member))]
TeamAdmin = Annotated[TeamAccess, Depends(_team_access(Role.admin))]
TeamOwner = Annotated[TeamAccess, Depends(_team_access(Role.owner))]

Cursor = Annotated[
    str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
DEFAULT_PAGE = DEFAULT_LIMIT


def endpoint_hook(settings: SettingsDep, sender: SenderDep) -> EndpointHook | None:
    """In cluster mode, what keeps a team's InferenceEndpoints in step with its endpoints."""
    if settings.executor != "kubernetes":
        return None
    from tailor.services.endpoints.sync import sync_after_commit

    return sync_after_commit(sender)


EndpointSync = Annotated[EndpointHook | None, Depends(endpoint_hook)]


def team_hook(settings: SettingsDep, sender: SenderDep) -> TeamHook | None:
    """In cluster mode, what keeps the teams' Team resources in step with the database."""
    if settings.executor != "kubernetes":
        return None
    from tailor.services.teams.sync import sync_after_commit

    return sync_after_commit(sender)


TeamSync = Annotated[TeamHook | None, Depends(team_hook)]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


async def reject_nul_characters(request: Request) -> None:
    """Refuse NUL characters in JSON bodies, forms and query strings on every route.

    PostgreSQL cannot store them in text, SQLite can: refusing them here gives both
    databases the same answer, before anything is written.
    """
    if await _carries_nul(request):
        raise InvalidInput("text must not contain NUL characters")


async def _carries_nul(request: Request) -> bool:
    if "%00" in request.url.query or _has_nul(dict(request.path_params)):
        return True
    media = _media_type(request.headers.get("content-type", ""))
    if media == "application/x-www-form-urlencoded":
        body = await request.body()
        return b"%00" in body or b"\x00" in body
    if not is_json(media):
        return False
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return False  # FastAPI's own validation explains malformed JSON
    return _has_nul(body)


def _media_type(content_type: str) -> str:
    # Parsed as FastAPI parses it (case, parameters, spaces), so a body FastAPI reads as JSON
    # or a form is never one this check skipped.
    message = email.message.Message()
    message["content-type"] = content_type
    return message.get_content_type() if content_type else ""


def is_json(media_type: str) -> bool:
    """Whether FastAPI reads a body of this media type as JSON (`application/json`, `+json`)."""
    maintype, _, subtype = media_type.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))
