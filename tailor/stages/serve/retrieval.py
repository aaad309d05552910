"""The hook between a completion request and the team's code index: retrieve, fit, place.

Runs for an endpoint whose caller carries a repository-context budget, with the team's own index
(`TeamIndexes` is keyed by the caller's team: no other team's code can be reached). Retrieval
runs in the threadpool, since a refresh may read the object store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from tailor.stages.context.assemble import Assembled, ContextQuery, EditorSnippet, assemble
from tailor.stages.serve.callers import Caller
from tailor.stages.serve.deps import ServingState
from tailor.stages.serve.generation import GenerationRequest


def _assembled(
    state: ServingState, team: str, req: GenerationRequest, query: ContextQuery, budget: int
) -> Assembled | None:
    assert state.contexts is not None and state.backend.prompter is not None
    index = state.contexts.get(team)
    if index is None:
        return None
    prompter = state.backend.prompter
    return assemble(index, query, budget, lambda snippets: prompter.context_costs(snippets, req))


async def with_context(
    state: ServingState,
    who: Caller | None,
    req: GenerationRequest,
    editor: Sequence[EditorSnippet] = (),
    *,
    enabled: bool = True,
) -> tuple[GenerationRequest, Assembled | None]:
    """The request with its repository context, and what was retrieved (None: nothing ran)."""
    if not enabled or state.contexts is None or who is None or who.context_tokens <= 0:
        return req, None
    query = ContextQuery(req.prompt, req.suffix or "", req.path, tuple(editor))
    found = await run_in_threadpool(_assembled, state, who.team, req, query, who.context_tokens)
    if found is None:
        return req, None
    return req.model_copy(update={"context": found.files}), found


def debug_snippets(found: Assembled | None) -> dict[str, Any]:
    """Tabby's `debug_data`: the snippets placed (with their files and scores), and those left
    out with the reason, so a team can see why a completion was what it was."""
    if found is None:
        return {"snippets": [], "left_out": [], "tokens": 0, "budget": 0}

    def one(f: Any) -> dict[str, Any]:
        return {
            "filepath": f.path,
            "repo": f.repo,
            "line": f.line,
            "kind": f.kind,
            "symbol": f.symbol,
            "score": f.score,
            "body": f.body,
        }

    return {
        "snippets": [one(f) for f in found.files],
        "left_out": [one(f) | {"reason": why} for f, why in found.left_out],
        "tokens": found.tokens,
        "budget": found.budget,
    }
