"""Ready-to-paste IDE settings for a published endpoint, in each client's own file format.

Every client gets the model's own FIM tokens and context window (`IdeModel`), so what the
editor renders is what the server splits (`Prompter.split_fim`) and what training laid out:

- llm-vscode (VS Code `settings.json`, TGI backend); its token is not a setting but goes in
  through the "Llm: Login" command, spelled out in the steps;
- Continue's `config.yaml` (VS Code and JetBrains): the endpoint as an autocomplete model over
  OpenAI's legacy completions with the model's FIM template, and the same over Ollama's protocol;
- Tabby's agent config (`~/.tabby-client/agent/config.toml`), read by Tabby's VS Code,
  JetBrains and Vim/Neovim plugins;
- llm.nvim (Neovim, the same llm-ls as llm-vscode);
- any OpenAI client (environment variables and a Python snippet).

Setting names follow each client's published schema: llm-vscode's package.json
(`contributes.configuration`), Continue's `@continuedev/config-yaml`, tabby-agent's config
loader, llm.nvim's README; the tests check them against the first three.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from tailor.fim import FimStyle

TOKEN_PLACEHOLDER = "<your Tailor team token>"
TOKEN_ENV = "TAILOR_TOKEN"  # where llm.nvim's settings read the token from
DEFAULT_CONTEXT_WINDOW = 2048
DEFAULT_MAX_NEW_TOKENS = 64  # what Tabby's server decodes per completion, too
CLIENTS = ("llm-vscode", "continue", "tabby", "llm.nvim", "openai")  # the keys of `clients`


@dataclass(frozen=True)
class IdeModel:
    """What the settings tell an editor about the served model."""

    endpoint: str  # the endpoint's name
    family: str  # the base's id, which names its family (`qwen2.5-coder-1.5b`)
    fim: FimStyle | None  # None: the model has no FIM tokens known to Tailor
    context_window: int = DEFAULT_CONTEXT_WINDOW
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    @property
    def model_id(self) -> str:
        """The id clients send: the endpoint with the base family after it, so clients that
        pick a prompt template from the id (Continue, llm-ls) pick the model's."""
        if not self.family or self.endpoint.endswith(f"-{self.family}"):
            return self.endpoint
        return f"{self.endpoint}-{self.family}"

    @property
    def max_prompt_tokens(self) -> int:
        """What a client may put in the prompt so the completion still fits the window."""
        return max(self.context_window - self.max_new_tokens, 1)


@dataclass(frozen=True)
class Snippet:
    """One client's settings: where they go, the text to paste, and the steps around it."""

    title: str
    editors: tuple[str, ...]
    file: str
    format: str  # json, yaml, toml, lua, python, shell
    content: str
    steps: tuple[str, ...] = ()
    settings: Any = field(default=None)  # the same settings as data, where the format has them

    def as_dict(self) -> dict[str, Any]:
        """The JSON the API answers."""
        out: dict[str, Any] = {
            "title": self.title,
            "editors": list(self.editors),
            "file": self.file,
            "format": self.format,
            "content": self.content,
            "steps": list(self.steps),
        }
        if self.settings is not None:
            out["settings"] = self.settings
        return out


def ide_settings(base_url: str, model: IdeModel, token: str = TOKEN_PLACEHOLDER) -> dict[str, Any]:
    """Every client's settings for `model` served at `base_url` (the gateway's public URL).

    `token` stands where a client takes its token in a file; the API leaves the placeholder
    (a response never carries a secret), the tests pass a real one to run the settings.
    """
    base = base_url.rstrip("/")
    snippets = {
        "llm-vscode": llm_vscode(base, model),
        "continue": continue_config(base, model, token),
        "tabby": tabby_config(base, model, token),
        "llm.nvim": llm_nvim(base, model),
        "openai": openai_client(base, model, token),
    }
    return {"model": model_facts(model), "clients": {k: s.as_dict() for k, s in snippets.items()}}


def model_facts(model: IdeModel) -> dict[str, Any]:
    """The facts every snippet is built from, for a client not listed."""
    fim = model.fim
    return {
        "id": model.model_id,
        "endpoint": model.endpoint,
        "context_window": model.context_window,
        "max_new_tokens": model.max_new_tokens,
        "fim": None
        if fim is None
        else {
            "family": fim.name,
            "prefix": fim.prefix,
            "suffix": fim.suffix,
            "middle": fim.middle,
            "order": fim.order,
        },
    }


def _tokens_to_clear(fim: FimStyle | None) -> list[str]:
    """What llm-ls removes from an answer (the server strips specials already: belt and
    braces for a client pointed at another server with the same settings)."""
    return ["<|endoftext|>", *(fim.extra if fim else ())]


