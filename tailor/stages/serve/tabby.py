"""Tabby's wire format (what Tabby's IDE plugins, through tabby-agent, send and read): its
completion request with `language` and `segments`, its answer, its events and health.

Tabby lays the editor's context (declarations, snippets of recently changed or opened files)
before the prefix as line comments of the file's language, each under a `Path:` line; so does
this module, within a budget, so that the model sees what Tabby's own server would show it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tailor.stages.context.assemble import EditorSnippet

# A share of the context, in characters, for the editor's snippets (Tabby's own is similar).
SNIPPETS_BUDGET_CHARS = 1536
EVENT_TYPES = ("view", "select", "dismiss")

_HASH_COMMENT = frozenset(
    {"python", "shellscript", "ruby", "r", "perl", "yaml", "toml", "dockerfile", "makefile"}
    | {"elixir", "julia", "powershell", "coffeescript"}
)
_DASH_COMMENT = frozenset({"sql", "lua", "haskell", "ada"})


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Declaration(_Lenient):
    """A declaration the editor's language server found for a symbol in the prefix."""

    filepath: str
    body: str


class Snippet(_Lenient):
    """Code from a recently changed or opened file."""

    filepath: str
    body: str
    score: float = 0.0


class Segments(_Lenient):
    """The editor's text around the cursor and the context tabby-agent collected."""

    prefix: str
    suffix: str | None = None
    filepath: str | None = None
    git_url: str | None = None
    declarations: list[Declaration] | None = None
    relevant_snippets_from_changed_files: list[Snippet] | None = None
    relevant_snippets_from_recently_opened_files: list[Snippet] | None = None
    clipboard: str | None = None


class DebugOptions(_Lenient):
    """Tabby's `debug_options`: `raw_prompt` replaces the segments; `return_snippets` answers
    the repository context placed (`debug_data`); retrieval can be turned off per request."""

    raw_prompt: str | None = None
    return_snippets: bool = False
    disable_retrieval_augmented_code_completion: bool = False


class CompletionRequest(_Lenient):
    """Tabby's `POST /v1/completions`."""

    language: str | None = None
    segments: Segments | None = None
    user: str | None = None
    debug_options: DebugOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    seed: int | None = None


class LogEventRequest(_Lenient):
    """Tabby's `POST /v1/events`: a completion choice was shown, accepted or dismissed."""

    type: Literal["view", "select", "dismiss"]
    completion_id: str = Field(max_length=200)
    choice_index: int = Field(ge=0)
    view_id: str | None = Field(None, max_length=200)
    elapsed: int | None = None


def is_tabby(body: dict[str, Any]) -> bool:
    """True for a `/v1/completions` body in Tabby's shape rather than OpenAI's."""
    if "segments" in body or "debug_options" in body:
        return True
    return "language" in body and "model" not in body and "prompt" not in body


def line_comment(language: str | None) -> str:
    """The line comment of a VS Code language id (`//` unless known otherwise)."""
    lang = (language or "").lower()
    if lang in _HASH_COMMENT:
        return "#"
    if lang in _DASH_COMMENT:
        return "--"
    return "//"


def prompt_parts(req: CompletionRequest) -> tuple[str, str | None]:
    """(prefix, suffix) for the model: the editor's snippets as comments before the prefix.

    With `debug_options.raw_prompt`, the raw prompt and no suffix (the caller splits any FIM
    tokens in it)."""
    if req.debug_options is not None and req.debug_options.raw_prompt is not None:
        return req.debug_options.raw_prompt, None
    seg = req.segments or Segments(prefix="")
    context = _context_lines(seg, line_comment(req.language))
    prefix = "\n".join(context) + "\n" + seg.prefix if context else seg.prefix
    return prefix, seg.suffix if seg.suffix is not None else ""


def _context_lines(seg: Segments, comment: str) -> list[str]:
    snippets: list[Declaration | Snippet] = [
        *(seg.declarations or []),
        *(seg.relevant_snippets_from_changed_files or []),
        *(seg.relevant_snippets_from_recently_opened_files or []),
    ]
    lines: list[str] = []
    used = 0
    for snippet in snippets:
        block = [f"Path: {snippet.filepath}", *snippet.body.splitlines()]
        size = sum(len(line) + len(comment) + 2 for line in block)
        if used + size > SNIPPETS_BUDGET_CHARS:
            break  # most relevant first: what does not fit is the least useful
        used += size
        lines.extend(f"{comment} {line}" if line else comment for line in block)
    return lines


def editor_snippets(req: CompletionRequest) -> list[EditorSnippet]:
    """What the editor sent of other files (retrieval does not repeat it)."""
    seg = req.segments
    if seg is None:
        return []
    sent: list[Declaration | Snippet] = [
        *(seg.declarations or []),
        *(seg.relevant_snippets_from_changed_files or []),
        *(seg.relevant_snippets_from_recently_opened_files or []),
    ]
    return [EditorSnippet(s.filepath, s.body) for s in sent]


def completion_body(
    rid: str, texts: list[str], debug: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Tabby's completion answer: an id (for its events) and the choices (and `debug_data`)."""
    body: dict[str, Any] = {
        "id": rid,
        "choices": [{"index": i, "text": t} for i, t in enumerate(texts)],
    }
    if debug is not None:
        body["debug_data"] = debug
    return body


def health_body(model: str, version: str) -> dict[str, Any]:
    """Tabby's health state, for the model this endpoint serves (no hardware is disclosed)."""
    return {
        "model": model,
        "chat_model": model,
        "device": "remote",
        "arch": "tailor",
        "cpu_info": "",
        "cpu_count": 0,
        "cuda_devices": [],
        "version": {
            "build_date": "",
            "build_timestamp": "",
            "git_sha": "",
            "git_describe": version,
        },
        "webserver": False,
    }


# Tabby's setting: the agent sends no anonymous usage data to TabbyML from this endpoint.
SERVER_SETTING = {"disable_client_side_telemetry": True}
