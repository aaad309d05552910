"""What an endpoint's IDE settings say about its model, read from the registry and the catalog.

The API loads no tokenizer, so the FIM style comes from what is recorded or cheap to read: the
token texts the version was trained with (its spec's `fim_tokens`), else the special tokens of
the base's tokenizer.json where the catalog source is a directory readable here, else the family
the base's catalog name or `model_type` names (`tailor.fim.style_named`). The context window is the
base's own (`max_position_embeddings`/`n_positions`) where its config is readable here, else
the length the version was trained at, else the serving default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tailor.base_names import source_kind
from tailor.db.models import AdapterVersion, Endpoint
from tailor.fim import FimStyle, detect_fim, style_matching, style_named
from tailor.services.base_models import service as catalog
from tailor.stages.serve.callers import base_family
from tailor.stages.serve.ide import DEFAULT_CONTEXT_WINDOW, IdeModel, ide_settings
from tailor.stages.train.spec import FimTokenNames
from tailor.tenancy import TeamAccess

from . import service

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "seq_length")


def endpoint_ide_settings(
    session: Session, access: TeamAccess, name: str, serve_url: str
) -> dict[str, Any]:
    """Every client's settings for one of the team's endpoints (404 for another team's)."""
    ep = service.get_endpoint(session, access, name)
    return ide_settings(serve_url, ide_model(session, ep))


def ide_model(session: Session, ep: Endpoint) -> IdeModel:
    """The served model's id, FIM style and context window, as recorded."""
    version = session.get_one(AdapterVersion, ep.version_id)
    entry = catalog.find(session, version.base_model)
    config = catalog.local_config(entry.source) if entry is not None else None
    model_type = entry.family if entry is not None else ""
    source = entry.source if entry is not None else None
    return IdeModel(
        endpoint=ep.name,
        family=base_family(version.base_model),
        fim=_fim_style(version.spec, source, version.base_model, model_type),
        context_window=_context_window(config, version.spec),
    )


def _fim_style(
    spec: dict[str, Any], source: str | None, base_name: str, model_type: str
) -> FimStyle | None:
    """The style of the spec's own FIM tokens, else of the base tokenizer's special tokens,
    else the one the base's names name."""
    names = spec.get("fim_tokens")
    if isinstance(names, dict):
        try:
            known = style_matching(FimTokenNames.model_validate(names))
        except ValueError:  # a spec stored by an older schema: look further
            known = None
        if known is not None:
            return known
    special = _special_tokens(source)
    found = detect_fim(special) if special else None
    if found is not None and isinstance(found.style, FimStyle):
        return found.style
    return style_named(base_name, model_type)


def _special_tokens(source: str | None) -> dict[str, int]:
    """The added tokens of a directory source's tokenizer.json (FIM tokens are among them),
    when this machine can read it; else none."""
    if source is None or source_kind(source) != "local":
        return {}
    try:
        added = json.loads((Path(source) / "tokenizer.json").read_text()).get("added_tokens")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(added, list):
        return {}
    return {
        t["content"]: t["id"]
        for t in added
        if isinstance(t, dict)
        and isinstance(t.get("content"), str)
        and isinstance(t.get("id"), int)
    }


def _context_window(config: dict[str, object] | None, spec: dict[str, Any]) -> int:
    """The base's context length, else the version's training length, else the default."""
    for key in _CONTEXT_KEYS:
        value = (config or {}).get(key)
        if isinstance(value, int) and value > 0:
            return value
    trained = spec.get("seq_len")
    return trained if isinstance(trained, int) and trained > 0 else DEFAULT_CONTEXT_WINDOW
