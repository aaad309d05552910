"""The real Tabby agent (`tabby-agent` from npm, installed by scripts/install into
tests/clients) as a language server, configured with a team's Tabby endpoint and token, asked
for a completion over LSP.

tabby-agent 1.5.0 (the version npm has here) answers `textDocument/completion` over LSP and
sends no view/select events in LSP mode, so events are tested with its bodies in test_tabby.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.ide import IdeModel
from tests.support.tabby_agent import LspClient, tabby_agent

from .conftest import FIM_PREFIX, FIM_SUFFIX, LiveServer, Registry


@pytest.fixture
def agent(server: LiveServer, acme_ide: IdeModel, tmp_path: Path) -> Iterator[LspClient]:
    """tabby-agent --lsp reading the Tabby config.toml the IDE settings print for acme's `py`."""
    with tabby_agent(server.url, acme_ide, "tok-acme", tmp_path) as client:
        yield client


def test_the_tabby_agent_completes_over_lsp_with_the_teams_model(
    agent: LspClient, engine: TailorEngine, registry: Registry
) -> None:
    items = agent.complete(FIM_PREFIX, FIM_SUFFIX)
    direct = engine.generate(
        GenerationRequest(
            prompt=FIM_PREFIX,
            suffix=FIM_SUFFIX,
            adapter=registry.published[("acme", "py")],
            max_new_tokens=64,
        )
    )[0].text
    assert items, "the agent offered no completion"
    assert items[0]["data"]["completionId"].startswith("cmpl-")
    assert "<fim_" not in items[0]["textEdit"]["newText"]
    assert items[0]["textEdit"]["newText"] == direct
