"""IDE settings paste and work: each client's file is read by the client's own schema or
parser where one is installable, and the settings complete against a live server.

- llm-vscode: its package.json's `contributes.configuration` (vendored in tests/clients with
  its source named) as a JSON Schema of settings.json;
- Continue: `@continuedev/config-yaml` from npm (tests/clients), its own parse and validation;
- Tabby: tabby-agent itself reads the written config.toml in test_tabby_agent;
- llm.nvim: its setup snippet run by LuaJIT (Neovim's Lua), each option checked against
  llm.nvim's own default_config (vendored with its source named).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
import yaml

from tailor.fim import KNOWN_STYLES, QWEN_CODER, STARCODER, FimStyle
from tailor.stages.serve.engine import TailorEngine
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.ide import IdeModel, ide_settings

from .conftest import FIM_PREFIX, FIM_SUFFIX, LiveServer, Registry

CLIENTS = Path(__file__).parents[1] / "clients"
LLM_VSCODE_SCHEMA = json.loads((CLIENTS / "llm-vscode-settings.schema.json").read_text())
FIM_TEXTS = ("<fim_", "<|fim", "<PRE>", "[PREFIX]", "fim\u2581")


def client(model: IdeModel, name: str, url: str = "https://tailor.example.com", **kw: Any) -> Any:
    return ide_settings(url, model, **kw)["clients"][name]


def realistic(fim: FimStyle) -> IdeModel:
    """An endpoint on a base of `fim`'s family with a production-sized window."""
    return IdeModel("payments-completion", f"{fim.name}-7b", fim, context_window=16384)


