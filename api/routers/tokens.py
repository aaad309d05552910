"""/v1/teams/{team}/tokens: team-bound API tokens (CLI, CI, IDE completions)."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from api.deps import DEFAULT_PAGE, Cursor, Limit, SessionDep, TeamMember, TeamViewer
from api.responses import READ, WRITE
from tailor.pagination import Page
from tailor.services.tokens import service
from tailor.services.tokens.schemas import TokenCreate, TokenCreated, TokenOut

router = APIRouter(prefix="/v1/teams/{team}/tokens", tags=["tokens"])
TokenId = Path(ge=1, le=2**31 - 1)


@router.post("", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, responses=WRITE)
def create_token(body: TokenCreate, access: TeamMember, session: SessionDep) -> TokenCreated:
    """Issue a token to the caller, or a machine token (`machine_role`) of its own.

    The response is the only time its secret is shown.
    """
    return service.create_team_token(session, access, body)


@router.get("", response_model=Page[TokenOut], responses=READ)
def list_tokens(
    access: TeamViewer, session: SessionDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE
) -> Page[TokenOut]:
    """Tokens of the team (unless team admin, only the caller's own and machine tokens the
    caller issued)."""
    items, nxt = service.list_team_tokens(session, access, cursor, limit)
    return Page(items=items, next_cursor=nxt)


@router.get("/{token_id}", response_model=TokenOut, responses=READ)
def get_token(access: TeamViewer, session: SessionDep, token_id: int = TokenId) -> TokenOut:
    """One token's metadata."""
    return service.get_team_token(session, access, token_id)


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE)
def revoke_token(access: TeamMember, session: SessionDep, token_id: int = TokenId) -> None:
    """Revoke a token; it stops working immediately."""
    service.revoke_team_token(session, access, token_id)
