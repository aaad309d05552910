"""values.yaml and values.schema.json stay in step, and every value is documented."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import yaml

from tests.charts.conftest import CHART, PRODUCTION

VALUES = CHART / "values.yaml"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_./-]+):")


def declared_keys() -> dict[tuple[str, ...], bool]:
    """Each mapping key of values.yaml (outside lists) → whether a `# --` comment opens it."""
    lines = VALUES.read_text().splitlines()
    stack: list[tuple[int, str | None]] = []
    keys: dict[tuple[str, ...], bool] = {}
    for number, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if line.lstrip().startswith("- "):
            stack.append((indent, None))  # list items are examples, not keys
            continue
        match = _KEY.match(line)
        if match is None:
            continue
        path = (*[k for _, k in stack], match.group(2))
        stack.append((indent, match.group(2)))
        if any(k is None for (k,) in [(k,) for _, k in stack]):
            continue
        keys[tuple(str(k) for k in path)] = _documented(lines, number, indent)
    return keys


def _documented(lines: list[str], number: int, indent: int) -> bool:
    comment = []
    for previous in reversed(lines[:number]):
        if previous.strip().startswith("#") and len(previous) - len(previous.lstrip()) == indent:
            comment.insert(0, previous.strip())
        else:
            break
    return bool(comment) and comment[0].startswith("# --")


def schema_node(path: tuple[str, ...]) -> tuple[dict[str, Any] | None, bool]:
    """The schema of a values path, and whether it is a declared (closed-object) key."""
    node: dict[str, Any] | None = SCHEMA
    declared = True
    for key in path:
        if node is None:
            return None, False
        if key in node.get("properties", {}):
            declared = declared and node.get("additionalProperties") is False
            node = node["properties"][key]
        elif isinstance(node.get("additionalProperties"), dict):
            node, declared = node["additionalProperties"], False
        elif node.get("type") == "object" and "properties" not in node:
            return node, False  # free-form (resources, nodeSelector, security contexts)
        else:
            return None, False
    return node, declared


def schema_paths(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths = set()
    for key, sub in node.get("properties", {}).items():
        paths.add((*prefix, key))
        paths |= schema_paths(sub, (*prefix, key))
    return paths


def test_every_value_is_in_the_schema() -> None:
    missing = [".".join(p) for p in declared_keys() if schema_node(p)[0] is None]

    assert missing == []


def test_every_schema_property_is_a_value() -> None:
    free_form = {p for p in declared_keys() if schema_node(p)[1] is False}
    values = set(declared_keys())
    unknown = [
        ".".join(p)
        for p in schema_paths(SCHEMA)
        if p not in values and not any(p[: len(f)] == f for f in free_form)
    ]

    assert sorted(unknown) == []


def test_every_declared_value_has_a_doc_comment() -> None:
    undocumented = [
        ".".join(path)
        for path, documented in declared_keys().items()
        if schema_node(path)[1] and not documented and "properties" not in schema_node(path)[0]
    ]

    assert undocumented == []


def test_defaults_and_production_values_satisfy_the_schema() -> None:
    defaults = yaml.safe_load(VALUES.read_text())
    jsonschema.validate(defaults, SCHEMA)
    jsonschema.validate(_merge(defaults, yaml.safe_load(PRODUCTION.read_text())), SCHEMA)


def test_a_typo_anywhere_is_rejected() -> None:
    defaults = yaml.safe_load(VALUES.read_text())
    defaults["kueue"]["sharedPool"]["gpu"] = 4

    try:
        jsonschema.validate(defaults, SCHEMA)
    except jsonschema.ValidationError as exc:
        assert "gpu" in exc.message
    else:
        raise AssertionError("kueue.sharedPool.gpu was accepted")


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {k: _merge(base.get(k), v) for k, v in override.items()} | {
            k: v for k, v in base.items() if k not in override
        }
    return override
