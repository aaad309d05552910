"""Starting adapter operations from the API: compose, export, transfer, import.

Each function checks what it can without torch (the API has none) — tenancy, bases,
rank rules, the upload's safety — then creates a job that `tailor.services.adapter_jobs.run`
runs in a worker. The caller's transaction commits; the task is sent after the commit.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tailor.db.models import Adapter, AdapterVersion, BaseModelEntry
from tailor.errors import InvalidInput, TailorError
from tailor.jobs import service as jobs
from tailor.jobs.schemas import JobOut
from tailor.queue import TASKS, send_after_commit
from tailor.services.adapters.intake import UPLOAD_FILES, check_upload
from tailor.services.adapters.schemas import (
    ComposeRequest,
    ExportLinks,
    ExportRequest,
    ImportForm,
    TransferRequest,
)
from tailor.services.adapters.service import get_version
from tailor.services.base_models import service as catalog
from tailor.stages.package.architecture import architecture_problems
from tailor.stages.package.archive import ArchiveLimits
from tailor.stages.package.errors import (
    BaseMismatchError,
    IncompatibleBaseError,
    RankRuleError,
    VersionNotFoundError,
)
from tailor.stages.package.spec import (
    ADAPTER_NAME_PATTERN,
    CONFIG_FILE,
    CompositionSpec,
    WeightedAdapter,
    format_ref,
)
from tailor.storage import FileStore, ObjectStore, StoreError, team_prefix
from tailor.tenancy import TeamAccess

COMPOSE_TASK = TASKS["adapter-compose"]
EXPORT_TASK = TASKS["adapter-export"]
TRANSFER_TASK = TASKS["adapter-transfer"]
IMPORT_TASK = TASKS["adapter-import"]
# The same limit `tailor.stages.package.compose` enforces in the worker (a test keeps them equal);
# checked here too so a 'cat' over it is refused before a job is queued.
MAX_RANK = 256
EXPORT_MANIFEST = "tailor_export.json"  # as `tailor.stages.package.merge` writes it, last
MAX_LINK_EXPIRY_S = 7 * 24 * 3600  # S3 SigV4 presigned URLs live at most 7 days


class LinksUnavailable(TailorError):
    """The object store cannot sign download links (the embedded `file://` store)."""

    status = 501
    type_slug = "export-links-unavailable"
    title = "Download links need an S3 object store"


def export_prefix(team: str, name: str, version: int) -> str:
    """`teams/<team>/exports/<name>/<version>/`: where a version's merged checkpoint lives."""
    return f"{team_prefix(team)}exports/{name}/{version}/"


def import_staging_prefix(team: str, job_uid: str) -> str:
    """Where an upload waits, checked, for its import job."""
    return f"{team_prefix(team)}imports/{job_uid}/"


def _check_name(name: str) -> None:
    if not re.match(ADAPTER_NAME_PATTERN, name):
        raise InvalidInput(
            f"adapter name {name!r} is invalid: use lower-case letters, digits, '.', '_' or '-' "
            "(at most 63, starting with a letter or digit)",
            field="name",
        )


def _check_target_base(
    session: Session, access: TeamAccess, name: str, base_model: str, why: str
) -> None:
    """An existing adapter `name` must be on `base_model`: one adapter, one base."""
    existing = session.scalar(
        select(Adapter).where(Adapter.team_id == access.team_id, Adapter.name == name)
    )
    if existing is not None and existing.base_model != base_model:
        raise BaseMismatchError(
            f"adapter '{name}' is on base {existing.base_model!r} but {why} is on {base_model!r}; "
            "register the result under another adapter name"
        )


def _stored_config(store: ObjectStore, version: AdapterVersion) -> dict[str, Any] | None:
    try:
        config = json.loads(store.get_bytes(version.prefix + CONFIG_FILE))
    except (StoreError, ValueError):
        return None  # the worker reports a missing or broken file with its own message
    return config if isinstance(config, dict) else None


