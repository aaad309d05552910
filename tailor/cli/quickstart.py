"""The quickstart's main job, driven through the API exactly as a team lead would.

A private git server (HTTP with a token) holds the demo team's code; the team registers it,
harvests it, fine-tunes the tiny StarCoder-architecture base model on it, reads the
evaluation against the base, publishes the adapter and asks the gateway for a completion
with the OpenAI SDK, as an IDE would.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from tailor.cli.client import Client
from tailor.cli.follow import follow_job
from tailor.cli.pipeline import agreement_line
from tailor.demo.gitserver import GitServer
from tailor.demo.team_repo import write_demo_repo
from tailor.stages.evaluate.render import render_comparison, render_examples
from tailor.stages.evaluate.spec import EvalReport

console = Console()
TEAM, REPO, ADAPTER = "demo", "ledger", "completion"
PREFIX = "class RefundService:\n    def total(self, account: str) -> int:\n        "
SUFFIX = "\n\n    def reset(self) -> None:\n        self.rows = []\n"


def ensure_team(api: Client) -> None:
    """The demo team, created once."""
    if TEAM not in {t["slug"] for t in api.list_all("/v1/teams")}:
        api.post("/v1/teams", {"slug": TEAM, "name": "Demo team"})


def register_repo(api: Client, url: str, token: str) -> None:
    """Register (or re-point) the team's repository with its deploy token."""
    if REPO in {r["name"] for r in api.list_all(f"/v1/teams/{TEAM}/repositories")}:
        api.delete(f"/v1/teams/{TEAM}/repositories/{REPO}")
    api.post(
        f"/v1/teams/{TEAM}/repositories",
        {"name": REPO, "url": url, "credential_kind": "token", "credential": token},
    )


def run_job(api: Client, job_id: str, what: str) -> dict[str, Any]:
    """Follow a job to its end; stop the quickstart if it did not succeed."""
    console.rule(what)
    job = follow_job(api, TEAM, job_id, poll_s=0.5)
    if job["state"] != "succeeded":
        raise SystemExit(f"{what} {job['state']}: {job.get('error')}")
    return job


def harvest(api: Client) -> str:
    """Harvest the team's repositories; the dataset id."""
    dataset = api.post(f"/v1/teams/{TEAM}/datasets", {})
    run_job(api, dataset["job_id"], "harvest")
    stats = api.get(f"/v1/teams/{TEAM}/datasets/{dataset['id']}")["stats"]
    console.print_json(data=stats)
    return str(dataset["id"])


def finetune(api: Client, base_model: str, dataset_id: str, steps: int | None) -> dict[str, Any]:
    """Fine-tune a base of the catalog on the dataset with LoRA and the FIM objective.

    Epochs, learning rate and rank are left to Tailor (chosen from the dataset's size);
    --steps fixes the step count instead.
    """
    spec: dict[str, Any] = {
        "base_model": base_model,
        "team": TEAM,
        "dataset_id": dataset_id,
        "adapter_name": ADAPTER,
        "method": "lora",
        "seq_len": 256,
        "micro_batch": 8,
        "grad_accum": 1,
        "eval_interval": 25,
    }
    if steps is not None:
        spec |= {"max_steps": steps, "checkpoint_interval": max(1, steps // 2)}
    job = api.post(f"/v1/teams/{TEAM}/finetunes", spec)
    return run_job(api, job["id"], "fine-tune (LoRA, fill-in-the-middle)")


def evaluation(api: Client) -> EvalReport:
    """Wait for the evaluation every fine-tune queues, and show base vs adapter."""
    jobs = api.get(f"/v1/teams/{TEAM}/jobs", params={"kind": "evaluation"})["items"]
    job = run_job(api, jobs[-1]["id"], "evaluation: adapter vs base")
    report = EvalReport.model_validate(job["result"])
    console.print(render_examples(report))
    console.print(render_comparison(report))
    return report


def publish_and_complete(api: Client, gateway: str) -> str:
    """Publish the adapter, issue an IDE token and make a FIM completion as an IDE would."""
    import openai

    if ADAPTER in {e["name"] for e in api.get(f"/v1/teams/{TEAM}/endpoints")}:
        api.delete(f"/v1/teams/{TEAM}/endpoints/{ADAPTER}")
    api.post(
        f"/v1/teams/{TEAM}/endpoints", {"name": ADAPTER, "adapter": ADAPTER, "override_gate": True}
    )
    console.rule("IDE settings (llm-vscode, Continue)")
    console.print_json(data=api.get(f"/v1/teams/{TEAM}/endpoints/{ADAPTER}/ide"))
    token = api.post(f"/v1/teams/{TEAM}/tokens", {"name": "ide", "scopes": ["inference"]})
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=token["token"], max_retries=2)
    out = client.completions.create(
        model=ADAPTER, prompt=PREFIX, suffix=SUFFIX, max_tokens=48, temperature=0
    )
    console.rule("completion from the team's endpoint (OpenAI SDK, prompt + suffix = FIM)")
    console.print(PREFIX + f"[bold green]{out.choices[0].text}[/bold green]" + SUFFIX)
    served_check(api)
    return str(out.choices[0].text)


def served_check(api: Client) -> None:
    """Follow the check publishing queued: the endpoint, over HTTP, against the evaluation."""
    checks = api.get(f"/v1/teams/{TEAM}/jobs", params={"kind": "served-check"})["items"]
    if not checks:
        return
    console.rule("served check: the evaluation's FIM tasks through the gateway")
    job = follow_job(api, TEAM, checks[-1]["id"], poll_s=0.5)
    if job.get("result"):
        console.print(agreement_line(job["result"]))
    if job["state"] != "succeeded":
        raise SystemExit(f"served check {job['state']}: {job.get('error')}")


def main() -> None:
    """Run the whole pipeline once on the embedded platform."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--base-model",
        default="tiny-starcoder",
        help="Catalog name of the base (`tailor base build-tiny` registers tiny-starcoder).",
    )
    parser.add_argument("--gateway", default=os.environ.get("TAILOR_SERVE_URL", ""))
    parser.add_argument("--steps", type=int, default=None, help="Default: chosen by Tailor.")
    args = parser.parse_args()
    api = Client()
    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp, GitServer(Path(tmp) / "git", {token}) as git:
        git.publish(REPO, write_demo_repo(Path(tmp) / "work"))
        ensure_team(api)
        register_repo(api, git.url(REPO), token)
        dataset_id = harvest(api)
    trained = finetune(api, args.base_model, dataset_id, args.steps)
    console.print_json(data=trained["result"])
    evaluation(api)
    if args.gateway:
        publish_and_complete(api, args.gateway)


if __name__ == "__main__":
    main()
