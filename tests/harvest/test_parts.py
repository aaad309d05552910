"""A harvest split into parts (one per repository) and reduced: the single task's dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tailor.stages.harvest.gather import FetchLimits
from tailor.stages.harvest.parts import (
    harvest_part,
    plan_parts,
    reduce_parts,
    write_plan,
)
from tailor.stages.harvest.pipeline import HarvestResult, Reporter
from tailor.stages.harvest.previous import load_previous
from tailor.stages.harvest.spec import HarvestSpec, RepoSource
from tailor.storage import FileStore, ObjectStore
from tests.harvest.conftest import LOCAL, TeamRepos
from tests.harvest.test_pipeline import TEAM, harvest, rows, team_repos_ledger


def fanned_out(
    sources: list[RepoSource],
    store: ObjectStore,
    cache: Path,
    dataset_id: str,
    previous_ids: list[str] | None = None,
    failures: dict[int, str] | None = None,
) -> HarvestResult:
    """Every part run here, one after the other, then the reduce."""
    spec = HarvestSpec()
    previous = load_previous(store, TEAM, previous_ids or [], spec.dedup)
    parts = plan_parts(sources, previous)
    write_plan(store, TEAM, dataset_id, parts)
    for i, source in enumerate(parts):
        if i not in (failures or {}):
            harvest_part(
                spec, source, store, team=TEAM, dataset_id=dataset_id, index=i,
                cache_dir=cache, limits=FetchLimits(60, 1 << 30, LOCAL), cancelled=lambda: False,
            )  # fmt: skip
    return reduce_parts(
        spec, store, team=TEAM, dataset_id=dataset_id, parts=parts, failures=failures or {},
        previous=previous, reporter=Reporter(lambda _f, _m: None, lambda: False),
    )  # fmt: skip


def counts(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's numbers, less the timings."""
    return {k: v for k, v in manifest["stats"].items() if k != "seconds"}


def test_parts_and_reduce_write_the_single_tasks_dataset(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    single_store, parts_store = FileStore(tmp_path / "a"), FileStore(tmp_path / "b")
    single = harvest(team_repos, single_store, tmp_path / "c1").manifest
    split = fanned_out(team_repos.sources(), parts_store, tmp_path / "c2", "ds-1").manifest
    assert rows(parts_store, split) == rows(single_store, single)
    assert counts(split) == counts(single)
    assert split["repositories"] == single["repositories"]


def test_the_reduce_leaves_no_part_files(team_repos: TeamRepos, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "o")
    fanned_out(team_repos.sources(), store, tmp_path / "c", "ds-1")
    assert [k for k in store.list("teams/") if "/parts/" in k] == []


def test_a_failed_part_fails_its_repository_alone(team_repos: TeamRepos, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "o")
    manifest = fanned_out(
        team_repos.sources(), store, tmp_path / "c", "ds-1", failures={0: "worker ran out"}
    ).manifest
    outcome = {r["name"]: r for r in manifest["repositories"]}
    assert outcome["billing"]["status"] == "failed"
    assert outcome["billing"]["reason"] == "worker ran out"
    assert {r["repo"] for r in rows(store, manifest)} == {"payments"}


def test_an_incremental_fanned_out_harvest_records_deletions_and_edits(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store, cache = FileStore(tmp_path / "o"), tmp_path / "cache"
    fanned_out(team_repos.sources(), store, cache, "ds-1")
    team_repos.server.commit(
        "billing",
        {"src/billing/retry.py": team_repos_ledger("payout")},
        delete=["src/billing/invoice.py"],
    )
    sources = [team_repos.source(n, last_commit=team_repos.heads[n]) for n in team_repos.heads]
    second = fanned_out(sources, store, cache, "ds-2", previous_ids=["ds-1"]).manifest
    assert second["deleted"] == {"billing": ["src/billing/invoice.py"]}
    billing = next(r for r in second["repositories"] if r["name"] == "billing")
    assert (billing["incremental"], billing["changed_files"], billing["deleted_files"]) == (
        True, 1, 1,
    )  # fmt: skip
    assert [r["path"] for r in rows(store, second)] == ["src/billing/retry.py"]
