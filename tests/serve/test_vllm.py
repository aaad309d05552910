"""VLLMBackend against a small fake of vLLM's OpenAI server (vLLM itself needs a GPU).

The fake answers like vLLM: it refuses `suffix` with a 400, knows only LoRAs registered through
/v1/load_lora_adapter, and streams OpenAI SSE chunks; it records what it was sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from transformers import AutoTokenizer

from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.prompting import Prompter
from tailor.stages.serve.vllm import VLLMBackend

from .conftest import FIM_PREFIX, FIM_SUFFIX, AdapterFactory, LiveServer, start_server

PIECES = ["return", " a + b", "\n", "\n", "def", " sub"]


def fake_vllm(log: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()
    loras: set[str] = set()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {}

    @app.post("/v1/load_lora_adapter")
    async def load(request: Request) -> JSONResponse:
        body = await request.json()
        log.append({"load": body})
        if not (Path(body["lora_path"]) / "adapter_config.json").is_file():
            return JSONResponse({"error": "no adapter"}, status_code=400)
        loras.add(body["lora_name"])
        return JSONResponse({})

    @app.post("/v1/unload_lora_adapter")
    async def unload(request: Request) -> JSONResponse:
        body = await request.json()
        log.append({"unload": body})
        loras.discard(body["lora_name"])
        return JSONResponse({})

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Any:
        body = await request.json()
        log.append({"completion": body})
        if "suffix" in body:
            return JSONResponse({"error": {"message": "suffix is not currently supported"}}, 400)
        if body["model"] not in loras | {"base"}:
            return JSONResponse({"error": {"message": "model not found"}}, 404)

        async def events() -> AsyncIterator[bytes]:
            for i, text in enumerate(PIECES):
                last = i == len(PIECES) - 1
                choice = {"index": 0, "text": text, "finish_reason": "length" if last else None}
                yield f"data: {json.dumps({'choices': [choice]})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture
def vllm(
    tiny_base: Path, adapters: AdapterFactory, tmp_path: Path
) -> Iterator[tuple[VLLMBackend, list[dict[str, Any]], LiveServer]]:
    log: list[dict[str, Any]] = []
    live = start_server(fake_vllm(log))
    prompter = Prompter(AutoTokenizer.from_pretrained(tiny_base), 512)
    backend = VLLMBackend(
        live.url, prompter, adapters.store, tmp_path / "shared", served_model="base", max_loras=1
    )
    yield backend, log, live
    live.stop()


def fim_request(adapter: str | None) -> GenerationRequest:
    return GenerationRequest(
        prompt=FIM_PREFIX, suffix=FIM_SUFFIX, adapter=adapter, max_new_tokens=16
    )


def test_fim_prompt_is_built_here_and_suffix_is_never_sent(vllm: Any, tiny_base: Path) -> None:
    backend, log, _ = vllm
    out = backend.generate(fim_request(None))[0]
    sent = log[-1]["completion"]
    assert "suffix" not in sent
    assert sent["prompt"] == backend.prompter.prompt_ids(fim_request(None))
    assert out.text == "return a + b"  # post-processed: block end at `def sub`


def test_adapters_are_registered_at_runtime_within_max_loras(
    vllm: Any, adapters: AdapterFactory
) -> None:
    backend, log, _ = vllm
    one = adapters.create("acme", "v1", "1", seed=31)
    two = adapters.create("acme", "v2", "1", seed=32)
    backend.generate(fim_request(one))
    backend.generate(fim_request(one))
    backend.generate(fim_request(two))
    loads = [e["load"]["lora_name"] for e in log if "load" in e]
    models = [e["completion"]["model"] for e in log if "completion" in e]
    assert len(loads) == 2 and models == [loads[0], loads[0], loads[1]]
    unloads = [e["unload"]["lora_name"] for e in log if "unload" in e]
    assert list(backend.loras) == [two] and unloads == [loads[0]]  # max_loras=1


def test_streaming_yields_post_processed_pieces(vllm: Any) -> None:
    backend, _, _ = vllm
    chunks = list(backend.stream(fim_request(None)))
    assert "".join(c.text for c in chunks) == "return a + b"
    assert chunks[-1].finish_reason == "stop"