def _ranks(configs: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {
        ref: max([int(c.get("r", 0)), *(int(r) for r in (c.get("rank_pattern") or {}).values())])
        for ref, c in configs.items()
    }


def check_rank_rule(combination: str, configs: dict[str, dict[str, Any]]) -> None:
    """The rank rules `linear` and `cat` have, from the stored configs (svd needs the base)."""
    ranks = _ranks(configs)
    listed = ", ".join(f"{ref} has rank {r}" for ref, r in ranks.items())
    total = sum(ranks.values())
    patterns = {json.dumps(c.get("rank_pattern") or {}, sort_keys=True) for c in configs.values()}
    if combination == "linear" and (len(set(ranks.values())) > 1 or len(patterns) > 1):
        raise RankRuleError(
            "'linear' adds the LoRA A and B matrices element-wise, so every input needs the "
            f"same rank, but {listed}. Use 'cat' (exact, rank {total}) or 'svd' with an "
            "svd_rank of your choice (any input ranks)."
        )
    if combination == "cat" and total > MAX_RANK:
        raise RankRuleError(
            f"'cat' stacks the inputs, so its rank is the sum of theirs ({listed}: {total}), "
            f"above the limit of {MAX_RANK}. Use 'svd' with svd_rank <= {MAX_RANK}."
        )


def _composition(body: ComposeRequest, refs: list[str]) -> CompositionSpec:
    try:
        return CompositionSpec(
            adapters=[
                WeightedAdapter(ref=ref, weight=i.weight)
                for ref, i in zip(refs, body.inputs, strict=True)
            ],
            combination_type=body.combination,
            svd_rank=body.svd_rank,
        )
    except ValidationError as exc:
        reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise InvalidInput(f"cannot compose these inputs: {reasons}", field="inputs") from exc


def start_compose(
    session: Session,
    access: TeamAccess,
    store: ObjectStore,
    name: str,
    body: ComposeRequest,
    sender: Celery,
) -> JobOut:
    """Queue a composition of the team's versions into a new version of adapter `name`."""
    _check_name(name)
    versions = [get_version(session, access, i.adapter, i.version)[1] for i in body.inputs]
    refs = [format_ref(i.adapter, v.version) for i, v in zip(body.inputs, versions, strict=True)]
    spec = _composition(body, refs)
    first = versions[0]
    for ref, v in zip(refs, versions, strict=True):
        if (v.base_model, v.base_revision) != (first.base_model, first.base_revision):
            raise BaseMismatchError(
                f"adapters of different base models cannot be combined: {refs[0]} was trained on "
                f"{first.base_model}@{first.base_revision or 'latest'} but {ref} on "
                f"{v.base_model}@{v.base_revision or 'latest'}. Transfer one of them to the other "
                "base first, or combine adapters of one base."
            )
    _check_target_base(session, access, name, first.base_model, "the composition")
    configs = {ref: _stored_config(store, v) for ref, v in zip(refs, versions, strict=True)}
    if all(c is not None for c in configs.values()):
        check_rank_rule(body.combination, {r: c for r, c in configs.items() if c is not None})
    dataset = body.eval_dataset_id or next((v.dataset_uid for v in versions if v.dataset_uid), None)
    payload = {
        "name": name,
        "composition": spec.model_dump(mode="json"),
        "eval_dataset_id": dataset,
    }
    return _queue(session, access, "adapter-compose", payload, sender, COMPOSE_TASK)


def start_transfer(
    session: Session,
    access: TeamAccess,
    name: str,
    version: int,
    body: TransferRequest,
    sender: Celery,
) -> JobOut:
    """Queue a transfer of a version onto another catalog base (checked in full by the job)."""
    _adapter, source = get_version(session, access, name, version)
    target_base = catalog.resolve(session, body.target_base, field="target_base")
    catalog.check_revision(target_base, body.target_revision, "target_revision")
    if target_base.name == source.base_model:
        raise InvalidInput(
            f"{name}@{version} is already on {target_base.name}; name another base to transfer to",
            field="target_base",
        )
    ref = f"{name}@{source.version}"
    _check_architecture(ref, catalog.find(session, source.base_model), target_base)
    target = body.target_name or f"{name}-transfer"[:63]
    _check_name(target)
    _check_target_base(session, access, target, target_base.name, "the transferred version")
    payload = {
        "source": {"name": name, "version": source.version},
        "target_name": target,
        "transfer": {"target_base": target_base.name, "target_revision": target_base.revision},
        "eval_dataset_id": body.eval_dataset_id or source.dataset_uid,
    }
    return _queue(session, access, "adapter-transfer", payload, sender, TRANSFER_TASK)


def _check_architecture(
    ref: str, source_base: BaseModelEntry | None, target_base: BaseModelEntry
) -> None:
    """Refuse a target of another architecture or size now, when both are known here.

    The catalog's families are compared first; configs are read for directory sources
    this machine can see. Everything else is left to the job, which downloads both.
    """
    if source_base is None:
        return  # the version's base left the catalog: the job says so
    if source_base.family and target_base.family and source_base.family != target_base.family:
        problems = [f"architecture {source_base.family} vs {target_base.family}"]
    else:
        source = catalog.local_config(source_base.source)
        target = catalog.local_config(target_base.source)
        if source is None or target is None:
            return
        problems = architecture_problems(source, target)
    if problems:
        raise IncompatibleBaseError(
            f"cannot transfer {ref} to {target_base.name}: "
            + "; ".join(problems)
            + ". Transfer works only between bases of one architecture and size (e.g. sibling "
            "fine-tunes of one pre-trained model); train a new adapter on this base instead."
        )


def start_export(
    session: Session,
    access: TeamAccess,
    name: str,
    version: int,
    body: ExportRequest,
    sender: Celery,
) -> JobOut:
    """Queue a merge of a version into its base, exported under `teams/<team>/exports/`."""
    _adapter, row = get_version(session, access, name, version)
    payload = {"name": name, "version": row.version, "max_shard_size": body.max_shard_size}
    return _queue(session, access, "adapter-export", payload, sender, EXPORT_TASK)


def export_links(
    session: Session,
    access: TeamAccess,
    store: ObjectStore,
    name: str,
    version: int,
    expires_s: int,
) -> ExportLinks:
    """Presigned GET links for the files of a finished export of one of the team's versions."""
    _adapter, row = get_version(session, access, name, version)
    prefix = export_prefix(access.team.slug, name, row.version)
    if isinstance(store, FileStore):
        raise LinksUnavailable(
            "this installation keeps objects in a local directory (file://), which cannot sign "
            f"download links; the export is at {store.root / prefix} on the API's machine. "
            "Configure an S3 object store (s3://) for presigned links."
        )
    if not store.exists(prefix + EXPORT_MANIFEST):
        raise VersionNotFoundError(
            f"no finished export of {name}@{version}: POST .../versions/{version}/export and "
            "wait for its job to succeed"
        )
    expires_s = max(1, min(expires_s, MAX_LINK_EXPIRY_S))
    files = {key[len(prefix) :]: store.presign_get(key, expires_s) for key in store.list(prefix)}
    return ExportLinks(
        adapter=name,
        version=row.version,
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_s),
        files=files,
    )


