"""`tailor team`: teams and their members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from tailor.cli.client import Client
from tailor.cli.output import Output, OutputOpt, show

team_app = typer.Typer(help="Teams and members.", no_args_is_help=True)
TEAM_COLS = ("slug", "name", "gpu_quota", "created_at")
MEMBER_COLS = ("user_id", "email", "role", "created_at")


def create(
    slug: str,
    name: str = typer.Option(None, help="Display name (default: slug)."),
    output: Output = OutputOpt,
) -> None:
    """Create a team; you become its owner."""
    show(Client().post("/v1/teams", {"slug": slug, "name": name or slug}), output, TEAM_COLS)


def list_(output: Output = OutputOpt) -> None:
    """Teams you belong to."""
    show(Client().list_all("/v1/teams"), output, TEAM_COLS)


def get(slug: str, output: Output = OutputOpt) -> None:
    """Show a team."""
    show(Client().get(f"/v1/teams/{slug}"), output, TEAM_COLS)


def delete(slug: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a team and everything in it."""
    if not yes:
        typer.confirm(f"Delete team {slug} and everything in it?", abort=True)
    # Asked (or --yes): that is the confirmation the API wants for a team that holds work.
    Client().request("DELETE", f"/v1/teams/{slug}", params={"confirm": slug})
    typer.echo(f"deleted team {slug}")


def add_member(
    slug: str, email: str, role: str = typer.Option("member"), output: Output = OutputOpt
) -> None:
    """Add a person to a team."""
    body = {"email": email, "role": role}
    show(Client().post(f"/v1/teams/{slug}/members", body), output, MEMBER_COLS)


def members(slug: str, output: Output = OutputOpt) -> None:
    """List a team's members."""
    show(Client().list_all(f"/v1/teams/{slug}/members"), output, MEMBER_COLS)


def create_token(
    slug: str,
    name: str = typer.Option(..., help="What it is for."),
    scopes: str = typer.Option("read,write", help="Comma-separated scopes."),
    days: int = typer.Option(90, help="Days until it expires."),
    machine_role: str = typer.Option(
        None,
        help="Issue a machine token (CI, automation) with this role in the team, at most "
        "yours: its own principal, audited as itself. Default: a token that acts as you.",
    ),
) -> None:
    """Issue a team token and print it once."""
    body = {"name": name, "scopes": scopes.split(","), "expires_in_days": days}
    if machine_role:
        body["machine_role"] = machine_role
    typer.echo(Client().post(f"/v1/teams/{slug}/tokens", body)["token"])


def policy(slug: str, output: Output = OutputOpt) -> None:
    """The team's publish gate (the default one until the team sets its own)."""
    show(Client().get(f"/v1/teams/{slug}/publish-policy"), output)


def set_policy(
    slug: str,
    max_eval_loss_increase: float = typer.Option(
        None, help="How much the adapter's held-out eval loss may exceed its base's."
    ),
    min_edit_similarity_ci_low: float = typer.Option(
        None,
        help="Points the lower end of the 95% CI of the FIM edit-similarity delta must reach "
        "(negative: a margin for an adapter as good as its base).",
    ),
    min_exact_match_delta: float = typer.Option(
        None, help="Points of FIM exact match the adapter must gain (unset: not checked)."
    ),
    max_humaneval_drop: float = typer.Option(
        None, help="Points of HumanEval pass@1 the adapter may lose."
    ),
    require_humaneval: bool = typer.Option(
        None, "--require-humaneval/--humaneval-optional", help="Refuse unless HumanEval ran."
    ),
    require_eval_loss: bool = typer.Option(
        None,
        "--require-eval-loss/--eval-loss-optional",
        help="Refuse unless eval loss was measured.",
    ),
    reset: bool = typer.Option(False, help="Back to the default gate, then apply the options."),
    output: Output = OutputOpt,
) -> None:
    """Change the team's publish gate: the options given, the rest as they are."""
    api = Client()
    url = f"/v1/teams/{slug}/publish-policy"
    current: dict[str, Any] = {} if reset else api.get(url)
    changes = {
        "max_eval_loss_increase": max_eval_loss_increase,
        "min_edit_similarity_ci_low_points": min_edit_similarity_ci_low,
        "min_fim_exact_match_delta_points": min_exact_match_delta,
        "max_humaneval_pass1_drop_points": max_humaneval_drop,
        "require_humaneval": require_humaneval,
        "require_eval_loss": require_eval_loss,
    }
    body = current | {k: v for k, v in changes.items() if v is not None}
    show(api.put(url, body), output)


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach `tailor team` to the root app."""
    for name, fn in (
        ("create", create),
        ("list", list_),
        ("show", get),
        ("delete", delete),
        ("add-member", add_member),
        ("members", members),
        ("create-token", create_token),
        ("policy", policy),
        ("set-policy", set_policy),
    ):
        team_app.command(name)(api_errors(fn))
    app.add_typer(team_app, name="team")
