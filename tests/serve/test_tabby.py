"""Tabby's protocol against a live server, with the bodies tabby-agent sends (its
`buildRequest` and `postEvent`): completions, health, server setting, events."""

from __future__ import annotations

from typing import Any

import httpx

from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest

from .conftest import BASE_NAME, FIM_PREFIX, FIM_SUFFIX, LiveServer, Registry

AGENT_HEADERS = {"User-Agent": "tabby-agent/1.7.0 vscode/1.95.0"}


def agent_body(**segments: Any) -> dict[str, Any]:
    """A completion body as tabby-agent builds it (temperature undefined: left out)."""
    return {
        "language": "python",
        "segments": {
            "prefix": FIM_PREFIX,
            "suffix": FIM_SUFFIX,
            "filepath": "src/calc.py",
            "git_url": "https://git.example.com/acme/calc.git",
            **segments,
        },
    }


def post(server: LiveServer, path: str, body: Any, token: str = "tok-acme") -> httpx.Response:
    headers = {**AGENT_HEADERS, "Authorization": f"Bearer {token}"}
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)


def get(server: LiveServer, path: str, token: str | None = "tok-acme") -> httpx.Response:
    headers = {**AGENT_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=30)


def direct(engine: TailorEngine, prefix: str, adapter: str | None = None) -> str:
    req = GenerationRequest(prompt=prefix, suffix=FIM_SUFFIX, adapter=adapter, max_new_tokens=64)
    return engine.generate(req)[0].text


def test_a_tabby_body_on_v1_completions_is_filled_in_the_middle_by_the_base(
    server: LiveServer, engine: TailorEngine
) -> None:
    resp = post(server, "/v1/completions", agent_body())
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"].startswith("cmpl-")
    assert body["choices"] == [{"index": 0, "text": direct(engine, FIM_PREFIX)}]
    assert "<fim_" not in body["choices"][0]["text"]


def test_a_teams_model_answers_under_its_tabby_endpoint(
    server: LiveServer, engine: TailorEngine, registry: Registry
) -> None:
    resp = post(server, "/tabby/py/v1/completions", agent_body())
    text = resp.json()["choices"][0]["text"]
    assert text == direct(engine, FIM_PREFIX, registry.published[("acme", "py")])


def test_declarations_reach_the_model_as_comments_before_the_prefix(
    server: LiveServer, engine: TailorEngine
) -> None:
    declaration = {"filepath": "src/ops.py", "body": "def mul(a, b):\n    return a * b"}
    resp = post(server, "/v1/completions", agent_body(declarations=[declaration]))
    context = "# Path: src/ops.py\n# def mul(a, b):\n#     return a * b\n"
    assert resp.json()["choices"][0]["text"] == direct(engine, context + FIM_PREFIX)


def test_another_teams_model_is_404_under_the_tabby_endpoint(server: LiveServer) -> None:
    assert post(server, "/tabby/go/v1/completions", agent_body()).status_code == 404


def test_a_completion_without_a_token_is_401(server: LiveServer) -> None:
    resp = httpx.post(f"{server.url}/v1/completions", json=agent_body(), timeout=30)
    assert resp.status_code == 401


def test_a_malformed_tabby_body_is_422_with_the_field_named(server: LiveServer) -> None:
    resp = post(server, "/v1/completions", {"language": "python", "segments": {"suffix": "x"}})
    assert resp.status_code == 422
    assert resp.json()["error"]["param"] == "segments.prefix"


def test_health_names_the_model_to_a_token_holder(server: LiveServer) -> None:
    assert get(server, "/v1/health").json()["model"] == BASE_NAME
    assert get(server, "/tabby/py/v1/health").json()["model"] == "py"


def test_health_without_a_token_is_401(server: LiveServer) -> None:
    assert get(server, "/v1/health", token=None).status_code == 401


def test_server_setting_turns_the_agents_own_telemetry_off(server: LiveServer) -> None:
    resp = get(server, "/tabby/py/v1beta/server_setting")
    assert resp.json() == {"disable_client_side_telemetry": True}


def test_view_select_and_dismiss_events_are_acknowledged(server: LiveServer) -> None:
    cid = post(server, "/tabby/py/v1/completions", agent_body()).json()["id"]
    events = [
        ("/tabby/py/v1/events", {"type": "view", "completion_id": cid, "choice_index": 0}),
        (
            "/tabby/py/v1/events?select_kind=line",
            {"type": "select", "completion_id": cid, "choice_index": 0, "view_id": "view-1"},
        ),
        ("/v1/events", {"type": "dismiss", "completion_id": cid, "choice_index": 0, "elapsed": 9}),
    ]
    for path, event in events:
        resp = post(server, path, event)
        assert resp.status_code == 200
        assert resp.json() == {"accepted": event["type"], "completion_id": cid, "recorded": False}


def test_an_unknown_event_type_is_refused(server: LiveServer) -> None:
    event = {"type": "share", "completion_id": "cmpl-1", "choice_index": 0}
    assert post(server, "/v1/events", event).status_code == 422


def test_an_openai_body_on_v1_completions_is_still_openais(server: LiveServer) -> None:
    resp = post(server, "/v1/completions", {"model": "py", "prompt": "def ", "max_tokens": 4})
    assert resp.json()["object"] == "text_completion"