def _tgi_parameters(model: IdeModel) -> dict[str, Any]:
    return {
        "max_new_tokens": model.max_new_tokens,
        "temperature": 0.2,
        "top_p": 0.95,
        "do_sample": True,
        "return_full_text": False,
    }


def llm_vscode(base: str, model: IdeModel) -> Snippet:
    """llm-vscode's user settings (TGI backend at the endpoint's own TGI route)."""
    fim = model.fim
    settings: dict[str, Any] = {
        "llm.configTemplate": "Custom",
        "llm.backend": "tgi",
        "llm.url": f"{base}/tgi/{model.endpoint}/generate",
        "llm.disableUrlPathCompletion": True,
        "llm.modelId": model.model_id,
        "llm.fillInTheMiddle.enabled": fim is not None,
    }
    if fim is not None:
        settings["llm.fillInTheMiddle.prefix"] = fim.prefix
        settings["llm.fillInTheMiddle.suffix"] = fim.suffix
        settings["llm.fillInTheMiddle.middle"] = fim.middle
    settings["llm.contextWindow"] = model.context_window
    settings["llm.tokensToClear"] = _tokens_to_clear(fim)
    settings["llm.requestBody"] = {"parameters": _tgi_parameters(model)}
    return Snippet(
        title="llm-vscode (VS Code user settings.json)",
        editors=("VS Code",),
        file="settings.json (Command Palette: 'Preferences: Open User Settings (JSON)')",
        format="json",
        content=json.dumps(settings, indent=2, ensure_ascii=False),
        settings=settings,
        steps=(
            "Install the extension 'huggingface.huggingface-vscode' (llm-vscode).",
            "Merge these keys into your user settings.json.",
            "Command Palette: run 'Llm: Login' and paste your Tailor team token when asked; "
            "the extension keeps it in VS Code's secret storage (there is no token setting).",
            "If ~/.cache/huggingface/token exists, 'Llm: Login' stores that Hugging Face token "
            "without asking: run 'Llm: Logout', move that file aside, run 'Llm: Login' and "
            "paste the Tailor token, then move the file back.",
            "Already logged in with another token? Run 'Llm: Logout' first.",
        ),
    )


def _continue_template(fim: FimStyle) -> str:
    """Continue's Handlebars autocomplete template in the model's FIM tokens and order."""
    if fim.order == "suffix_first":
        return f"{fim.suffix}{{{{{{suffix}}}}}}{fim.prefix}{{{{{{prefix}}}}}}"
    return f"{fim.prefix}{{{{{{prefix}}}}}}{fim.suffix}{{{{{{suffix}}}}}}{fim.middle}"


def continue_config(base: str, model: IdeModel, token: str) -> Snippet:
    """Continue's `config.yaml`: the endpoint as an autocomplete model (OpenAI legacy
    completions with the model's FIM template), and the same model over Ollama's protocol,
    whose `/api/show` template tells Continue the server fills in the middle itself."""
    options = {"contextLength": model.context_window, "maxTokens": model.max_new_tokens}
    autocomplete: dict[str, Any] = {"maxPromptTokens": model.max_prompt_tokens}
    if model.fim is not None:
        autocomplete["template"] = _continue_template(model.fim)
    config = {
        "name": f"Tailor {model.endpoint}",
        "version": "1.0.0",
        "schema": "v1",
        "models": [
            {
                "name": f"Tailor {model.endpoint}",
                "provider": "openai",
                "model": model.model_id,
                "apiBase": f"{base}/v1",
                "apiKey": token,
                "roles": ["autocomplete"],
                "useLegacyCompletionsEndpoint": True,
                "defaultCompletionOptions": options,
                "autocompleteOptions": autocomplete,
            },
            {
                "name": f"Tailor {model.endpoint} (Ollama protocol)",
                "provider": "ollama",
                "model": model.model_id,
                "apiBase": f"{base}/",
                "apiKey": token,
                "roles": ["autocomplete"],
                "defaultCompletionOptions": dict(options),  # a copy: no YAML alias
                "autocompleteOptions": {"maxPromptTokens": model.max_prompt_tokens},
            },
        ],
    }
    return Snippet(
        title="Continue (config.yaml)",
        editors=("VS Code", "JetBrains"),
        file="~/.continue/config.yaml",
        format="yaml",
        content=yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000),
        settings=config,
        steps=(
            "Install Continue (VS Code: 'Continue.continue'; JetBrains: 'Continue' plugin).",
            "Put this in ~/.continue/config.yaml, or merge its `models` into yours "
            "(both IDEs read the same file).",
            "Autocomplete uses the first model; pick the Ollama-protocol one in Continue's "
            "autocomplete model menu to have the server build the FIM prompt instead.",
        ),
    )


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def tabby_config(base: str, model: IdeModel, token: str) -> Snippet:
    """Tabby's agent config: the endpoint's Tabby URL and the team token."""
    endpoint = f"{base}/tabby/{model.endpoint}"
    content = f"[server]\nendpoint = {_toml_string(endpoint)}\ntoken = {_toml_string(token)}\n"
    return Snippet(
        title="Tabby (agent config.toml)",
        editors=("VS Code", "JetBrains", "Vim/Neovim"),
        file="~/.tabby-client/agent/config.toml",
        format="toml",
        content=content,
        settings={"server": {"endpoint": endpoint, "token": token}},
        steps=(
            "Install Tabby's plugin (VS Code: 'TabbyML.vscode-tabby'; JetBrains: 'Tabby'; "
            "Vim/Neovim: 'TabbyML/vim-tabby'); each runs tabby-agent, which reads this file.",
            "Put this in ~/.tabby-client/agent/config.toml (or enter the same endpoint and "
            "token in the plugin's own settings, which take precedence).",
        ),
    )


