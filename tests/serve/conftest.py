"""Serving fixtures: the tiny base, real LoRA adapters in a file store, one engine, a live server.

The engine and the server are shared by the whole session (the base model loads once); tests
that need their own server (limits, shutdown) start one with `serve_app`.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn
from fastapi import FastAPI

from tailor.demo.tiny import tiny_base_cached
from tailor.fim import style_matching
from tailor.stages.serve.app import create_serving_app
from tailor.stages.serve.callers import base_family, lookup_from
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.ide import IdeModel
from tailor.storage import FileStore

CACHE_ROOT = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))
TOKENS = {"tok-acme": "acme", "tok-beta": "beta", "tok-bulk": "bulk"}
FIM_PREFIX = "def add(a, b):\n    "
FIM_SUFFIX = "\n\ndef sub(a, b):\n    return a - b\n"
BASE_NAME = "tiny-starcoder"  # the catalog name the session server serves its base under


def adapter_key(team: str, name: str, version: str) -> str:
    """Where an adapter version lives in the object store (DESIGN's layout)."""
    return f"teams/{team}/adapters/{name}/{version}"


@dataclass
class AdapterFactory:
    """Saves LoRA adapters of the tiny base whose B matrices are random (so outputs differ)."""

    base_dir: Path
    store: FileStore
    rank: int = 8
    _model: Any = None

    def create(self, team: str, name: str, version: str, seed: int) -> str:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        if self._model is None:
            base = AutoModelForCausalLM.from_pretrained(self.base_dir)
            cfg = LoraConfig(
                r=self.rank, lora_alpha=2 * self.rank, target_modules=["c_attn", "c_proj", "c_fc"]
            )
            self._model = get_peft_model(base, cfg)
        gen = torch.Generator().manual_seed(seed)
        for pname, param in self._model.named_parameters():
            if "lora_" in pname:
                param.data = torch.randn(param.shape, generator=gen) * 0.3
        key = adapter_key(team, name, version)
        with tempfile.TemporaryDirectory() as tmp:
            self._model.save_pretrained(tmp)
            for fname in ("adapter_model.safetensors", "adapter_config.json"):
                self.store.upload_file(Path(tmp) / fname, f"{key}/{fname}")
        return key


@dataclass
class Registry:
    """What the lead's DB answers: which adapter version each team's model names."""

    published: dict[tuple[str, str], str] = field(default_factory=dict)

    def resolve(self, team: str, model: str) -> str | None:
        return self.published.get((team, model))

    def list(self, team: str) -> list[str]:
        return sorted(m for t, m in self.published if t == team)


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    """Directory of the tiny GPTBigCode base model and its tokenizer."""
    return tiny_base_cached(CACHE_ROOT)


@pytest.fixture(scope="session")
def serve_store(tmp_path_factory: pytest.TempPathFactory) -> FileStore:
    """The object store the engine loads adapters from."""
    return FileStore(tmp_path_factory.mktemp("serve-objects"))


@pytest.fixture(scope="session")
def adapters(tiny_base: Path, serve_store: FileStore) -> AdapterFactory:
    """Makes adapters in the serving store."""
    return AdapterFactory(tiny_base, serve_store)


@pytest.fixture(scope="session")
def registry(adapters: AdapterFactory) -> Registry:
    """Two teams, each with its own published adapter."""
    reg = Registry()
    reg.published[("acme", "py")] = adapters.create("acme", "py", "1", seed=1)
    reg.published[("beta", "go")] = adapters.create("beta", "go", "1", seed=2)
    return reg


@pytest.fixture(scope="session")
def engine(tiny_base: Path, serve_store: FileStore) -> Iterator[TailorEngine]:
    """One Tailor engine for the session, base model loaded."""
    eng = TailorEngine(str(tiny_base), serve_store).start()
    eng.wait_ready(120)
    yield eng
    eng.close()


def free_port() -> int:
    """A localhost port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A uvicorn server running an app in a thread."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_server(app: FastAPI, **config: Any) -> LiveServer:
    """Run `app` with uvicorn on a free port until `stop()`."""
    port = free_port()
    cfg = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return LiveServer(server, thread, f"http://127.0.0.1:{port}")


@pytest.fixture(scope="session")
def serve_app(engine: TailorEngine, registry: Registry) -> Callable[..., FastAPI]:
    """Builds a serving app over the session engine (keyword arguments override defaults)."""

    def build(**overrides: Any) -> FastAPI:
        kwargs: dict[str, Any] = {
            "lookup": lookup_from(TOKENS.get, registry.resolve),
            "list_models": registry.list,
            "base_name": BASE_NAME,
        }
        kwargs.update(overrides)
        return create_serving_app(engine, **kwargs)

    return build


@pytest.fixture(scope="session")
def server(serve_app: Callable[..., FastAPI]) -> Iterator[LiveServer]:
    """The session's live server: teams acme and beta, default limits."""
    live = start_server(serve_app())
    yield live
    live.stop()


@pytest.fixture
def acme_client(server: LiveServer) -> Any:
    """An OpenAI SDK client holding acme's token."""
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="tok-acme", max_retries=0)


@pytest.fixture(scope="session")
def acme_ide(engine: TailorEngine) -> IdeModel:
    """What the IDE settings say about acme's `py` endpoint on the session's base."""
    prompter = engine.prompter
    assert prompter is not None and prompter.fim is not None
    return IdeModel(
        endpoint="py",
        family=base_family(BASE_NAME),
        fim=style_matching(prompter.fim.style),
        context_window=prompter.context_length,
        max_new_tokens=16,
    )
