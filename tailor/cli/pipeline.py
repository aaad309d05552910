"""`tailor dataset | finetune | job | adapter | endpoint`: the pipeline from a terminal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml

from tailor.cli.adapters import adapter_compose, adapter_export, adapter_import, adapter_transfer
from tailor.cli.client import Client
from tailor.cli.follow import follow_job
from tailor.cli.output import Output, OutputOpt, console, show
from tailor.stages.serve.ide import CLIENTS as IDE_CLIENTS

dataset_app = typer.Typer(help="Harvest repositories into datasets.", no_args_is_help=True)
finetune_app = typer.Typer(help="Fine-tune adapters on datasets.", no_args_is_help=True)
job_app = typer.Typer(help="Follow and cancel jobs.", no_args_is_help=True)
adapter_app = typer.Typer(help="The adapter registry.", no_args_is_help=True)
endpoint_app = typer.Typer(help="Publish adapters to the team's endpoint.", no_args_is_help=True)

DATASET_COLS = ("id", "state", "progress", "repositories", "created_at")
JOB_COLS = ("id", "kind", "state", "progress", "message", "error")
ENDPOINT_COLS = ("name", "adapter", "version", "previous_version", "url")
FollowOpt = typer.Option(True, "--follow/--no-follow", help="Wait and show progress.")


def _finish(job: dict[str, Any]) -> None:
    if job["state"] != "succeeded":
        console.print(f"[red]{job['state']}[/red] {job.get('error') or ''}")
        raise typer.Exit(1)


def _show_hyperparameters(job: dict[str, Any]) -> None:
    chosen = (job.get("result") or {}).get("hyperparameters")
    if job.get("kind") == "finetune" and chosen:
        auto = ", ".join(chosen["auto"]) or "none"
        console.print(f"hyperparameters (auto: {auto}): {chosen['reason']}")


def _show_estimate(job: dict[str, Any]) -> None:
    estimate = job.get("estimate") or {}
    if estimate.get("gpu_hours") is not None:
        price = estimate.get("price")
        cost = "no price set" if price is None else f"{price:.2f} {estimate.get('currency')}"
        console.print(
            f"estimate: {estimate['gpu_hours']:.4g} GPU-hours on "
            f"{estimate.get('gpu_type') or 'the CPU'}, {cost} ({estimate.get('basis')})"
        )
    for warning in job.get("warnings") or []:
        console.print(f"[yellow]{warning}[/yellow]")
    final = (job.get("result") or {}).get("cost")
    if final:
        price = (
            "no price set" if final["cost"] is None else f"{final['cost']:.2f} {final['currency']}"
        )
        console.print(f"final: {final['gpu_hours']:.4g} GPU-hours, {price}")


def dataset_create(
    team: str,
    repo: list[str] = typer.Option([], help="Only these (repeatable)."),
    follow: bool = FollowOpt,
    output: Output = OutputOpt,
) -> None:
    """Harvest the team's repositories into a new dataset."""
    api = Client()
    body = {"repositories": repo or None}
    ds = api.post(f"/v1/teams/{team}/datasets", body)
    if follow:
        _finish(follow_job(api, team, ds["job_id"]))
        ds = api.get(f"/v1/teams/{team}/datasets/{ds['id']}")
    show(ds, output, DATASET_COLS)


def dataset_list(team: str, output: Output = OutputOpt) -> None:
    """The team's datasets."""
    show(Client().list_all(f"/v1/teams/{team}/datasets"), output, DATASET_COLS)


def dataset_show(team: str, dataset_id: str, output: Output = OutputOpt) -> None:
    """One dataset with its statistics."""
    ds = Client().get(f"/v1/teams/{team}/datasets/{dataset_id}")
    if output == Output.json:
        show(ds, output)
        return
    show(ds, output, DATASET_COLS)
    console.print_json(data=ds["stats"])


def read_spec(path: Path) -> dict[str, Any]:
    """A TrainSpec file (YAML or JSON) as a mapping."""
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold a mapping of TrainSpec fields")
    return data


