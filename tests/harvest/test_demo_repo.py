"""The quickstart's path: the demo repository served anonymously and harvested."""

from __future__ import annotations

from pathlib import Path

from tailor.demo.gitserver import GitServer
from tailor.demo.team_repo import write_demo_repo
from tailor.stages.harvest.pipeline import run_harvest
from tailor.stages.harvest.spec import HarvestSpec, RepoSource
from tailor.storage import FileStore
from tests.harvest.conftest import LOCAL


def test_the_demo_repository_is_harvested_over_http(tmp_path: Path) -> None:
    worktree = write_demo_repo(tmp_path / "demo", stdlib_files=5)
    with GitServer(tmp_path / "git") as server:  # no tokens: anonymous, like a public repo
        head = server.publish("demo-code", worktree)
        result = run_harvest(
            HarvestSpec(),
            [RepoSource("demo-code", server.url("demo-code"))],
            FileStore(tmp_path / "objects"),
            team="demo",
            dataset_id="ds-demo",
            cache_dir=tmp_path / "cache",
            policy=LOCAL,
        )
    (outcome,) = result.manifest["repositories"]
    assert (outcome["status"], outcome["commit"]) == ("ok", head)
    stats = result.manifest["stats"]
    # The 24 ledger services share one template but differ in a word used throughout, which
    # keeps them under the 0.7 Jaccard threshold: the house style survives dedup.
    assert stats["duplicates"] == {"exact": 0, "near": 0, "of_previous_datasets": 0}
    assert stats["languages"] == {"Python": 24 + 5, "Markdown": 1}
