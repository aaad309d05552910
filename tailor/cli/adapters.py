"""`tailor adapter compose | export | transfer | import`: registry operations from a terminal."""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from tailor.cli.client import ApiError, Client
from tailor.cli.follow import follow_job
from tailor.cli.output import Output, OutputOpt, console, err_console, show

JOB_COLS = ("id", "kind", "state", "progress", "message", "error")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
INPUT = re.compile(r"^(?P<adapter>[^@=]+)(?:@(?P<version>[1-9][0-9]*))?(?:=(?P<weight>.+))?$")
FollowOpt = typer.Option(True, "--follow/--no-follow", help="Wait and show progress.")
EvalDatasetOpt = typer.Option(None, "--eval-dataset", help="Held-out code to evaluate on.")


def parse_input(text: str) -> dict[str, Any]:
    """`NAME@VERSION=WEIGHT` as a compose input; default the latest version, weight 1.0."""
    match = INPUT.match(text.strip())
    if not match:
        raise typer.BadParameter(
            f"{text!r}: write an input as NAME, NAME@VERSION or NAME@VERSION=WEIGHT"
        )
    try:
        weight = float(match["weight"]) if match["weight"] else 1.0
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: the weight after '=' must be a number") from exc
    version = int(match["version"]) if match["version"] else None
    return {"adapter": match["adapter"], "version": version, "weight": weight}


def _run(api: Client, team: str, job: dict[str, Any], follow: bool) -> dict[str, Any]:
    if not follow:
        return job
    job = follow_job(api, team, job["id"])
    if job["state"] != "succeeded":
        console.print(f"[red]{job['state']}[/red] {job.get('error') or ''}")
        raise typer.Exit(1)
    return job


def adapter_compose(
    team: str,
    name: str = typer.Argument(..., help="Adapter the new version is registered under."),
    inputs: list[str] = typer.Option(
        ...,
        "--input",
        "-i",
        help="NAME, NAME@VERSION or NAME@VERSION=WEIGHT; two or more (repeatable).",
    ),
    combination: str = typer.Option("svd", help="linear | svd | cat"),
    svd_rank: int = typer.Option(None, help="Rank of an svd result."),
    eval_dataset: str = EvalDatasetOpt,
    follow: bool = FollowOpt,
    output: Output = OutputOpt,
) -> None:
    """Combine adapter versions of one base into a new version (then evaluated)."""
    api = Client()
    body = {
        "inputs": [parse_input(i) for i in inputs],
        "combination": combination,
        "svd_rank": svd_rank,
        "eval_dataset_id": eval_dataset,
    }
    job = api.post(f"/v1/teams/{team}/adapters/{name}/compose", body)
    show(_run(api, team, job, follow), output, JOB_COLS)


def adapter_transfer(
    team: str,
    name: str,
    version: int,
    target_base: str = typer.Argument(
        ..., help="Catalog name of the new base (`tailor base list`)."
    ),
    target_revision: str = typer.Option(None, help="Leave out: the catalog's revision is used."),
    target_name: str = typer.Option(None, help="Adapter to register under; default NAME-transfer."),
    eval_dataset: str = EvalDatasetOpt,
    follow: bool = FollowOpt,
    output: Output = OutputOpt,
) -> None:
    """Apply an adapter version to another base of the same architecture (then evaluated)."""
    api = Client()
    body = {
        "target_base": target_base,
        "target_revision": target_revision,
        "target_name": target_name,
        "eval_dataset_id": eval_dataset,
    }
    job = api.post(f"/v1/teams/{team}/adapters/{name}/versions/{version}/transfer", body)
    show(_run(api, team, job, follow), output, JOB_COLS)


def adapter_export(
    team: str,
    name: str,
    version: int,
    max_shard_size: str = typer.Option("5GB", help="Largest checkpoint shard, e.g. 2GB."),
    links_only: bool = typer.Option(False, "--links-only", help="Only print download links."),
    expires: int = typer.Option(3600, help="Seconds the download links stay valid."),
    follow: bool = FollowOpt,
    output: Output = OutputOpt,
) -> None:
    """Merge a version into its base, export the checkpoint and print its download links."""
    api = Client()
    path = f"/v1/teams/{team}/adapters/{name}/versions/{version}/export"
    if not links_only:
        job = _run(api, team, api.post(path, {"max_shard_size": max_shard_size}), follow)
        if not follow:
            show(job, output, JOB_COLS)
            return
    try:
        links = api.get(path, params={"expires_s": expires})
    except ApiError as exc:
        if exc.status != 501 or links_only:
            raise
        err_console.print(f"exported; no download links: {exc.problem.get('detail', '')}")
        return
    if output == Output.json:
        show(links, output)
        return
    show([{"file": f, "url": u} for f, u in links["files"].items()], output, ("file", "url"))
    console.print(f"links expire at {links['expires_at']}")


def upload_files(paths: list[Path]) -> list[Path]:
    """The files to send: an archive as is, a directory's two adapter files, or files."""
    if len(paths) == 1 and paths[0].is_dir():
        found = [paths[0] / f for f in ADAPTER_FILES if (paths[0] / f).is_file()]
        if not found:
            raise typer.BadParameter(f"{paths[0]} holds neither of {', '.join(ADAPTER_FILES)}")
        return found
    return paths


def adapter_import(
    team: str,
    name: str,
    paths: list[Path] = typer.Argument(
        ..., exists=True, help="A .tar/.zip, an adapter directory, or the two adapter files."
    ),
    base_model: str = typer.Option(
        None, help="Catalog name of its base (`tailor base list`); default the adapter's."
    ),
    base_revision: str = typer.Option(None, help="Leave out: the catalog's revision is used."),
    eval_dataset: str = EvalDatasetOpt,
    follow: bool = FollowOpt,
    output: Output = OutputOpt,
) -> None:
    """Upload a PEFT LoRA adapter trained elsewhere as a new version (checked, then evaluated)."""
    api = Client()
    data = {
        k: v
        for k, v in {
            "base_model": base_model,
            "base_revision": base_revision,
            "eval_dataset_id": eval_dataset,
        }.items()
        if v
    }
    with ExitStack() as stack:
        files = [
            ("files", (p.name, stack.enter_context(p.open("rb")))) for p in upload_files(paths)
        ]
        job = api.request(
            "POST", f"/v1/teams/{team}/adapters/{name}/import", files=files, data=data
        )
    show(_run(api, team, job, follow), output, JOB_COLS)
