"""Who is calling and what the model they name is: the one lookup every request makes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

BASE_MODEL = "<base>"
# What Ollama clients append to a model named without a tag.
OLLAMA_DEFAULT_TAG = ":latest"


@dataclass(frozen=True)
class Caller:
    """The team a token belongs to, and the backend adapter of the model it asked for."""

    team: str
    adapter: str | None = None  # the backend's adapter key; None is the base model
    known: bool = True  # False: the team has no model by that name (404)
    # The database's ids, for telemetry (None where the lookup has no database: no recording).
    team_id: int | None = None
    member_id: int | None = None  # the token's user
    version_id: int | None = None  # the adapter version served; None for the base
    keeps_code: bool = False  # the team's telemetry keeps the code text (redacted)
    # Cluster mode: where the endpoint is served, as the operator reported it (None: not yet).
    endpoint: str | None = None  # the endpoint's own name (the model name its backend knows)
    backend: str = "tailor"  # "tailor" (every protocol) or "vllm" (OpenAI, no `suffix`)
    backend_url: str | None = None
    base_model: str | None = None  # the version's base (catalog name): its FIM tokens


# (token, model name or None for the base) -> the caller, or None for a token that may not
# call (401). One call per request, so that a database-backed lookup is one transaction.
Lookup = Callable[[str, str | None], Caller | None]


def lookup_from(
    authenticate: Callable[[str], str | None], resolve_model: Callable[[str, str], str | None]
) -> Lookup:
    """A lookup made of a token check and a model resolver (dictionaries in tests and benches).

    `resolve_model(team, model)` answers the adapter key, `<base>` for the base model, or None.
    """

    def lookup(token: str, model: str | None) -> Caller | None:
        team = authenticate(token)
        if team is None:
            return None
        if model is None:
            return Caller(team)
        key = resolve_model(team, model)
        if key is None:
            return Caller(team, known=False)
        return Caller(team, None if key == BASE_MODEL else key)

    return lookup


def base_family(base_name: str) -> str:
    """The id clients see for the base, which also names its family: the catalog name's last
    part, lower-cased (`bigcode/StarCoderBase-1B` -> `starcoderbase-1b`)."""
    return base_name.rsplit("/", 1)[-1].lower()


def model_aliases(name: str, family: str) -> list[str]:
    """The endpoint names `name` may mean, most literal first.

    Clients pick a model's prompt template from its id, so an endpoint may be called with the
    base family after it (`payments-completion-qwen2.5-coder-1.5b`, or Ollama's tag form
    `payments-completion:qwen2.5-coder-1.5b`); Ollama clients add `:latest` to untagged names.
    """
    names = [name]
    plain = name.removesuffix(OLLAMA_DEFAULT_TAG)
    if plain != name:
        names.append(plain)
    for sep in ("-", ":"):
        tail = sep + family
        if plain.endswith(tail) and len(plain) > len(tail):
            names.append(plain[: -len(tail)])
    return names
