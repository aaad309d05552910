"""IDE settings are ready to paste: the OpenAI snippet and the llm-vscode URL really work."""

from __future__ import annotations

import httpx
import openai

from tailor.stages.serve.ide import ide_settings

from .conftest import LiveServer


def test_openai_settings_complete_against_the_server(server: LiveServer) -> None:
    cfg = ide_settings(server.url, "py", "tok-acme")["openai"]
    client = openai.OpenAI(base_url=cfg["base_url"], api_key=cfg["api_key"], max_retries=0)
    out = client.completions.create(model=cfg["model"], prompt="def ", suffix="\n", max_tokens=4)
    assert out.choices[0].finish_reason in ("stop", "length")


def test_llm_vscode_settings_reach_the_tgi_route(server: LiveServer) -> None:
    cfg = ide_settings(server.url, "py", "tok-acme")["llm-vscode"]
    fim = (
        cfg["llm.fillInTheMiddle.prefix"]
        + "a = "
        + cfg["llm.fillInTheMiddle.suffix"]
        + "\n"
        + cfg["llm.fillInTheMiddle.middle"]
    )
    resp = httpx.post(
        cfg["llm.url"],
        json={"inputs": fim, **cfg["llm.requestBody"]},
        headers={"Authorization": f"Bearer {cfg['llm.apiToken']}"},
        timeout=60,
    )
    assert cfg["llm.backend"] == "tgi"
    assert resp.status_code == 200 and "generated_text" in resp.json()


def test_continue_settings_use_the_openai_provider() -> None:
    cfg = ide_settings("https://tailor.example.com/", "py", "$TOKEN")["continue"]
    tab = cfg["tabAutocompleteModel"]
    assert (tab["provider"], tab["apiBase"], tab["model"]) == (
        "openai",
        "https://tailor.example.com/v1",
        "py",
    )
