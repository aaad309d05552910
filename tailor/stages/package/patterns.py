"""Module-name patterns of a LoRA config, matched literally or as globs, never as regexes.

PEFT reads `rank_pattern` and `alpha_pattern` keys, a string `target_modules` or
`exclude_modules`, and `layers_pattern` as regular expressions. An uploaded config is
another team's text: a key that backtracks catastrophically would pin the shared worker.
So Tailor never hands such text to `re`. It matches a key as a glob (`*` any run of
characters, `?` one) anchored the way PEFT anchors its keys: a key matches a module whose
name equals it or ends with `.key`. Before PEFT sees an imported config, `canonical_config`
rewrites every pattern into the names of the modules the weights adapt, so PEFT's own
matching only ever meets module names of the base. Pure Python, no torch: the API checks
uploads with it too.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from tailor.stages.package.errors import InvalidAdapterError
from tailor.stages.package.spec import CONFIG_FILE

V = TypeVar("V")
PATTERN_FIELDS = ("rank_pattern", "alpha_pattern")
# Fields PEFT uses to pick target modules by regex (or with one): replaced by the weights' list.
SELECTOR_FIELDS = ("exclude_modules", "layers_pattern", "layers_to_transform")
NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
KEY_CHARS = NAME_CHARS | {"*", "?"}
MAX_KEY_LENGTH = 256
MAX_KEYS = 4096
MAX_RANK = 4096


def glob_match(pattern: str, text: str) -> bool:
    """Whether `text` matches the glob `pattern` as a whole (`*` any run, `?` one character).

    Greedy with one backtrack point (the last `*`): at most len(pattern) * len(text) steps,
    whatever the pattern.
    """
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] != "*" and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def key_matches(key: str, module: str) -> bool:
    """Whether a pattern key selects `module`: the whole name, or a tail after a dot."""
    if glob_match(key, module):
        return True
    dot = module.find(".")
    while dot != -1:
        if glob_match(key, module[dot + 1 :]):
            return True
        dot = module.find(".", dot + 1)
    return False


def pattern_value(patterns: Mapping[str, V], module: str, default: V) -> V:
    """The value of the first key (in the config's order, as PEFT takes it) matching `module`."""
    for key, value in patterns.items():
        if key_matches(key, module):
            return value
    return default


def is_module_name(name: str) -> bool:
    """A dotted module path: non-empty parts of letters, digits and underscores."""
    parts = name.split(".")
    return all(p and set(p) <= NAME_CHARS - {".", "-"} for p in parts)


def check_patterns(config: Mapping[str, Any]) -> None:
    """Refuse pattern keys that are not module names or globs, and values that are not sizes."""
    for field in PATTERN_FIELDS:
        patterns = config.get(field)
        if patterns is None:
            continue
        if not isinstance(patterns, dict):
            raise InvalidAdapterError(f"{CONFIG_FILE}: {field} must map module names to values")
        if len(patterns) > MAX_KEYS:
            raise InvalidAdapterError(
                f"{CONFIG_FILE}: {field} has {len(patterns)} keys; the limit is {MAX_KEYS}"
            )
        for key, value in patterns.items():
            _check_key(field, key)
            _check_value(field, key, value)


def _check_key(field: str, key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not set(key) <= KEY_CHARS:
        shown = key if len(key) <= 60 else key[:60] + "…"
        raise InvalidAdapterError(
            f"{CONFIG_FILE}: {field} key {shown!r} is not a module name or glob. Tailor matches "
            "these keys literally or as globs (`*`, `?`) against module names, never as regular "
            "expressions: name the modules (`c_attn`, `transformer.h.0.attn.c_attn`) or use a "
            f"glob (`h.*.mlp.c_fc`), at most {MAX_KEY_LENGTH} characters"
        )


def _check_value(field: str, key: str, value: object) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if field == "rank_pattern":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_RANK
    else:
        ok = number and 0 < float(value) <= 1e6  # type: ignore[arg-type]
    if not ok:
        raise InvalidAdapterError(
            f"{CONFIG_FILE}: {field}[{key!r}] must be a positive "
            + (f"integer rank (at most {MAX_RANK})" if field == "rank_pattern" else "number")
        )


def canonical_config(config: Mapping[str, Any], modules: Iterable[str]) -> dict[str, Any]:
    """The config with every pattern spelled as the modules it selects among `modules`.

    `modules` are the adapted modules, as the weights name them. Pattern keys become those
    names (each with the value of the first key that matches it); a target selection PEFT
    would compute with a regex (a string `target_modules`, `exclude_modules`,
    `layers_pattern`) becomes the list of adapted modules, which is what it selected when
    the adapter was trained. Ordinary configs keep their `target_modules` list.
    """
    check_patterns(config)
    adapted = sorted(set(modules))
    out = dict(config)
    if isinstance(config.get("target_modules"), str) or any(
        config.get(f) not in (None, [], "") for f in SELECTOR_FIELDS
    ):
        out["target_modules"] = adapted
        for field in SELECTOR_FIELDS:
            out.pop(field, None)
    for field in PATTERN_FIELDS:
        patterns = config.get(field) or {}
        picked = {m: pattern_value(patterns, m, None) for m in adapted}
        out[field] = {m: v for m, v in picked.items() if v is not None}
    return out
