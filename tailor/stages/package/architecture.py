"""Whether two base models share an architecture and sizes, from their `config.json` alone.

Imports nothing but the standard library, so the API can refuse an incompatible transfer
target at request time; `tailor.stages.package.transfer` then checks every adapted module's
shape in the worker.
"""

from __future__ import annotations

from typing import Any

# Config fields that fix weight shapes, under the names different architectures use.
SHAPE_FIELDS: dict[str, tuple[str, ...]] = {
    "hidden size": ("n_embd", "hidden_size", "d_model"),
    "layer count": ("n_layer", "num_hidden_layers", "num_layers"),
    "attention heads": ("n_head", "num_attention_heads"),
    "key/value heads": ("num_key_value_heads", "multi_query"),
    "MLP size": ("n_inner", "intermediate_size", "ffn_dim"),
}


def _field(config: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    for name in names:
        if name in config:
            return name, config[name]
    return None


def architecture_problems(source: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """How the target's config differs from the source base's in what shapes the weights."""
    problems = []
    for key in ("model_type", "architectures"):
        if source.get(key) != target.get(key):
            problems.append(
                f"{key} is {target.get(key)!r}, the adapter's base has {source.get(key)!r}"
            )
    for label, names in SHAPE_FIELDS.items():
        src, tgt = _field(source, names), _field(target, names)
        if src != tgt:
            have = f"{tgt[0]}={tgt[1]!r}" if tgt else "unset"
            want = f"{src[0]}={src[1]!r}" if src else "unset"
            problems.append(f"{label}: target has {have}, the adapter's base has {want}")
    return problems