def finetune_start(
    team: str,
    spec: Path = typer.Argument(..., exists=True, dir_okay=False),
    follow: bool = FollowOpt,
    output: Output = OutputOpt,
) -> None:
    """Start a fine-tune from a TrainSpec file (YAML or JSON)."""
    api = Client()
    job = api.post(f"/v1/teams/{team}/finetunes", {"team": team, **read_spec(spec)})
    if output != Output.json:
        _show_estimate(job)
    if follow:
        job = follow_job(api, team, job["id"])
        _finish(job)
    show(job, output, JOB_COLS)
    if output != Output.json:
        _show_hyperparameters(job)
        _show_estimate({"result": job.get("result")})


def job_list(
    team: str,
    kind: str | None = typer.Option(None, help="harvest, finetune, evaluation, ..."),
    output: Output = OutputOpt,
) -> None:
    """The team's jobs, oldest first."""
    path = f"/v1/teams/{team}/jobs" + (f"?kind={kind}" if kind else "")
    show(Client().list_all(path), output, JOB_COLS)


def job_show(team: str, job_id: str, output: Output = OutputOpt) -> None:
    """A job's state (a fine-tune's also with the hyperparameters it trained with)."""
    job = Client().get(f"/v1/teams/{team}/jobs/{job_id}")
    show(job, output, JOB_COLS)
    if output != Output.json:
        _show_hyperparameters(job)
        _show_estimate({"result": job.get("result"), "estimate": job.get("estimate")})


def job_follow(team: str, job_id: str, output: Output = OutputOpt) -> None:
    """Wait for a job, printing its log."""
    show(follow_job(Client(), team, job_id), output, JOB_COLS)


def job_cancel(team: str, job_id: str, output: Output = OutputOpt) -> None:
    """Cancel a job."""
    show(Client().post(f"/v1/teams/{team}/jobs/{job_id}/cancel"), output, JOB_COLS)


def job_metrics(team: str, job_id: str) -> None:
    """A job's metric series as JSON."""
    typer.echo(json.dumps(Client().get(f"/v1/teams/{team}/jobs/{job_id}/metrics"), indent=2))


def adapter_list(team: str, output: Output = OutputOpt) -> None:
    """The team's adapters."""
    show(
        Client().list_all(f"/v1/teams/{team}/adapters"),
        output,
        ("name", "base_model", "latest_version", "created_at"),
    )


def adapter_versions(team: str, name: str, output: Output = OutputOpt) -> None:
    """Versions of an adapter with lineage."""
    show(
        Client().get(f"/v1/teams/{team}/adapters/{name}/versions"),
        output,
        ("version", "base_model", "dataset_id", "parents", "size_bytes", "in_use_by"),
    )


def endpoint_publish(
    team: str,
    adapter: str,
    name: str = typer.Option(None),
    version: int = typer.Option(None),
    override_gate: bool = False,
    output: Output = OutputOpt,
) -> None:
    """Publish an adapter version at the team's endpoint."""
    body = {
        "name": name or adapter,
        "adapter": adapter,
        "version": version,
        "override_gate": override_gate,
    }
    show(Client().post(f"/v1/teams/{team}/endpoints", body), output, ENDPOINT_COLS)


def endpoint_check(
    team: str,
    name: str,
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Wait and show the result."),
    output: Output = OutputOpt,
) -> None:
    """Check that the endpoint serves what was evaluated: the evaluation's FIM tasks sent
    over HTTP as an IDE sends them must agree with the adapter run in process."""
    api = Client()
    job = api.post(f"/v1/teams/{team}/endpoints/{name}/served-check")
    if follow:
        job = follow_job(api, team, job["id"])
    if output == Output.json or not job.get("result"):
        show(job, output, JOB_COLS)
    else:
        console.print(agreement_line(job["result"]))
    if follow and job["state"] != "succeeded":
        console.print(f"[red]{job['state']}[/red] {job.get('error') or ''}")
        raise typer.Exit(1)


def agreement_line(result: dict[str, Any]) -> str:
    """One line for a served check's result: identical tasks and edit similarity each way."""
    return (
        f"{result['endpoint']}: {result['identical']}/{result['tasks']} FIM tasks answered "
        f"identically over HTTP; edit similarity served {result['served_similarity']:.1%}, "
        f"in process {result['in_process_similarity']:.1%}"
    )


