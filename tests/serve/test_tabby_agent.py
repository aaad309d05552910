"""The real Tabby agent (`tabby-agent` from npm, installed by scripts/install into
tests/clients) as a language server, configured with a team's Tabby endpoint and token, asked
for a completion over LSP.

tabby-agent 1.5.0 (the version npm has here) answers `textDocument/completion` over LSP and
sends no view/select events in LSP mode, so events are tested with its bodies in test_tabby.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.ide import IdeModel, ide_settings

from .conftest import FIM_PREFIX, FIM_SUFFIX, LiveServer, Registry

AGENT = Path(__file__).parents[1] / "clients/node_modules/tabby-agent/dist/cli.js"


class LspClient:
    """JSON-RPC over the agent's stdio, framed as LSP frames it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.next_id = proc, 0

    def send(self, method: str, params: Any, *, request: bool = True) -> int | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        rid = None
        if request:
            self.next_id += 1
            rid = message["id"] = self.next_id
        data = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        self.proc.stdin.flush()
        return rid

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while line := self.proc.stdout.readline().strip():
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        assert length, "the agent closed its output"
        message: dict[str, Any] = json.loads(self.proc.stdout.read(length))
        return message

    def call(self, method: str, params: Any) -> Any:
        rid = self.send(method, params)
        while True:  # notifications and the agent's own requests come between
            message = self.receive()
            if message.get("id") == rid and "method" not in message:
                assert "error" not in message, message
                return message["result"]


@pytest.fixture
def agent(server: LiveServer, acme_ide: IdeModel, tmp_path: Path) -> Iterator[LspClient]:
    """tabby-agent --lsp reading the Tabby config.toml the IDE settings print for acme's `py`."""
    assert AGENT.exists(), "tabby-agent is not installed: run scripts/install"
    config = tmp_path / ".tabby-client/agent/config.toml"
    config.parent.mkdir(parents=True)
    # The file exactly as the IDE settings print it, with the user's token put in.
    printed = ide_settings(server.url, acme_ide, "tok-acme")["clients"]["tabby"]
    assert printed["file"] == "~/.tabby-client/agent/config.toml"
    config.write_text(printed["content"] + "\n[anonymousUsageTracking]\ndisable = true\n")
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        ["node", str(AGENT), "--lsp", "--stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    client = LspClient(proc)
    try:
        client.call(
            "initialize",
            {
                "processId": os.getpid(),
                "clientInfo": {"name": "tailor-tests", "version": "1"},
                "rootUri": None,
                "capabilities": {},
            },
        )
        client.send("initialized", {}, request=False)
        yield client
    finally:
        proc.kill()
        proc.wait(10)


def test_the_tabby_agent_completes_over_lsp_with_the_teams_model(
    agent: LspClient, engine: TailorEngine, registry: Registry
) -> None:
    uri = "file:///work/calc.py"
    text = FIM_PREFIX + FIM_SUFFIX
    document = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    agent.send("textDocument/didOpen", {"textDocument": document}, request=False)
    line = FIM_PREFIX.count("\n")
    position = {"line": line, "character": len(FIM_PREFIX.rsplit("\n", 1)[-1])}
    result = agent.call(
        "textDocument/completion", {"textDocument": {"uri": uri}, "position": position}
    )
    direct = engine.generate(
        GenerationRequest(
            prompt=FIM_PREFIX,
            suffix=FIM_SUFFIX,
            adapter=registry.published[("acme", "py")],
            max_new_tokens=64,
        )
    )[0].text
    items = result["items"]
    assert items, "the agent offered no completion"
    assert items[0]["data"]["completionId"].startswith("cmpl-")
    assert "<fim_" not in items[0]["textEdit"]["newText"]
    assert items[0]["textEdit"]["newText"] == direct
