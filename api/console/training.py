"""Fine-tunes (form with defaults, live loss curves and logs) and evaluations side by side."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request, Response
from pydantic import ValidationError

from api.console.forms import FormErrors, optional_float, optional_int, parse, service_errors
from api.console.plots import job_plots
from api.console.web import (
    PREFIX,
    Form,
    Member,
    Viewer,
    form_text,
    render,
    saved,
    team_router,
)
from api.deps import SenderDep, SessionDep, SettingsDep
from tailor.config import Settings
from tailor.db.models import JobState
from tailor.errors import NotFound, TailorError
from tailor.jobs import service as jobs
from tailor.pagination import MAX_LIMIT
from tailor.services.adapters import service as registry
from tailor.services.costs import service as costs
from tailor.services.datasets import service as datasets
from tailor.services.endpoints.gate import evaluation_gate
from tailor.services.evaluations.service import EvaluationCreate, start_evaluation
from tailor.services.finetunes.service import start_finetune
from tailor.stages.evaluate.spec import Comparison, EvalReport
from tailor.stages.train.spec import TrainSpec
from tailor.tenancy import TeamAccess

router = team_router()

# Fields of the fine-tune form: name -> (label, kind); the defaults come from TrainSpec.
TRAIN_FIELDS: dict[str, tuple[str, str]] = {
    "lora_r": ("LoRA rank (empty: auto)", "int"),
    "lora_alpha": ("LoRA alpha (empty: 2 x rank)", "int"),
    "learning_rate": ("Learning rate (empty: auto)", "float"),
    "epochs": ("Epochs (empty: auto)", "float"),
    "max_steps": ("Max steps (empty: by epochs)", "int"),
    "seq_len": ("Sequence length (tokens)", "int"),
    "micro_batch": ("Micro-batch", "int"),
    "grad_accum": ("Gradient accumulation", "int"),
    "fim_rate": ("FIM rate", "float"),
    "eval_interval": ("Evaluate every N steps (0: start and end)", "int"),
}


def _base(access: TeamAccess) -> str:
    return f"{PREFIX}/teams/{access.team.slug}"


def _ready_datasets(session: SessionDep, access: TeamAccess) -> list[str]:
    rows, _ = datasets.list_datasets(session, access, None, MAX_LIMIT)
    return [d.id for d in reversed(rows) if d.state == JobState.succeeded]


def _finetunes_page(
    request: Request,
    access: TeamAccess,
    session: SessionDep,
    settings: SettingsDep,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    rows, _ = jobs.list_jobs(session, access, None, MAX_LIMIT, kind="finetune")
    ready = _ready_datasets(session, access)
    defaults: dict[str, Any] = {name: TrainSpec.model_fields[name].default for name in TRAIN_FIELDS}
    defaults.update(
        base_model=settings.serve_base_model,
        adapter_name="completion",
        method="lora",
        dataset_id=ready[0] if ready else "",
        allow_qlora_fallback=True,
    )
    return render(
        request,
        "finetunes.html",
        status,
        access=access,
        finetunes=list(reversed(rows)),
        datasets=ready,
        fields=TRAIN_FIELDS,
        values={**defaults, **(values or {})},
        errors=errors or {},
    )


@router.get("/finetunes")
def finetune_list(
    request: Request, access: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    """The team's fine-tunes and the form to start one."""
    return _finetunes_page(request, access, session, settings)


def _train_data(form: Form, access: TeamAccess) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {
        k: form_text(form, k) for k in ("base_model", "dataset_id", "adapter_name", "method")
    }
    values["allow_qlora_fallback"] = form.get("allow_qlora_fallback") == "on"
    data: dict[str, Any] = {"team": access.team.slug, **values}
    for name, (_label, kind) in TRAIN_FIELDS.items():
        text = form_text(form, name)
        values[name] = text
        parsed = optional_int(text) if kind == "int" else optional_float(text)
        if parsed is not None:
            data[name] = parsed
    return values, data


@router.post("/finetunes")
def start(
    request: Request,
    form: Form,
    access: Member,
    session: SessionDep,
    sender: SenderDep,
    settings: SettingsDep,
) -> Response:
    """Start a fine-tune from the form; its page shows the loss curve as it trains."""
    values, data = _train_data(form, access)
    try:
        job = start_finetune(session, access, parse(TrainSpec, data), sender, settings)
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        return _finetunes_page(request, access, session, settings, 422, errors, values)
    notice = "finetune-started-over-budget" if job.warnings else "finetune-started"
    return saved(session, f"{_base(access)}/jobs/{job.id}", notice)


# --- jobs


def _job_context(
    access: TeamAccess, session: SessionDep, settings: Settings, job_id: str
) -> dict[str, Any]:
    job = jobs.get_job(session, access, job_id)
    events = list(jobs.events(session, job))
    return {
        "access": access,
        "job": job,
        "cost": costs.job_cost(session, job, settings),
        "plots": job_plots(jobs.metric_series(session, job).series),
        "events": events[-200:],
    }


