"""Names and labels of what the operator creates (one place, so they stay consistent)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

PART_OF = "tailor"
MANAGED_BY = "tailor-operator"
FINETUNE_LABEL = "tailor.dev/finetunejob"
ENDPOINT_LABEL = "tailor.dev/inferenceendpoint"
TEAM_LABEL = "tailor.dev/team"
JOB_ID_LABEL = "tailor.dev/job-id"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SPEC_HASH_ANNOTATION = "tailor.dev/spec-hash"

# Pods of an indexed Job are named `<job>-<index>` and that is a DNS label (63 chars),
# so children keep their names well below it.
_MAX_CHILD = 52


def _digest(text: str, size: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def child_name(owner: str, suffix: str = "") -> str:
    """A DNS-1035 name for something an object owns: `<owner><suffix>`, shortened by hash."""
    base = owner if owner[:1].isalpha() else f"t-{owner}"
    name = f"{base}{suffix}"
    if len(name) <= _MAX_CHILD:
        return name
    keep = _MAX_CHILD - len(suffix) - 9
    return f"{base[:keep].rstrip('-.')}-{_digest(owner)}{suffix}"


def label_value(text: str) -> str:
    """A valid label value for any text (63 chars, alphanumeric at both ends)."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", text).strip("-._")
    if len(clean) <= 63 and clean == text:
        return clean
    return f"{clean[:54].strip('-._')}-{_digest(text)}".strip("-")


def labels(component: str, team: str, **extra: str) -> dict[str, str]:
    """The recommended labels plus Tailor's own, on every object the operator makes."""
    result = {
        "app.kubernetes.io/name": "tailor",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        TEAM_LABEL: label_value(team),
    }
    result.update({key: label_value(value) for key, value in extra.items()})
    return result


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """The controller reference that lets Kubernetes' garbage collector clean up."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def spec_hash(payload: str) -> str:
    """A short stable hash of a rendered spec (pod template annotation → rolling update)."""
    return _digest(payload, 16)