def start_import(
    session: Session,
    access: TeamAccess,
    store: ObjectStore,
    name: str,
    saved: list[Path],
    work_dir: Path,
    form: ImportForm,
    sender: Celery,
    limits: ArchiveLimits | None = None,
) -> JobOut:
    """Check an upload, stage it in the team's store and queue the job that registers it.

    `saved` are the files as received (their sizes bounded by `tailor.services.adapters.uploads`);
    `work_dir` is scratch space the caller removes. Bad input raises before anything is
    stored.
    """
    _check_name(name)
    existing = session.scalar(
        select(Adapter).where(Adapter.team_id == access.team_id, Adapter.name == name)
    )
    named = form.base_model or (existing.base_model if existing else None)
    if not named:
        raise InvalidInput(
            f"adapter '{name}' is new: name its base model (base_model form field), a base of "
            f"the platform's catalog; {catalog.HOW_TO_LIST}",
            field="base_model",
        )
    base = catalog.resolve(session, named)
    catalog.check_revision(base, form.base_revision, "base_revision")
    _check_target_base(session, access, name, base.name, "the upload")
    root = check_upload(saved, work_dir, limits)
    payload = {
        "name": name,
        "base_model": base.name,
        "base_revision": base.revision,
        "eval_dataset_id": form.eval_dataset_id,
    }
    job = jobs.create_job(session, access, "adapter-import", payload)
    staging = import_staging_prefix(access.team.slug, job.uid)
    for file_name in UPLOAD_FILES:
        store.upload_file(root / file_name, staging + file_name)
    job.spec = {**payload, "staging": staging}
    send_after_commit(session, sender, IMPORT_TASK, job.uid)
    return JobOut.of(job)


def _queue(
    session: Session,
    access: TeamAccess,
    kind: str,
    payload: dict[str, Any],
    sender: Celery,
    task: str,
) -> JobOut:
    job = jobs.create_job(session, access, kind, payload)
    send_after_commit(session, sender, task, job.uid)
    return JobOut.of(job)
