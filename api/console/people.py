"""Members of a team and their roles, and the team's API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from api.console.forms import FormErrors, optional_int, parse, service_errors
from api.console.web import (
    PREFIX,
    Admin,
    Form,
    Member,
    Viewer,
    form_text,
    render,
    saved,
    team_router,
)
from api.deps import SessionDep
from tailor.db.models import Role
from tailor.errors import TailorError
from tailor.pagination import MAX_LIMIT
from tailor.services.teams import service as teams
from tailor.services.teams.schemas import MemberCreate, MemberUpdate
from tailor.services.tokens import service as tokens
from tailor.services.tokens.schemas import TokenCreate, TokenCreated
from tailor.tenancy import TeamAccess

router = team_router()
ROLES = [r.value for r in Role]
SCOPES = ["read", "write", "inference"]


def _base(access: TeamAccess) -> str:
    return f"{PREFIX}/teams/{access.team.slug}"


def _members_page(
    request: Request,
    access: TeamAccess,
    session: SessionDep,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    members, _ = teams.list_members(session, access, None, MAX_LIMIT)
    return render(
        request,
        "members.html",
        status,
        access=access,
        members=members,
        roles=ROLES,
        can_manage=access.role.rank >= Role.admin.rank,
        errors=errors or {},
        values=values or {"role": "member"},
    )


@router.get("/members")
def member_list(request: Request, access: Viewer, session: SessionDep) -> Response:
    """Who is in the team, with which role."""
    return _members_page(request, access, session)


@router.post("/members")
def add_member(request: Request, form: Form, access: Admin, session: SessionDep) -> Response:
    """Add a person by e-mail."""
    values = {k: form_text(form, k) for k in ("email", "name", "role")}
    try:
        teams.add_member(session, access, parse(MemberCreate, values))
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        if isinstance(exc, TailorError) and exc.status == 409:
            errors = {"email": exc.detail}
        return _members_page(request, access, session, 422, errors, values)
    return saved(session, f"{_base(access)}/members", "member-added")


@router.post("/members/{user_id}/role")
def change_role(
    user_id: int, request: Request, form: Form, access: Admin, session: SessionDep
) -> Response:
    """Change a member's role (a team keeps at least one owner)."""
    try:
        body = parse(MemberUpdate, {"role": form_text(form, "role")})
        teams.update_member(session, access, user_id, body)
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        message = next(iter(errors.values()))
        return _members_page(request, access, session, 422, {f"role-{user_id}": message})
    return saved(session, f"{_base(access)}/members", "member-updated")


@router.post("/members/{user_id}/remove")
def remove_member(
    user_id: int, request: Request, form: Form, access: Admin, session: SessionDep
) -> Response:
    """Remove a member (a team keeps at least one owner)."""
    try:
        teams.remove_member(session, access, user_id)
    except TailorError as exc:
        session.rollback()
        return _members_page(request, access, session, 409, {f"role-{user_id}": exc.detail})
    return saved(session, f"{_base(access)}/members", "member-removed")


# --- tokens


def _tokens_page(
    request: Request,
    access: TeamAccess,
    session: SessionDep,
    status: int = 200,
    errors: dict[str, str] | None = None,
    created: TokenCreated | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    rows, _ = tokens.list_team_tokens(session, access, None, MAX_LIMIT)
    response = render(
        request,
        "tokens.html",
        status,
        access=access,
        tokens=rows,
        scopes=SCOPES,
        holders=_holders(access),
        created=created,
        errors=errors or {},
        values=values or {"scopes": ["read", "write"], "expires_in_days": "90"},
    )
    return response


def _holders(access: TeamAccess) -> list[tuple[str, str]]:
    """Who a new token can act as: the caller, or a machine with a role up to the caller's."""
    roles = [r for r in reversed(Role) if r.rank <= access.role.rank]
    machines = [] if access.principal.machine else roles
    return [("", "Me (a personal token)")] + [
        (r.value, f"A machine (CI, automation) with the {r.value} role") for r in machines
    ]


@router.get("/tokens")
def token_list(request: Request, access: Viewer, session: SessionDep) -> Response:
    """The team's tokens: prefixes and dates, never the secrets."""
    return _tokens_page(request, access, session)


@router.post("/tokens")
def create_token(request: Request, form: Form, access: Member, session: SessionDep) -> Response:
    """Issue a team token; this response is the only time its secret is shown."""
    scopes = [s for s in form.getlist("scopes") if isinstance(s, str)]
    values: dict[str, Any] = {
        "name": form_text(form, "name"),
        "scopes": scopes,
        "expires_in_days": form_text(form, "expires_in_days"),
        "machine_role": form_text(form, "machine_role"),
    }
    data = {
        "name": values["name"],
        "scopes": scopes,
        "expires_in_days": optional_int(values["expires_in_days"]),
        "machine_role": values["machine_role"] or None,
    }
    try:
        created = tokens.create_team_token(session, access, parse(TokenCreate, data))
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        return _tokens_page(request, access, session, 422, errors, values=values)
    # Commit before showing the secret: a token shown but rolled back would be a lie.
    session.commit()
    return _tokens_page(request, access, session, 201, created=created)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: int, form: Form, access: Member, session: SessionDep) -> Response:
    """Revoke a token; it stops working at once."""
    tokens.revoke_team_token(session, access, token_id)
    return saved(session, f"{_base(access)}/tokens", "token-revoked")
