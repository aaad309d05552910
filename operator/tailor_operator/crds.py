"""CustomResourceDefinitions generated from the pydantic models, so they cannot drift.

`python -m tailor_operator.crds --write charts/tailor/files/crds/` refreshes the chart's
copies; `--check DIR` fails when they differ (the chart tests assert the same).

Pydantic writes JSON Schema (draft 2020-12); Kubernetes wants a *structural* OpenAPI v3
schema: every node typed, no `$ref`, no `anyOf` with null (`nullable` instead), boolean
`exclusiveMinimum`, no `additionalProperties` beside `properties`. `structural_schema`
converts and refuses what it cannot express rather than dropping it silently.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from tailor_operator.resources import (
    GROUP,
    VERSION,
    FineTuneJobSpec,
    FineTuneJobStatus,
    InferenceEndpointSpec,
    InferenceEndpointStatus,
    TeamSpec,
    TeamStatus,
)


class SchemaNotStructural(ValueError):
    """A model uses JSON Schema that a Kubernetes structural schema cannot express."""


# Formats the API server understands; other formats would be ignored there, so we drop them.
_K8S_FORMATS = {
    "int32", "int64", "float", "double", "byte", "date", "date-time", "password",
    "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "uuid", "duration",
}  # fmt: skip
_COPIED = {
    "description", "type", "enum", "minimum", "maximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "required", "nullable", "maxProperties", "minProperties",
}  # fmt: skip
_DROPPED = {"title", "examples"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model (refs inlined, nulls nullable)."""
    raw = model.model_json_schema(mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, model.__name__)


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs, path)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _COPIED or key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "format":
            if value in _K8S_FORMATS:
                out[key] = value
        elif key == "default":
            if value is not None:  # a null default is the absence of the field
                out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out[key] = {n: _convert(s, defs, f"{path}.{n}") for n, s in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _convert(value, defs, f"{path}{{}}")
            # False: the API server prunes unknown fields (and rejects them under
            # strict field validation); `properties` beside it would not be structural.
        elif key == "uniqueItems":
            if value:
                out["x-kubernetes-list-type"] = "set"
        elif key not in _DROPPED:
            raise SchemaNotStructural(f"{path}: JSON Schema keyword {key!r} has no CRD form")
    _check_typed(out, path)
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """Inline `$ref`/single `allOf`, and turn `anyOf: [X, null]` into `X` + `nullable`."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_resolve(target, defs, path), **node}  # the field's description wins
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaNotStructural(f"{path}: allOf with {len(parts)} parts")
        node = {**_resolve(parts[0], defs, path), **node}
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) != 1:
            raise SchemaNotStructural(
                f"{path}: a union of {len(branches)} types cannot be a structural schema; "
                "use one type (optionally nullable)"
            )
        node = {**_resolve(branches[0], defs, path), **node, "nullable": True}
    return node


def _check_typed(schema: dict[str, Any], path: str) -> None:
    free = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
        "x-kubernetes-int-or-string"
    )
    if "type" not in schema and not free:
        raise SchemaNotStructural(f"{path}: has no type")


@dataclass(frozen=True)
class CustomResource:
    """One Tailor custom resource: its names, models and printer columns."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[tuple[str, str, str, int], ...]  # name, type, jsonPath, priority
    description: str

    @property
    def name(self) -> str:
        """The CRD's metadata.name (`<plural>.<group>`)."""
        return f"{self.plural}.{GROUP}"


_AGE = ("Age", "date", ".metadata.creationTimestamp", 0)

FINETUNEJOB = CustomResource(
    kind="FineTuneJob",
    plural="finetunejobs",
    short_names=("ftj",),
    namespaced=True,
    spec=FineTuneJobSpec,
    status=FineTuneJobStatus,
    columns=(
        ("Team", "string", ".spec.team", 0),
        ("Method", "string", ".spec.train.method", 0),
        ("GPUs", "integer", ".spec.resources.gpus", 0),
        ("Nodes", "integer", ".status.nodes", 0),
        ("GPUs/Node", "integer", ".status.gpusPerNode", 0),
        ("Phase", "string", ".status.phase", 0),
        ("Reason", "string", ".status.reason", 1),
        ("Job", "string", ".status.jobName", 1),
        _AGE,
    ),
    description="A fine-tune of a base code model on a team's dataset, run as batch/v1 Jobs.",
)
INFERENCEENDPOINT = CustomResource(
    kind="InferenceEndpoint",
    plural="inferenceendpoints",
    short_names=("ie", "tie"),
    namespaced=True,
    spec=InferenceEndpointSpec,
    status=InferenceEndpointStatus,
    columns=(
        ("Team", "string", ".spec.team", 0),
        ("Backend", "string", ".spec.backend", 0),
        ("Replicas", "integer", ".spec.replicas", 0),
        ("Ready", "integer", ".status.readyReplicas", 0),
        ("Phase", "string", ".status.phase", 0),
        ("URL", "string", ".status.url", 1),
        _AGE,
    ),
    description="A team's code-assistant endpoint: a base model with the team's adapters.",
)
TEAM = CustomResource(
    kind="Team",
    plural="teams",
    short_names=("tteam",),
    namespaced=False,
    spec=TeamSpec,
    status=TeamStatus,
    columns=(
        ("Namespace", "string", ".status.namespace", 0),
        ("GPUs", "integer", ".spec.quota.gpus", 0),
        ("Borrow", "integer", ".spec.quota.gpuBorrowingLimit", 0),
        ("Phase", "string", ".status.phase", 0),
        _AGE,
    ),
    description="A tenant: a namespace with its Kueue queues, quota and network isolation.",
)
CUSTOM_RESOURCES = (FINETUNEJOB, INFERENCEENDPOINT, TEAM)


def crd(resource: CustomResource) -> dict[str, Any]:
    """The CustomResourceDefinition manifest of one custom resource."""
    columns = [
        {"name": name, "type": kind, "jsonPath": json_path, **({"priority": p} if p else {})}
        for name, kind, json_path, p in resource.columns
    ]
    schema = {
        "type": "object",
        "description": resource.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(resource.spec),
            "status": structural_schema(resource.status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": resource.name, "labels": {"app.kubernetes.io/part-of": "tailor"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": list(resource.short_names),
                "categories": ["tailor"],
            },
            "scope": "Namespaced" if resource.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def generate_crds() -> list[dict[str, Any]]:
    """Every Tailor CRD, in a stable order."""
    return [crd(resource) for resource in CUSTOM_RESOURCES]


def file_name(manifest: dict[str, Any]) -> str:
    """Where a CRD lives in the chart's CRD folder."""
    return f"{manifest['metadata']['name']}.yaml"


def render(manifest: dict[str, Any]) -> str:
    """A CRD as the YAML text kept in the chart (stable key order)."""
    header = "# Generated by `python -m tailor_operator.crds --write`; do not edit.\n"
    return header + yaml.safe_dump(manifest, sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    """Print, write or check the generated CRDs."""
    parser = argparse.ArgumentParser(prog="python -m tailor_operator.crds", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="DIR", type=Path, help="write one file per CRD")
    group.add_argument("--check", metavar="DIR", type=Path, help="fail if DIR is out of date")
    args = parser.parse_args(argv)
    manifests = generate_crds()
    if args.write is not None:
        args.write.mkdir(parents=True, exist_ok=True)
        for manifest in manifests:
            (args.write / file_name(manifest)).write_text(render(manifest))
        return 0
    if args.check is not None:
        stale = [
            file_name(m)
            for m in manifests
            if not (args.check / file_name(m)).exists()
            or (args.check / file_name(m)).read_text() != render(m)
        ]
        for name in stale:
            print(f"{args.check / name} is out of date: run {parser.prog} --write {args.check}")
        return 1 if stale else 0
    sys.stdout.write("---\n".join(render(m) for m in manifests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
