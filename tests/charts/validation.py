"""Validate Kubernetes manifests the way a current API server with strict field validation would.

Built-in kinds go through `kubernetes-validate` (the upstream OpenAPI schemas, strict:
unknown fields are errors). Custom resources go through their CRD's structural schema,
converted to JSON Schema with unknown fields rejected (kubectl's default
`--validate=strict` since 1.27): Tailor's from the generated CRDs, Kueue's (v1beta2) and
JobSet's (v1alpha2) from their projects' own CRDs, vendored by `scripts/vendor-crds` from
kubernetes-sigs/kueue ff69552e (after v0.19.2) and kubernetes-sigs/jobset 08dfbdfd.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

ROOT = Path(__file__).resolve().parents[2]
try:
    import tailor_operator  # noqa: F401  (installed with the project)
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "operator"))

from tailor_operator.crds import generate_crds  # noqa: E402

# The oldest version the chart is tested for, and the newest the package knows: an API
# that is removed upstream fails the second.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())
_UPSTREAM = Path(__file__).with_name("upstream-crds.json")


def crd_to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A CRD's structural OpenAPI v3 schema as a strict JSON Schema."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: crd_to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = crd_to_json_schema(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = node["minimum" if key == "exclusiveMinimum" else "maximum"]
            if value:
                out[key] = bound
        elif key in ("minimum", "maximum"):
            exclusive = node.get("exclusiveMinimum" if key == "minimum" else "exclusiveMaximum")
            if not exclusive:
                out[key] = value
        elif not key.startswith("x-kubernetes-") and key not in ("nullable", "format"):
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    free = node.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not free:
        out["additionalProperties"] = False
    return out


@cache
def custom_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → JSON Schema, for Tailor's, Kueue's and JobSet's custom resources."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in generate_crds():
        spec = crd["spec"]
        for version in spec["versions"]:
            api_version = f"{spec['group']}/{version['name']}"
            schema = version["schema"]["openAPIV3Schema"]
            schemas[(api_version, spec["names"]["kind"])] = crd_to_json_schema(schema)
    for key, schema in json.loads(_UPSTREAM.read_text()).items():
        api_version, kind = key.rsplit("/", 1)
        schemas[(api_version, kind)] = crd_to_json_schema(schema)
    return schemas


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Raise if the manifest would not pass strict validation on 1.31 or the newest release."""
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    schema = custom_schemas().get(key)
    if schema is not None:
        jsonschema.Draft202012Validator(schema).validate(manifest)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)
