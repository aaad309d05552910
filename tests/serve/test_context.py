"""Repository context through Tabby's route on a live server: the team's own code before the
prompt, within the endpoint's budget, with `debug_data` naming where each snippet came from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI

from tailor.stages.context.snippets import ContextFile
from tailor.stages.context.store import TeamIndexes, publish_index
from tailor.stages.harvest.shards import Row, dataset_prefix, write_shards
from tailor.stages.serve.callers import Caller, lookup_from
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.storage import FileStore

from .conftest import TOKENS, LiveServer, Registry, start_server
from .test_tabby import post

PLANTED = "reconcile_ledger_qx81"  # only team acme's code defines it
LEDGER = f'def {PLANTED}(entries: list[int]) -> int:\n    """Balance the ledger."""\n    return 0\n'
PREFIX = f"from books.ledger import {PLANTED}\n\n\ndef close_month(entries):\n    return "
BUDGET = 200  # tokens, as an endpoint's setting


def publish(store: FileStore, team: str, repo: str, path: str, content: str) -> None:
    uid = f"ds-{team}"
    rows = [Row(repo, path, "Python", content, len(content), "c0ffee", "train")]
    write_shards(rows, store, dataset_prefix(team, uid))
    publish_index(store, team, [(uid, dataset_prefix(team, uid))], [repo])


@pytest.fixture(scope="module")
def context_server(
    serve_app: Callable[..., FastAPI], registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server whose team endpoints carry a context budget; both teams have an index."""
    store = FileStore(tmp_path_factory.mktemp("context-objects"))
    publish(store, "acme", "books", "books/ledger.py", LEDGER)
    publish(store, "beta", "site", "site/views.py", "def home():\n    return 'ok'\n")
    plain = lookup_from(TOKENS.get, registry.resolve)

    def lookup(token: str, model: str | None) -> Caller | None:
        # `no-context` is acme's `py` adapter behind an endpoint without a context budget.
        who = plain(token, "py" if model == "no-context" else model)
        budget = 0 if model == "no-context" else BUDGET
        return replace(who, context_tokens=budget) if who and model else who

    live = start_server(serve_app(lookup=lookup, contexts=TeamIndexes(store)))
    yield live
    live.stop()


def body(**debug: Any) -> dict[str, Any]:
    return {
        "language": "python",
        "segments": {"prefix": PREFIX, "suffix": "\n", "filepath": "books/close.py"},
        "debug_options": {"return_snippets": True, **debug},
    }


def test_debug_output_names_each_snippets_file_repository_and_score(
    context_server: LiveServer,
) -> None:
    resp = post(context_server, "/tabby/py/v1/completions", body())

    debug = resp.json()["debug_data"]
    first = debug["snippets"][0]
    assert (first["filepath"], first["repo"], first["symbol"]) == (
        "books/ledger.py",
        "books",
        PLANTED,
    )
    assert first["kind"] == "definition" and first["score"] > 0
    assert 0 < debug["tokens"] <= debug["budget"] == BUDGET


def test_the_model_completes_with_the_retrieved_context_before_its_prompt(
    context_server: LiveServer, engine: TailorEngine, registry: Registry
) -> None:
    resp = post(context_server, "/tabby/py/v1/completions", body())

    shown = resp.json()["debug_data"]["snippets"]
    files = [ContextFile(s["repo"], s["filepath"], s["body"]) for s in shown]
    req = GenerationRequest(
        prompt=PREFIX,
        suffix="\n",
        adapter=registry.published[("acme", "py")],
        max_new_tokens=64,
        path="books/close.py",
        context=files,
    )
    assert resp.json()["choices"][0]["text"] == engine.generate(req)[0].text


def test_a_symbol_planted_in_one_team_never_appears_for_another(
    context_server: LiveServer,
) -> None:
    acme = post(context_server, "/tabby/py/v1/completions", body()).json()
    beta = post(context_server, "/tabby/go/v1/completions", body(), token="tok-beta").json()

    assert PLANTED in str(acme["debug_data"]["snippets"])
    assert PLANTED not in str(beta["debug_data"])
    assert all(s["repo"] == "site" for s in beta["debug_data"]["snippets"])


def test_an_endpoint_without_a_budget_or_a_request_opting_out_gets_no_context(
    context_server: LiveServer,
) -> None:
    off = post(context_server, "/tabby/no-context/v1/completions", body()).json()
    opted_out = post(
        context_server,
        "/tabby/py/v1/completions",
        body(disable_retrieval_augmented_code_completion=True),
    ).json()

    assert off["debug_data"]["snippets"] == [] and opted_out["debug_data"]["snippets"] == []


def test_without_debug_options_the_answer_is_tabbys_plain_one(context_server: LiveServer) -> None:
    plain = {k: v for k, v in body().items() if k != "debug_options"}

    assert set(post(context_server, "/tabby/py/v1/completions", plain).json()) == {"id", "choices"}


def test_an_openai_fim_completion_gets_the_teams_context_too(context_server: LiveServer) -> None:
    def prompt_tokens(model: str) -> int:
        fim = {"model": model, "prompt": PREFIX, "suffix": "\n", "max_tokens": 4}
        resp = post(context_server, "/v1/completions", fim)
        assert resp.status_code == 200, resp.text
        return int(resp.json()["usage"]["prompt_tokens"])

    assert prompt_tokens("py") > prompt_tokens("no-context")


def test_an_openai_request_opting_out_gets_no_context(context_server: LiveServer) -> None:
    def prompt_tokens(model: str, **extra: bool) -> int:
        fim = {"model": model, "prompt": PREFIX, "suffix": "\n", "max_tokens": 4, **extra}
        resp = post(context_server, "/v1/completions", fim)
        assert resp.status_code == 200, resp.text
        return int(resp.json()["usage"]["prompt_tokens"])

    assert prompt_tokens("py", repository_context=False) == prompt_tokens("no-context")
