"""The whole onboarding through `tailor` commands against a live embedded platform.

`tailor up` runs the API, a real Celery worker and the inference gateway; the test only
types commands, as a team lead would, and makes the completion an IDE would make.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tailor.demo.gitserver import GitServer
from tailor.demo.team_repo import write_demo_repo
from tailor.demo.tiny import tiny_base_cached
from tests.train.conftest import CACHE_ROOT

GIT_TOKEN = "deploy-7c1d9e2f"
TAILOR = [sys.executable, "-m", "tailor.cli.main"]
pytestmark = pytest.mark.slow


@dataclass
class Platform:
    """A running `tailor up` and the environment its CLI talks to it with."""

    env: dict[str, str]
    gateway: str

    def run(self, *args: str) -> str:
        """Run `tailor ARGS`, fail the test with its output if it fails, return stdout."""
        done = subprocess.run(
            [*TAILOR, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"tailor {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(*urls: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if all(httpx.get(f"{u}/readyz", timeout=2).status_code == 200 for u in urls):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{urls} never became ready")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    api_port, gw_port = free_port(), free_port()
    env = {
        **os.environ,
        "TAILOR_WORKSPACE": str(tmp_path / "ws"),
        "TAILOR_URL": f"http://127.0.0.1:{api_port}",
        "TAILOR_SERVE_URL": f"http://127.0.0.1:{gw_port}",
        "TAILOR_SERVE_BASE_MODEL": "tiny-starcoder",
        "TAILOR_GIT_ALLOW_HTTP": "true",
        "TAILOR_GIT_ALLOW_LOOPBACK": "true",
        "TAILOR_AUTO_EVAL_FIM_TASKS": "12",
        "TAILOR_AUTO_EVAL_HUMANEVAL_SUBSET": "2",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "GIT_TOKEN": GIT_TOKEN,
    }
    boot = Platform(env, env["TAILOR_SERVE_URL"])
    boot.run("db", "upgrade")
    env["TAILOR_TOKEN"] = boot.run("admin", "create-token", "--email", "lead@acme.test").strip()
    # Built already (the shared cache): registered in the catalog as the gateway's base.
    boot.run("base", "build-tiny", str(tiny_base_cached(CACHE_ROOT)), "--name", "tiny-starcoder")
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [*TAILOR, "up", "--port", str(api_port), "--serve-port", str(gw_port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(env["TAILOR_URL"], env["TAILOR_SERVE_URL"])
        yield boot
    finally:
        up.terminate()
        up.wait(timeout=60)


def test_a_team_lead_onboards_from_the_terminal(platform: Platform, tmp_path: Path) -> None:
    with GitServer(tmp_path / "git", tokens={GIT_TOKEN}) as git:
        git.publish("ledger", write_demo_repo(tmp_path / "work", stdlib_files=10))
        platform.run("team", "create", "payments")
        platform.run(
            "repo", "add", "payments", "ledger", git.url("ledger"), "--token-env", "GIT_TOKEN"
        )
        dataset = platform.json("dataset", "create", "payments")
    assert dataset["state"] == "succeeded" and dataset["stats"]["files_kept"] > 10

    assert [b["name"] for b in platform.json("base", "list")] == ["tiny-starcoder"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"base_model: {platform.env['TAILOR_SERVE_BASE_MODEL']}\n"
        f"dataset_id: {dataset['id']}\nadapter_name: completion\nmethod: lora\n"
        "seq_len: 128\nmicro_batch: 4\ngrad_accum: 1\nmax_steps: 6\nlearning_rate: 0.01\n"
    )
    trained = platform.json("finetune", "start", "payments", str(spec))
    assert trained["state"] == "succeeded"

    evaluation = platform.json("job", "list", "payments", "--kind", "evaluation")[-1]
    platform.run("job", "follow", "payments", evaluation["id"])
    table = platform.run("eval", "show", "payments", evaluation["id"])
    assert "fim.exact_match" in table and "humaneval.pass@1" in table

    platform.run("endpoint", "publish", "payments", "completion", "--override-gate")
    ide = json.loads(platform.run("endpoint", "ide", "payments", "completion"))
    settings = ide["clients"]["openai"]["settings"]
    token = platform.run(
        "team", "create-token", "payments", "--name", "ide", "--scopes", "inference"
    )
    client = openai.OpenAI(base_url=settings["base_url"], api_key=token.strip())
    out = client.completions.create(
        model=settings["model"], prompt="def total(rows):\n    ", suffix="\n", max_tokens=8
    )
    assert out.choices[0].finish_reason in {"stop", "length"}
    assert out.model == settings["model"]  # the id the client asked for: the endpoint-family alias

    # CI gets a machine token: a member of its own, not the lead's identity.
    platform.run("team", "create-token", "payments", "--name", "ci", "--machine-role", "member")
    machines = [m for m in platform.json("team", "members", "payments") if m["machine"]]
    assert [(m["name"], m["role"]) for m in machines] == [("ci", "member")]