def endpoint_ide(
    team: str,
    name: str,
    client: str = typer.Option(
        None, help=f"Print only this client's text to paste and its steps: {'|'.join(IDE_CLIENTS)}"
    ),
) -> None:
    """Settings to paste into llm-vscode, Continue, Tabby, llm.nvim or an OpenAI client
    (all of them as JSON, or one client's file as it is pasted)."""
    if client is not None and client not in IDE_CLIENTS:
        raise typer.BadParameter(f"pick one of {', '.join(IDE_CLIENTS)}", param_hint="--client")
    ide = Client().get(f"/v1/teams/{team}/endpoints/{name}/ide")
    if client is None:
        typer.echo(json.dumps(ide, indent=2, ensure_ascii=False))
        return
    snippet = ide["clients"][client]
    typer.echo(snippet["content"], nl=False)
    steps = "\n".join(f"  {i}. {step}" for i, step in enumerate(snippet["steps"], 1))
    typer.echo(f"\n# {snippet['title']}: in {snippet['file']}\n{steps}", err=True)


def endpoint_list(team: str, output: Output = OutputOpt) -> None:
    """The team's endpoints."""
    show(Client().get(f"/v1/teams/{team}/endpoints"), output, ENDPOINT_COLS)


def endpoint_promote(team: str, name: str, version: int, output: Output = OutputOpt) -> None:
    """Serve another version of the endpoint's adapter."""
    body = {"version": version}
    show(Client().post(f"/v1/teams/{team}/endpoints/{name}/promote", body), output, ENDPOINT_COLS)


def endpoint_rollback(team: str, name: str, output: Output = OutputOpt) -> None:
    """Go back to the previously served version."""
    show(Client().post(f"/v1/teams/{team}/endpoints/{name}/rollback"), output, ENDPOINT_COLS)


def endpoint_usage(
    team: str,
    days: int = typer.Option(30, min=1, max=366, help="How many days back."),
    by: str = typer.Option(
        "member", help="Slice by member, language, version or day (total: the first row)."
    ),
    output: Output = OutputOpt,
) -> None:
    """Completions served and kept from the team's IDEs: acceptance rate, latency, tokens."""
    if by not in USAGE_SLICES:
        raise typer.BadParameter(f"--by is one of {', '.join(USAGE_SLICES)}", param_hint="--by")
    stats = Client().get(f"/v1/teams/{team}/telemetry", params={"days": days})
    if output == Output.json:
        show(stats, output)
        return
    rows = [{"key": "(all)", **stats["total"]}, *stats[f"by_{by}"]]
    show(rows, output, USAGE_COLS)


USAGE_SLICES = ("member", "language", "version", "day")
USAGE_COLS = (
    "key",
    "completions",
    "accepted",
    "acceptance_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "prompt_tokens",
    "completion_tokens",
)


COMMANDS: dict[typer.Typer, dict[str, Callable[..., None]]] = {
    dataset_app: {"create": dataset_create, "list": dataset_list, "show": dataset_show},
    finetune_app: {"start": finetune_start},
    job_app: {
        "list": job_list,
        "show": job_show,
        "follow": job_follow,
        "cancel": job_cancel,
        "metrics": job_metrics,
    },
    adapter_app: {
        "list": adapter_list,
        "versions": adapter_versions,
        "compose": adapter_compose,
        "export": adapter_export,
        "transfer": adapter_transfer,
        "import": adapter_import,
    },
    endpoint_app: {
        "publish": endpoint_publish,
        "list": endpoint_list,
        "ide": endpoint_ide,
        "check": endpoint_check,
        "promote": endpoint_promote,
        "rollback": endpoint_rollback,
        "usage": endpoint_usage,
    },
}
NAMES = {
    dataset_app: "dataset",
    finetune_app: "finetune",
    job_app: "job",
    adapter_app: "adapter",
    endpoint_app: "endpoint",
}


def register(app: typer.Typer, api_errors: Callable[[Any], Any]) -> None:
    """Attach the pipeline command groups to the root app."""
    for group, commands in COMMANDS.items():
        for name, fn in commands.items():
            group.command(name)(api_errors(fn))
        app.add_typer(group, name=NAMES[group])
