"""The real Tabby agent (`tabby-agent` from npm, installed by scripts/install into
tests/clients) as a language server, configured with a team's Tabby endpoint and token, asked
for a completion over LSP.

tabby-agent 1.5.0 (the version npm has here) answers `textDocument/completion` over LSP and
sends no view/select events in LSP mode, so events are tested with its bodies in test_tabby.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.ide import IdeModel
from tests.support.tabby_agent import LspClient, tabby_agent

from .conftest import FIM_PREFIX, FIM_SUFFIX, AdapterFactory, LiveServer, Registry


def _direct(engine: TailorEngine, adapter: str) -> str:
    request = GenerationRequest(
        prompt=FIM_PREFIX, suffix=FIM_SUFFIX, adapter=adapter, max_new_tokens=64
    )
    return engine.generate(request)[0].text


@pytest.fixture
def speaking(adapters: AdapterFactory, engine: TailorEngine, registry: Registry) -> Iterator[str]:
    """The completion at the FIM point, as the engine gives it, of an acme model (`tabby`)
    whose completion there is not blank.

    tabby-agent offers no blank completion, as an editor shows none, and which random
    adapter of the tiny base (built on each machine) answers with text differs by CPU.
    """
    for seed in range(1, 31):
        key = adapters.create("acme", "tabby", str(seed), seed=seed)
        if (direct := _direct(engine, key)).strip():
            break
    else:
        pytest.fail("none of 30 adapters completes the FIM point with text")
    registry.published[("acme", "tabby")] = key
    yield direct
    del registry.published[("acme", "tabby")]


@pytest.fixture
def agent(
    server: LiveServer, acme_ide: IdeModel, speaking: str, tmp_path: Path
) -> Iterator[LspClient]:
    """tabby-agent --lsp reading the Tabby config.toml the IDE settings print for that model."""
    model = replace(acme_ide, endpoint="tabby")
    with tabby_agent(server.url, model, "tok-acme", tmp_path) as client:
        yield client


def test_the_tabby_agent_completes_over_lsp_with_the_teams_model(
    agent: LspClient, speaking: str
) -> None:
    items = agent.complete(FIM_PREFIX, FIM_SUFFIX)

    assert items, "the agent offered no completion"
    assert items[0]["data"]["completionId"].startswith("cmpl-")
    assert "<fim_" not in items[0]["textEdit"]["newText"]
    assert items[0]["textEdit"]["newText"] == speaking
