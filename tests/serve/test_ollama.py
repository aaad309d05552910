"""Ollama's protocol against a live server, with the requests Continue's ollama provider sends
(core/llm/llms/Ollama.ts: `/api/show` at start, `_streamFim`'s `/api/generate`) and read as it
reads them."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest

from .conftest import BASE_NAME, FIM_PREFIX, FIM_SUFFIX, LiveServer, Registry

# The stops Continue's autocomplete sends for a StarCoder-style model.
STOPS = ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<|endoftext|>", "\n\n\n"]


def headers(token: str | None = "tok-acme") -> dict[str, str]:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return {"Content-Type": "application/json", **auth}


def fim_body(model: str, *, stream: bool = True) -> dict[str, Any]:
    """`_getGenerateOptions(options, prefix, suffix)`, undefined members left out as
    JSON.stringify leaves them."""
    return {
        "model": model,
        "prompt": FIM_PREFIX,
        "suffix": FIM_SUFFIX,
        "options": {"temperature": 0.0, "num_predict": 48, "stop": STOPS, "num_ctx": 2048},
        "keep_alive": 1800,
        "stream": stream,
    }


def post(
    server: LiveServer, path: str, body: Any, token: str | None = "tok-acme"
) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}", content=json.dumps(body), headers=headers(token), timeout=60
    )


def continue_stream(resp: httpx.Response) -> list[dict[str, Any]]:
    """The NDJSON objects as Continue splits them (on newlines, blank lines skipped)."""
    objects = [json.loads(line) for line in resp.text.split("\n") if line.strip()]
    assert not any("error" in o for o in objects)
    return objects


def direct(engine: TailorEngine, adapter: str | None) -> str:
    req = GenerationRequest(
        prompt=FIM_PREFIX, suffix=FIM_SUFFIX, adapter=adapter, max_new_tokens=48, stop=STOPS
    )
    return engine.generate(req)[0].text


def test_show_tells_continue_the_server_does_fim(server: LiveServer) -> None:
    body = post(server, "/api/show", {"name": "py"}).json()
    assert ".Suffix" in body["template"]  # Continue's `fimSupported`
    assert "<fim_prefix>{{ .Prompt }}<fim_suffix>{{ .Suffix }}<fim_middle>" in body["template"]


def test_show_parameters_parse_as_continue_parses_them(server: LiveServer) -> None:
    body = post(server, "/api/show", {"name": "py"}).json()
    parsed = {}
    for line in body["parameters"].split("\n"):
        parts = re.match(r'^(\S+)\s+((?:".*")|\S+)$', line)
        assert parts is not None
        parsed[parts[1]] = parts[2]
    assert int(parsed["num_ctx"]) > 0


def test_show_of_another_teams_model_is_404_in_ollamas_error_shape(server: LiveServer) -> None:
    resp = post(server, "/api/show", {"name": "go"})
    assert resp.status_code == 404
    assert isinstance(resp.json()["error"], str)


def test_streamed_fim_is_the_engines_fill_in_the_middle(
    server: LiveServer, engine: TailorEngine, registry: Registry
) -> None:
    resp = post(server, "/api/generate", fim_body("py"))
    assert resp.headers["content-type"] == "application/x-ndjson"
    objects = continue_stream(resp)
    text = "".join(o["response"] for o in objects)
    assert text == direct(engine, registry.published[("acme", "py")])
    assert "<fim_" not in text
    assert [o["done"] for o in objects][-1] is True
    assert objects[-1]["eval_count"] > 0


def test_whole_fim_answer_when_not_streamed(server: LiveServer, engine: TailorEngine) -> None:
    body = post(server, "/api/generate", fim_body(BASE_NAME, stream=False)).json()
    assert body["done"] is True and body["done_reason"] in ("stop", "length")
    assert body["response"] == direct(engine, None)


def test_a_family_tagged_name_means_the_teams_endpoint(
    server: LiveServer, engine: TailorEngine, registry: Registry
) -> None:
    body = post(server, "/api/generate", fim_body(f"py:{BASE_NAME}", stream=False)).json()
    assert body["response"] == direct(engine, registry.published[("acme", "py")])


def test_ollamas_latest_tag_means_the_untagged_model(
    server: LiveServer, engine: TailorEngine, registry: Registry
) -> None:
    body = post(server, "/api/generate", fim_body("py:latest", stream=False)).json()
    assert body["response"] == direct(engine, registry.published[("acme", "py")])


def test_another_teams_model_with_the_latest_tag_is_404(server: LiveServer) -> None:
    assert post(server, "/api/generate", fim_body("go:latest")).status_code == 404


def test_an_empty_prompt_only_loads_the_model(server: LiveServer) -> None:
    body = post(server, "/api/generate", {"model": "py"}).json()
    assert body["done_reason"] == "load" and body["response"] == ""


def test_generate_without_a_token_is_401(server: LiveServer) -> None:
    assert post(server, "/api/generate", fim_body("py"), token=None).status_code == 401


def test_too_many_tokens_asked_is_400_naming_num_predict(server: LiveServer) -> None:
    body = fim_body("py", stream=False)
    body["options"]["num_predict"] = 100_000
    resp = post(server, "/api/generate", body)
    assert resp.status_code == 400
    assert "num_predict" in resp.json()["error"]


def test_tags_lists_the_teams_models_and_the_base_only(server: LiveServer) -> None:
    resp = httpx.get(f"{server.url}/api/tags", headers=headers("tok-beta"), timeout=30)
    assert [m["name"] for m in resp.json()["models"]] == ["go", BASE_NAME]
