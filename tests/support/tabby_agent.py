"""The real Tabby agent (`tabby-agent` from npm, installed by scripts/install into
tests/clients) run as a language server over stdio, configured as a user would configure it:
with the Tabby config file the IDE settings print for an endpoint, the user's token put in."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tailor.stages.serve.ide import IdeModel, ide_settings

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

    def complete(self, prefix: str, suffix: str) -> list[dict[str, Any]]:
        """The items the agent offers at the end of `prefix` in a Python file."""
        uri = "file:///work/calc.py"
        document = {"uri": uri, "languageId": "python", "version": 1, "text": prefix + suffix}
        self.send("textDocument/didOpen", {"textDocument": document}, request=False)
        position = {"line": prefix.count("\n"), "character": len(prefix.rsplit("\n", 1)[-1])}
        params = {"textDocument": {"uri": uri}, "position": position}
        items: list[dict[str, Any]] = self.call("textDocument/completion", params)["items"]
        return items


@contextmanager
def tabby_agent(base_url: str, model: IdeModel, token: str, home: Path) -> Iterator[LspClient]:
    """tabby-agent --lsp, initialised, reading the config.toml printed for `model` at `base_url`."""
    assert AGENT.exists(), "tabby-agent is not installed: run scripts/install"
    config = home / ".tabby-client/agent/config.toml"
    config.parent.mkdir(parents=True)
    printed = ide_settings(base_url, model, token)["clients"]["tabby"]
    assert printed["file"] == "~/.tabby-client/agent/config.toml"
    config.write_text(printed["content"] + "\n[anonymousUsageTracking]\ndisable = true\n")
    proc = subprocess.Popen(
        ["node", str(AGENT), "--lsp", "--stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(home)},
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
