"""Ollama's wire format (what Continue's ollama provider sends and reads): `/api/generate`
(with `suffix`: fill-in-the-middle), `/api/show` and `/api/tags`.

Continue asks `/api/show` for the model's template and does fill-in-the-middle on the server
only when the template uses `.Suffix`; the template shown is written in the model's own FIM
tokens, so it tells the truth about what the server does with a suffix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tailor.fim import FimNames


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Options(_Lenient):
    """The Modelfile parameters a request may set; the rest (num_ctx, num_thread...) are the
    server's business and ignored, as Ollama ignores those it cannot apply."""

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    num_predict: int | None = Field(None, ge=-2)
    stop: str | list[str] | None = None
    seed: int | None = None


class GenerateRequest(_Lenient):
    """Ollama's `POST /api/generate`; it streams unless `stream` is false."""

    model: str = Field(min_length=1)
    prompt: str = ""
    suffix: str | None = None
    raw: bool | None = None
    stream: bool = True
    options: Options = Field(default_factory=lambda: Options.model_validate({}))
    images: list[str] | None = None
    format: Any = None


class ShowRequest(_Lenient):
    """Ollama's `POST /api/show`: older clients (Continue) send `name`, newer ones `model`."""

    model: str | None = Field(None, min_length=1)
    name: str | None = Field(None, min_length=1)

    def model_name(self) -> str | None:
        """The model asked about."""
        return self.model or self.name


def now() -> str:
    """Ollama's `created_at`: RFC 3339 in UTC."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def template(fim: FimNames | None) -> str:
    """A Go template as Ollama's Modelfiles write it; with FIM tokens it uses `.Suffix`."""
    if fim is None:
        return "{{ .Prompt }}"
    pre, suf, mid = (t.replace("▁", " ").lstrip() for t in (fim.prefix, fim.suffix, fim.middle))
    if getattr(fim, "order", "psm") == "suffix_first":
        body = f"{suf}{{{{ .Suffix }}}}{pre}{{{{ .Prompt }}}}"
    else:
        body = f"{pre}{{{{ .Prompt }}}}{suf}{{{{ .Suffix }}}}{mid}"
    return f"{{{{- if .Suffix }}}}{body}{{{{- else }}}}{{{{ .Prompt }}}}{{{{- end }}}}"


def details(family: str) -> dict[str, Any]:
    """A model's `details` (the weights are the server's: no size or quantization is told)."""
    return {
        "parent_model": "",
        "format": "safetensors",
        "family": family,
        "families": [family],
        "parameter_size": "",
        "quantization_level": "",
    }


def show_body(family: str, fim: FimNames | None, context_length: int) -> dict[str, Any]:
    """`/api/show`: the template, the context window (`num_ctx`) and what the model can do."""
    tmpl = template(fim)
    return {
        "modelfile": f"FROM {family}\nTEMPLATE {json.dumps(tmpl)}\n"
        f"PARAMETER num_ctx {context_length}\n",
        "parameters": f"num_ctx {context_length}",
        "template": tmpl,
        "details": details(family),
        "model_info": {"general.basename": family, "general.context_length": context_length},
        "capabilities": ["completion", "insert"] if fim is not None else ["completion"],
        "modified_at": "1970-01-01T00:00:00Z",
    }


def tag(name: str, family: str) -> dict[str, Any]:
    """One model of `/api/tags`."""
    return {
        "name": name,
        "model": name,
        "modified_at": "1970-01-01T00:00:00Z",
        "size": 0,
        "digest": "",
        "details": details(family),
    }


def chunk(model: str, text: str) -> dict[str, Any]:
    """One streamed piece of a generation."""
    return {"model": model, "created_at": now(), "response": text, "done": False}


def final(
    model: str,
    text: str,
    finish_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    total_s: float,
) -> dict[str, Any]:
    """The last object of a generation (the whole one when not streamed), with its counts."""
    return {
        "model": model,
        "created_at": now(),
        "response": text,
        "done": True,
        "done_reason": "length" if finish_reason == "length" else "stop",
        "context": [],
        "total_duration": int(total_s * 1e9),
        "load_duration": 0,
        "prompt_eval_count": prompt_tokens,
        "eval_count": completion_tokens,
    }


def loaded(model: str) -> dict[str, Any]:
    """Ollama's answer to an empty prompt: the model is loaded, nothing is generated."""
    return {
        "model": model,
        "created_at": now(),
        "response": "",
        "done": True,
        "done_reason": "load",
    }


def ndjson(obj: dict[str, Any]) -> bytes:
    """One line of a newline-delimited JSON stream."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