def continue_reads(content: str) -> dict[str, Any]:
    """What Continue's own config-yaml package makes of a config.yaml."""
    assert (CLIENTS / "node_modules/@continuedev/config-yaml").exists(), "run scripts/install"
    out = subprocess.run(
        ["node", str(CLIENTS / "check-continue-config.mjs")],
        input=content,
        capture_output=True,
        text=True,
        check=True,
        cwd=CLIENTS,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def direct(engine: TailorEngine, registry: Registry, max_new_tokens: int) -> str:
    """The completion the engine makes of the FIM prompt itself."""
    req = GenerationRequest(
        prompt=FIM_PREFIX,
        suffix=FIM_SUFFIX,
        adapter=registry.published[("acme", "py")],
        max_new_tokens=max_new_tokens,
        temperature=0.0,
    )
    return engine.generate(req)[0].text


@pytest.mark.parametrize("fim", KNOWN_STYLES, ids=lambda s: s.name)
def test_llm_vscode_settings_are_llm_vscodes_own_settings(fim: FimStyle) -> None:
    settings = client(realistic(fim), "llm-vscode")["settings"]
    jsonschema.validate(settings, LLM_VSCODE_SCHEMA)
    assert (settings["llm.fillInTheMiddle.prefix"], settings["llm.contextWindow"]) == (
        fim.prefix,
        16384,
    )


def test_llm_vscode_takes_its_token_through_the_login_command() -> None:
    snippet = client(realistic(STARCODER), "llm-vscode")
    assert not [k for k in snippet["settings"] if k.lower().endswith(("apitoken", "token"))]
    assert any("'Llm: Login'" in step for step in snippet["steps"])
    assert any("~/.cache/huggingface/token" in step for step in snippet["steps"])


def test_llm_vscode_settings_complete_through_the_tgi_route(
    server: LiveServer, acme_ide: IdeModel, engine: TailorEngine, registry: Registry
) -> None:
    cfg = client(acme_ide, "llm-vscode", server.url)["settings"]
    # llm-ls's TGI backend: the FIM prompt in the configured tokens, the request body as set,
    # the token from 'Llm: Login' as a Bearer token.
    inputs = (
        cfg["llm.fillInTheMiddle.prefix"]
        + FIM_PREFIX
        + cfg["llm.fillInTheMiddle.suffix"]
        + FIM_SUFFIX
        + cfg["llm.fillInTheMiddle.middle"]
    )
    body = {**cfg["llm.requestBody"], "inputs": inputs}
    # Greedy, so the answer can be compared with the engine's (the settings sample at 0.2).
    sampling = ("temperature", "top_p", "do_sample")
    body["parameters"] = {k: v for k, v in body["parameters"].items() if k not in sampling}
    resp = httpx.post(
        cfg["llm.url"], json=body, headers={"Authorization": "Bearer tok-acme"}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    expected = direct(engine, registry, cfg["llm.requestBody"]["parameters"]["max_new_tokens"])
    assert resp.json()["generated_text"] == expected


@pytest.mark.parametrize("fim", KNOWN_STYLES, ids=lambda s: s.name)
def test_continue_config_is_read_by_continues_own_package(fim: FimStyle) -> None:
    snippet = client(realistic(fim), "continue", token="tok")
    read = continue_reads(snippet["content"])
    assert read["errors"] == []
    # The schema drops keys it does not know: nothing may have been dropped.
    assert read["parsed"] == yaml.safe_load(snippet["content"]) == snippet["settings"]
    autocomplete = read["parsed"]["models"][0]["autocompleteOptions"]
    assert fim.prefix in autocomplete["template"] and fim.suffix in autocomplete["template"]


def test_continue_config_for_the_tiny_window_has_no_fatal_error(acme_ide: IdeModel) -> None:
    read = continue_reads(client(acme_ide, "continue")["content"])
    assert read["parsed"] is not None
    assert not [e for e in read["errors"] if e["fatal"]]


def test_continue_autocomplete_renders_its_template_and_the_server_fills_in(
    server: LiveServer, acme_ide: IdeModel, engine: TailorEngine, registry: Registry
) -> None:
    model = yaml.safe_load(client(acme_ide, "continue", server.url, token="tok-acme")["content"])
    first = model["models"][0]
    # Continue renders the Handlebars template and sends it raw to the legacy endpoint.
    template = first["autocompleteOptions"]["template"]
    prompt = template.replace("{{{prefix}}}", FIM_PREFIX).replace("{{{suffix}}}", FIM_SUFFIX)
    sdk = openai.OpenAI(base_url=first["apiBase"], api_key=first["apiKey"], max_retries=0)
    out = sdk.completions.create(
        model=first["model"],
        prompt=prompt,
        max_tokens=first["defaultCompletionOptions"]["maxTokens"],
        temperature=0,
    )
    assert out.choices[0].text == direct(engine, registry, acme_ide.max_new_tokens)


def test_continue_ollama_model_gets_server_side_fim(
    server: LiveServer, acme_ide: IdeModel, engine: TailorEngine, registry: Registry
) -> None:
    model = yaml.safe_load(client(acme_ide, "continue", server.url, token="tok-acme")["content"])
    ollama = model["models"][1]
    auth = {"Authorization": f"Bearer {ollama['apiKey']}"}
    base = ollama["apiBase"]
    show = httpx.post(f"{base}api/show", json={"name": ollama["model"]}, headers=auth, timeout=60)
    assert show.status_code == 200 and ".Suffix" in show.json()["template"]
    body = {
        "model": ollama["model"],
        "prompt": FIM_PREFIX,
        "suffix": FIM_SUFFIX,
        "raw": True,
        "stream": False,
        "options": {"temperature": 0.0, "num_predict": acme_ide.max_new_tokens},
    }
    resp = httpx.post(f"{base}api/generate", json=body, headers=auth, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["response"] == direct(engine, registry, acme_ide.max_new_tokens)


@pytest.mark.parametrize("fim", KNOWN_STYLES, ids=lambda s: s.name)
def test_llm_nvim_setup_runs_in_neovims_lua_with_llm_nvims_options(
    fim: FimStyle, tmp_path: Path
) -> None:
    snippet = client(realistic(fim), "llm.nvim")
    init = tmp_path / "init.lua"
    init.write_text(snippet["content"])
    out = subprocess.run(
        ["luajit", str(CLIENTS / "check-llm-nvim-config.lua"), str(init)],
        capture_output=True,
        text=True,
        env={"TAILOR_TOKEN": "tok-acme", "PATH": os.environ["PATH"]},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {**snippet["settings"], "api_token": "tok-acme"}


def test_tabby_config_is_toml_with_the_endpoint_and_token(acme_ide: IdeModel) -> None:
    snippet = client(acme_ide, "tabby", token='to"k')
    assert tomllib.loads(snippet["content"]) == {
        "server": {"endpoint": "https://tailor.example.com/tabby/py", "token": 'to"k'}
    }


def test_openai_environment_completes_against_the_server(
    server: LiveServer, acme_ide: IdeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    snippet = client(acme_ide, "openai", server.url, token="tok-acme")
    for line in snippet["settings"]["env"].splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        monkeypatch.setenv(name, shlex.split(value)[0])
    out = openai.OpenAI(max_retries=0).completions.create(
        model=snippet["settings"]["model"], prompt="def ", suffix="\n", max_tokens=4
    )
    assert out.choices[0].finish_reason in ("stop", "length")
    assert not any(t in out.choices[0].text for t in FIM_TEXTS)


def test_settings_name_the_model_with_its_family_for_template_detection() -> None:
    model = IdeModel("payments-completion", "qwen2.5-coder-1.5b", QWEN_CODER)
    assert client(model, "continue")["settings"]["models"][0]["model"] == (
        "payments-completion-qwen2.5-coder-1.5b"
    )