@router.get("/jobs/{job_id}")
def job_detail(
    job_id: str, request: Request, access: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    """A job: state, progress, cost, metric plots and its log, refreshed while it runs."""
    return render(request, "job.html", **_job_context(access, session, settings, job_id))


@router.get("/jobs/{job_id}/live")
def job_live(
    job_id: str, request: Request, access: Viewer, session: SessionDep, settings: SettingsDep
) -> Response:
    """The changing part of the job page, for the page's refresh script."""
    return render(request, "job_live.html", **_job_context(access, session, settings, job_id))


@router.post("/jobs/{job_id}/cancel")
def cancel_job(
    job_id: str, form: Form, access: Member, session: SessionDep, settings: SettingsDep
) -> Response:
    """Cancel a job (idempotent once it has finished)."""
    job = jobs.get_job(session, access, job_id)
    jobs.request_cancel(session, access, job, settings.job_stale_after_s)
    return saved(session, f"{_base(access)}/jobs/{job_id}", "cancel-requested")


# --- evaluations


def _evaluations_page(
    request: Request,
    access: TeamAccess,
    session: SessionDep,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    rows, _ = jobs.list_jobs(session, access, None, MAX_LIMIT, kind="evaluation")
    adapters, _ = registry.list_adapters(session, access, None, MAX_LIMIT)
    return render(
        request,
        "evaluations.html",
        status,
        access=access,
        evaluations=list(reversed(rows)),
        adapters=[a for a in adapters if a.latest_version],
        errors=errors or {},
    )


@router.get("/evaluations")
def evaluation_list(request: Request, access: Viewer, session: SessionDep) -> Response:
    """The team's evaluations and the form to start one."""
    return _evaluations_page(request, access, session)


@router.post("/evaluations")
def start_eval(
    request: Request, form: Form, access: Member, session: SessionDep, sender: SenderDep
) -> Response:
    """Evaluate an adapter version against its base model."""
    data: dict[str, Any] = {
        "adapter": form_text(form, "adapter"),
        "version": optional_int(form_text(form, "version")),
        "humaneval": {"enabled": form.get("humaneval") == "on"},
    }
    tasks = optional_int(form_text(form, "fim_tasks"))
    if tasks is not None:
        data["fim"] = {"tasks": tasks}
    try:
        job = start_evaluation(session, access, parse(EvaluationCreate, data), sender)
    except (FormErrors, TailorError) as exc:
        session.rollback()
        errors = exc.errors if isinstance(exc, FormErrors) else service_errors(exc)
        if "fim" in errors:
            errors["fim_tasks"] = errors.pop("fim")
        return _evaluations_page(request, access, session, 422, errors)
    return saved(session, f"{_base(access)}/evaluations/{job.id}", "evaluation-started")


def _cell(metric: str, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if metric.startswith(("fim.", "humaneval.")):
        return f"{100 * value:.1f}%"
    return f"{value:.3f}"


def comparison_rows(report: EvalReport) -> list[dict[str, Any]]:
    """Base vs adapter per metric, with the delta marked better or worse."""
    rows = []
    for row in report.comparison:
        rows.append(
            {
                "metric": row.metric,
                "base": _cell(row.metric, row.base),
                "adapter": _cell(row.metric, row.adapter),
                "delta": _delta(row),
                "better": _better(row),
                "ci": _ci(row),
                "n": row.n,
                "bars": _bars(row),
            }
        )
    return rows


def _delta(row: Comparison) -> str:
    if row.delta is None or math.isnan(row.delta):
        return "-"
    if row.metric.startswith(("fim.", "humaneval.")):
        return f"{100 * row.delta:+.1f} pt"
    return f"{row.delta:+.3f}"


def _better(row: Comparison) -> str:
    if row.delta is None or math.isnan(row.delta) or row.delta == 0:
        return "same"
    return "better" if (row.delta > 0) == row.higher_is_better else "worse"


def _ci(row: Comparison) -> str:
    if row.ci_low is None or row.ci_high is None:
        return ""
    scale = 100.0 if row.metric.startswith(("fim.", "humaneval.")) else 1.0
    return f"[{scale * row.ci_low:+.1f}, {scale * row.ci_high:+.1f}]"


def _bars(row: Comparison) -> tuple[float, float] | None:
    """Bar widths (0..1) for metrics that are shares, so both models read at a glance."""
    if not row.metric.startswith(("fim.", "humaneval.")):
        return None
    base = row.base if row.base is not None and math.isfinite(row.base) else 0.0
    adapter = row.adapter if row.adapter is not None and math.isfinite(row.adapter) else 0.0
    return max(0.0, min(1.0, base)), max(0.0, min(1.0, adapter))


@router.get("/evaluations/{job_id}")
def evaluation_detail(
    job_id: str, request: Request, access: Viewer, session: SessionDep
) -> Response:
    """The adapter and its base model side by side, with the team's publish gate."""
    job = jobs.get_job(session, access, job_id)
    if job.kind != "evaluation":
        raise NotFound(f"evaluation {job_id} not found in team '{access.team.slug}'")
    report: EvalReport | None = None
    if job.state == JobState.succeeded and job.result:
        try:
            report = EvalReport.model_validate(job.result)
        except ValidationError:
            report = None
    gate = evaluation_gate(access.team.publish_policy, job.result) if report else None
    return render(
        request,
        "evaluation.html",
        access=access,
        job=job,
        report=report,
        rows=comparison_rows(report) if report else [],
        examples=(report.examples[:10] if report else []),
        gate=gate,
        plots=[],
        events=list(jobs.events(session, job))[-50:],
    )