def _lua_string(text: str) -> str:
    """A Lua string literal that Neovim's LuaJIT (Lua 5.1) reads: it has no `\\u` escape,
    so other characters stay as UTF-8 and control characters become decimal `\\ddd`."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03d}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _lua(value: Any, indent: int = 1) -> str:
    """A Lua literal of JSON-like data."""
    pad = "  " * indent
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, list):
        return "{ " + ", ".join(_lua(v, indent) for v in value) + " }"
    if isinstance(value, dict):
        rows = [f"{pad}{k} = {_lua(v, indent + 1)}," for k, v in value.items()]
        return "{\n" + "\n".join(rows) + "\n" + "  " * (indent - 1) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def llm_nvim(base: str, model: IdeModel) -> Snippet:
    """llm.nvim's setup call (the same llm-ls and TGI route as llm-vscode)."""
    fim = model.fim
    opts: dict[str, Any] = {
        "backend": "tgi",
        "url": f"{base}/tgi/{model.endpoint}/generate",
        "disable_url_path_completion": True,
        "model": model.model_id,
        "tokens_to_clear": _tokens_to_clear(fim),
        "request_body": {"parameters": _tgi_parameters(model)},
        "fim": {"enabled": fim is not None}
        | ({"prefix": fim.prefix, "middle": fim.middle, "suffix": fim.suffix} if fim else {}),
        "context_window": model.context_window,
    }
    body = _lua(opts).removesuffix("}")
    content = "require('llm').setup(" + body + f'  api_token = os.getenv("{TOKEN_ENV}"),\n' + "})\n"
    return Snippet(
        title="llm.nvim (Neovim init.lua)",
        editors=("Neovim",),
        file="init.lua (or your plugin manager's opts for 'huggingface/llm.nvim')",
        format="lua",
        content=content,
        settings=opts,
        steps=(
            f"export {TOKEN_ENV}=<your Tailor team token> in the shell that starts Neovim "
            "(llm.nvim sends `api_token` as a Bearer token).",
            "Add this setup call after installing 'huggingface/llm.nvim'.",
        ),
    )


def openai_client(base: str, model: IdeModel, token: str) -> Snippet:
    """Any OpenAI client: the environment the SDKs read, and a FIM call through `suffix`."""
    env = (
        f"export OPENAI_BASE_URL={shlex.quote(base + '/v1')}\n"
        f"export OPENAI_API_KEY={shlex.quote(token)}\n"
    )
    python = (
        "from openai import OpenAI\n\n"
        "client = OpenAI()  # reads OPENAI_BASE_URL and OPENAI_API_KEY\n"
        f'out = client.completions.create(model="{model.model_id}", prompt="def add(a, b):\\n'
        f'    ", suffix="\\n", max_tokens={model.max_new_tokens}, temperature=0)\n'
        "print(out.choices[0].text)\n"
    )
    return Snippet(
        title="OpenAI clients (environment and Python)",
        editors=("any",),
        file="shell profile; any script",
        format="python",
        content=env + "\n" + python,
        settings={
            "base_url": f"{base}/v1",
            "api_key": token,
            "model": model.model_id,
            "env": env,
            "python": python,
        },
        steps=("Set the two variables, then any OpenAI SDK call reaches the endpoint.",),
    )
