"""A team's home, its repositories, and its datasets (harvests with progress and statistics)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from api.console.forms import FormErrors, lines, optional_float, parse, service_errors
from api.console.web import (
    PREFIX,
    Admin,
    Form,
    Member,
    Viewer,
    form_text,
    render,
    saved,
    team_router,
)
from api.deps import CipherDep, SenderDep, SessionDep, SettingsDep
from tailor.errors import TailorError
from tailor.jobs import service as jobs
from tailor.pagination import MAX_LIMIT
from tailor.services.adapters import service as registry
from tailor.services.datasets import service as datasets
from tailor.services.endpoints import service as endpoint_service
from tailor.services.repositories import service as repositories
from tailor.services.repositories.schemas import RepositoryCreate
from tailor.stages.harvest.spec import HarvestSpec
from tailor.stages.harvest.urls import UrlPolicy
from tailor.tenancy import TeamAccess

router = team_router()


def _base(access: TeamAccess) -> str:
    return f"{PREFIX}/teams/{access.team.slug}"


@router.get("")
def home(request: Request, access: Viewer, session: SessionDep, settings: SettingsDep) -> Response:
    """Everything the team has, one section each."""
    repos, _ = repositories.list_repositories(session, access, None, MAX_LIMIT)
    sets, _ = datasets.list_datasets(session, access, None, MAX_LIMIT)
    tunes, _ = jobs.list_jobs(session, access, None, MAX_LIMIT, kind="finetune")
    adapters, _ = registry.list_adapters(session, access, None, MAX_LIMIT)
    endpoints = [
        endpoint_service.endpoint_out(session, ep, settings.serve_url)
        for ep in endpoint_service.list_endpoints(session, access)
    ]
    return render(
        request,
        "home.html",
        access=access,
        repositories=[repositories.to_out(r) for r in repos],
        datasets=list(reversed(sets)),
        finetunes=list(reversed(tunes)),
        adapters=adapters,
        endpoints=endpoints,
    )


# --- repositories


def _repositories_page(
    request: Request,
    access: TeamAccess,
    session: SessionDep,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    rows, _ = repositories.list_repositories(session, access, None, MAX_LIMIT)
    return render(
        request,
        "repositories.html",
        status,
        access=access,
        repositories=[repositories.to_out(r) for r in rows],
        errors=errors or {},
        values=values or {"branch": "main", "credential_kind": "none"},
    )


@router.get("/repositories")
def repository_list(request: Request, access: Viewer, session: SessionDep) -> Response:
    """The team's repositories and the form to register one."""
    return _repositories_page(request, access, session)


@router.post("/repositories")
def register_repository(
    request: Request,
    form: Form,
    access: Admin,
    session: SessionDep,
    cipher: CipherDep,
    settings: SettingsDep,
) -> Response:
    """Register a repository; the credential is write-only (never shown again, even on error)."""
    values = {
        k: form_text(form, k)
        for k in ("name", "url", "branch", "include", "exclude", "credential_kind")
    }
    raw_credential = form.get("credential")
    credential = raw_credential.strip() if isinstance(raw_credential, str) else ""
    data: dict[str, Any] = {
        "name": values["name"],
        "url": values["url"],
        "branch": values["branch"] or "main",
        "include": lines(values["include"]),
        "exclude": lines(values["exclude"]),
        "credential_kind": values["credential_kind"] or "none",
        "credential": credential or None,
    }
    try:
        body = parse(RepositoryCreate, data)
        repositories.create_repository(session, access, body, cipher, UrlPolicy.of(settings))
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        if isinstance(exc, TailorError) and exc.status == 409:
            errors = {"name": exc.detail}
        return _repositories_page(request, access, session, 422, errors, values)
    return saved(session, f"{_base(access)}/repositories", "repository-registered")


@router.post("/repositories/{name}/delete")
def delete_repository(name: str, form: Form, access: Admin, session: SessionDep) -> Response:
    """Forget a repository (datasets built from it stay)."""
    repositories.delete_repository(session, access, name)
    return saved(session, f"{_base(access)}/repositories", "repository-deleted")


# --- datasets


def _datasets_page(
    request: Request,
    access: TeamAccess,
    session: SessionDep,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    rows, _ = datasets.list_datasets(session, access, None, MAX_LIMIT)
    repos, _ = repositories.list_repositories(session, access, None, MAX_LIMIT)
    defaults = HarvestSpec()
    return render(
        request,
        "datasets.html",
        status,
        access=access,
        datasets=list(reversed(rows)),
        repositories=[r.name for r in repos],
        defaults=defaults,
        errors=errors or {},
    )


@router.get("/datasets")
def dataset_list(request: Request, access: Viewer, session: SessionDep) -> Response:
    """The team's datasets and the form to start a harvest."""
    return _datasets_page(request, access, session)


@router.post("/datasets")
def start_harvest(
    request: Request, form: Form, access: Member, session: SessionDep, sender: SenderDep
) -> Response:
    """Start a harvest of the chosen repositories (none chosen: all of them)."""
    chosen = [v for v in form.getlist("repositories") if isinstance(v, str) and v]
    data: dict[str, Any] = {"repositories": chosen or None}
    holdout = optional_float(form_text(form, "holdout_fraction"))
    if holdout is not None:
        data["holdout_fraction"] = holdout
    threshold = optional_float(form_text(form, "dedup_threshold"))
    if threshold is not None:
        data["dedup"] = {"threshold": threshold}
    try:
        out = datasets.start_harvest(session, access, parse(HarvestSpec, data), sender)
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        if "dedup" in errors:
            errors["dedup_threshold"] = errors.pop("dedup")
        return _datasets_page(request, access, session, 422, errors)
    return saved(session, f"{_base(access)}/datasets/{out.id}", "harvest-started")


def stat_sections(stats: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """A dataset's statistics as figures and as tables of counts (with a bar per row)."""
    figures: list[tuple[str, str]] = []
    tables: list[dict[str, Any]] = []
    for key, value in stats.items():
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, int | float) for v in value.values())
        ):
            top = max(abs(float(v)) for v in value.values()) or 1.0
            rows = sorted(value.items(), key=lambda kv: -float(kv[1]))
            tables.append(
                {
                    "title": key.replace("_", " "),
                    "rows": [(k, v, abs(float(v)) / top) for k, v in rows],
                }
            )
        elif isinstance(value, int | float | str | bool) or value is None:
            figures.append((key.replace("_", " "), str(value)))
        else:
            figures.append((key.replace("_", " "), json.dumps(value, default=str)[:500]))
    return figures, tables


def _dataset_context(access: TeamAccess, session: SessionDep, dataset_id: str) -> dict[str, Any]:
    dataset = datasets.get_dataset(session, access, dataset_id)
    out = datasets.show(session, dataset)
    job = jobs.get_job(session, access, out.job_id)
    figures, tables = stat_sections(out.stats)
    return {
        "access": access,
        "dataset": out,
        "job": job,
        "figures": figures,
        "tables": tables,
        "events": jobs.events(session, job),
    }


@router.get("/datasets/{dataset_id}")
def dataset_detail(
    dataset_id: str, request: Request, access: Viewer, session: SessionDep
) -> Response:
    """A harvest's progress while it runs, its statistics when done."""
    return render(request, "dataset.html", **_dataset_context(access, session, dataset_id))


@router.get("/datasets/{dataset_id}/live")
def dataset_live(
    dataset_id: str, request: Request, access: Viewer, session: SessionDep
) -> Response:
    """The changing part of the dataset page, for the page's refresh script."""
    return render(request, "dataset_live.html", **_dataset_context(access, session, dataset_id))


@router.post("/datasets/{dataset_id}/cancel")
def cancel_harvest(
    dataset_id: str, form: Form, access: Member, session: SessionDep, settings: SettingsDep
) -> Response:
    """Stop a queued or running harvest."""
    datasets.cancel_harvest(session, access, dataset_id, settings.job_stale_after_s)
    return saved(session, f"{_base(access)}/datasets/{dataset_id}", "cancel-requested")
