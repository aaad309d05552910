"""The whole harvest against real git over HTTP, into a file store and into S3."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from tailor.stages.harvest.pipeline import (
    HarvestCancelled,
    HarvestError,
    HarvestResult,
    run_harvest,
)
from tailor.stages.harvest.remote import UNREACHABLE
from tailor.stages.harvest.spec import FilterConfig, HarvestSpec, RepoSource
from tailor.storage import FileStore, ObjectStore, S3Store
from tests.harvest.conftest import LOCAL, TeamRepos
from tests.harvest.planted import SECRETS
from tests.harvest.servers import Stalling, git_processes, running

TEAM = "acme"


def harvest(
    repos: TeamRepos,
    store: ObjectStore,
    cache: Path,
    dataset_id: str = "ds-1",
    sources: list[RepoSource] | None = None,
    **kw: Any,
) -> HarvestResult:
    return run_harvest(
        HarvestSpec(),
        sources if sources is not None else repos.sources(),
        store,
        team=TEAM,
        dataset_id=dataset_id,
        cache_dir=cache,
        policy=LOCAL,
        **kw,
    )


def rows(store: ObjectStore, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of every shard the manifest lists."""
    out: list[dict[str, Any]] = []
    for shard in manifest["shards"]:
        out.extend(pq.read_table(io.BytesIO(store.get_bytes(shard["key"]))).to_pylist())
    return out


def everything_stored(store: ObjectStore, prefix: str) -> bytes:
    """All stored bytes under `prefix`, parquet decoded to text so nothing hides in compression."""
    chunks = []
    for key in store.list(prefix):
        data = store.get_bytes(key)
        if key.endswith(".parquet"):
            data = json.dumps(pq.read_table(io.BytesIO(data)).to_pylist()).encode()
        chunks.append(data)
    return b"\n".join(chunks)


@pytest.fixture(params=["file", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        return FileStore(tmp_path / "objects")
    store: ObjectStore = request.getfixturevalue("s3_store")
    return store


def test_a_harvest_writes_shards_and_a_manifest(
    team_repos: TeamRepos, any_store: ObjectStore, tmp_path: Path
) -> None:
    result = harvest(team_repos, any_store, tmp_path / "cache")
    prefix = "teams/acme/datasets/ds-1/"
    assert any_store.list(prefix) == [
        prefix + "dedup-index.npz",
        prefix + "manifest.json",
        prefix + "shard-00000.parquet",
    ]
    manifest = json.loads(any_store.get_bytes(prefix + "manifest.json"))
    assert manifest == result.manifest
    stored = rows(any_store, manifest)
    assert {(r["repo"], r["path"]) for r in stored} == {
        ("billing", "README.md"),
        ("billing", "notebooks/explore.ipynb"),
        ("billing", "src/billing/invoice.py"),
        ("billing", "src/billing/retry.py"),
        ("billing", "src/billing/settings.py"),
        ("payments", "src/payments/refund.py"),
    }
    assert set(stored[0]) >= {"repo", "path", "language", "content", "sha", "size", "commit"}
    assert {r["split"] for r in stored} <= {"train", "holdout"}
    assert {r["commit"] for r in stored} == set(team_repos.heads.values())


def test_the_manifest_counts_every_drop_by_reason(team_repos: TeamRepos, tmp_path: Path) -> None:
    stats = harvest(team_repos, FileStore(tmp_path / "o"), tmp_path / "cache").manifest["stats"]
    assert stats["dropped"] == {
        "auto_generated": 1,
        "binary": 1,
        "data_numeric": 1,
        "exact_duplicate": 1,  # payments' re-indented copy of billing's invoice.py
        "invalid_utf8": 1,
        "language": 1,
        "lock_file": 2,
        "malformed_notebook": 1,
        "max_line_length": 2,
        "mostly_secrets": 1,
        "near_duplicate": 1,
        "symlink": 1,
        "symlink_outside": 1,
    }
    assert stats["files_kept"] == 6
    assert stats["languages"] == {"Python": 4, "Markdown": 1, "Jupyter Notebook": 1}
    assert stats["duplicates"] == {"exact": 1, "near": 1, "of_previous_datasets": 0}
    assert stats["bytes_kept"] > 0 and stats["tokens_estimate"] > 0


def test_no_planted_secret_reaches_the_store(team_repos: TeamRepos, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "o")
    result = harvest(team_repos, store, tmp_path / "cache")
    stored = everything_stored(store, "teams/")
    leaked = [kind for kind, value in SECRETS.items() if value.encode() in stored]
    assert leaked == []
    assert b"sk_live_51HaQ2mK8vLp3Xz7Yt9Wq4RsQ" not in stored  # the mostly-secret file's
    redacted = result.manifest["stats"]["secrets_redacted"]
    assert len(redacted) >= 20
    assert redacted["aws_access_key_id"] == 1 and redacted["private_key"] == 1
    assert result.manifest["stats"]["secrets_total"] >= len(SECRETS) - 2


def test_notebooks_give_their_code_cells_only(team_repos: TeamRepos, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "o")
    manifest = harvest(team_repos, store, tmp_path / "cache").manifest
    (notebook,) = [r for r in rows(store, manifest) if r["path"].endswith(".ipynb")]
    assert "def monthly_totals(rows):" in notebook["content"]
    assert "PROSE_MARKER" not in notebook["content"]
    assert "OUTPUT_MARKER" not in notebook["content"]


def test_a_wrong_token_fails_that_repository_alone(team_repos: TeamRepos, tmp_path: Path) -> None:
    bad = "wrong-token-b4d5e6f7"
    sources = [team_repos.source("billing"), team_repos.source("payments", credential=bad)]
    store = FileStore(tmp_path / "o")
    manifest = harvest(team_repos, store, tmp_path / "cache", sources=sources).manifest
    outcome = {r["name"]: r for r in manifest["repositories"]}
    assert outcome["billing"]["status"] == "ok"
    assert outcome["payments"]["status"] == "failed"
    assert outcome["payments"]["reason"].startswith(UNREACHABLE)
    assert bad.encode() not in everything_stored(store, "teams/")
    assert bad not in json.dumps(manifest)
    assert manifest["stats"]["repositories"] == {"ok": 1, "failed": 1}


def test_when_every_repository_fails_the_harvest_fails_and_says_why(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "o")
    sources = [team_repos.source("billing", credential="nope-1234567"), team_repos.source("gone")]
    with pytest.raises(HarvestError, match=f"billing: {UNREACHABLE}") as err:
        harvest(team_repos, store, tmp_path / "cache", sources=sources)
    assert "gone: " in str(err.value) and "nope-1234567" not in str(err.value)
    assert store.list("teams/") == []


def test_a_near_duplicate_across_repositories_is_kept_once(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "o")
    manifest = harvest(team_repos, store, tmp_path / "cache").manifest
    paths = {r["path"] for r in rows(store, manifest)}
    # Repositories are harvested in name order: billing's copy is the one kept.
    assert "src/billing/retry.py" in paths
    assert "src/payments/retry_utils.py" not in paths
    assert "src/payments/invoice_copy.py" not in paths


def test_a_re_harvest_only_processes_changed_files(team_repos: TeamRepos, tmp_path: Path) -> None:
    store, cache = FileStore(tmp_path / "o"), tmp_path / "cache"
    first = harvest(team_repos, store, cache, "ds-1").manifest
    server = team_repos.server
    server.commit(
        "billing",
        {"src/billing/payout.py": team_repos_ledger("payout"), "src/billing/retry.py": "X = 1\n"},
    )
    sources = [
        team_repos.source(name, last_commit=team_repos.heads[name])
        for name in ("billing", "payments")
    ]
    second = harvest(
        team_repos, store, cache, "ds-2", sources=sources, previous_datasets=["ds-1"]
    ).manifest
    outcome = {r["name"]: r for r in second["repositories"]}
    assert outcome["billing"]["incremental"] and outcome["billing"]["changed_files"] == 2
    assert outcome["payments"]["changed_files"] == 0
    assert second["stats"]["files_processed"] == 2
    assert {r["path"] for r in rows(store, second)} == {
        "src/billing/payout.py",
        "src/billing/retry.py",
    }
    assert first["stats"]["files_processed"] > 10


def team_repos_ledger(noun: str) -> str:
    from tests.harvest.conftest import LEDGER

    return LEDGER.format(noun=noun, cls=noun.capitalize()) + "\n\nLIMIT_CENTS = 10_000_00\n"


def test_files_of_an_earlier_dataset_are_not_harvested_again(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "o")
    harvest(team_repos, store, tmp_path / "cache", "ds-1")
    again = harvest(team_repos, store, tmp_path / "cache2", "ds-2", previous_datasets=["ds-1"])
    assert again.manifest["stats"]["files_kept"] == 0
    assert (
        again.manifest["stats"]["duplicates"]["of_previous_datasets"] == 8
    )  # 6 kept + 2 dropped as copies


def test_running_the_same_harvest_twice_writes_the_same_dataset(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    # What a redelivered task does after its worker died: same names, no duplicate rows.
    store = FileStore(tmp_path / "o")
    first = harvest(team_repos, store, tmp_path / "cache")
    store.put_bytes("teams/acme/datasets/ds-1/shard-00007.parquet", b"left by a bigger run")
    second = harvest(team_repos, store, tmp_path / "cache")
    assert rows(store, second.manifest) == rows(store, first.manifest)
    assert [s["key"] for s in second.manifest["shards"]] == [
        "teams/acme/datasets/ds-1/shard-00000.parquet"
    ]
    assert "teams/acme/datasets/ds-1/shard-00007.parquet" not in store.list("teams/")


def test_cancelling_leaves_nothing_in_the_store(team_repos: TeamRepos, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "o")
    seen: list[str] = []

    def cancelled() -> bool:
        return len(seen) >= 1 and seen[-1].startswith("writing")

    with pytest.raises(HarvestCancelled):
        harvest(
            team_repos,
            store,
            tmp_path / "cache",
            progress=lambda _f, m: seen.append(m),
            cancelled=cancelled,
        )
    assert store.list("teams/") == []


def test_progress_rises_to_one(team_repos: TeamRepos, tmp_path: Path) -> None:
    reported: list[float] = []
    harvest(
        team_repos,
        FileStore(tmp_path / "o"),
        tmp_path / "c",
        progress=lambda f, _m: reported.append(f),
    )
    assert reported == sorted(reported) and reported[-1] == 1.0


def test_plain_http_is_refused_unless_allowed(team_repos: TeamRepos, tmp_path: Path) -> None:
    with pytest.raises(HarvestError, match="scheme 'http://' is not allowed"):
        run_harvest(
            HarvestSpec(),
            team_repos.sources(),
            FileStore(tmp_path / "o"),
            team=TEAM,
            dataset_id="ds-1",
            cache_dir=tmp_path / "c",
        )
    assert team_repos.server.requests == 0  # refused before anything went over the wire


def test_an_unwritable_store_fails_the_harvest_with_a_clear_error(
    team_repos: TeamRepos, s3_store: S3Store, tmp_path: Path
) -> None:
    missing = S3Store("no-such-bucket", "tailor", s3_store.client)
    with pytest.raises(HarvestError, match="could not write the dataset to the object store"):
        harvest(team_repos, missing, tmp_path / "cache")


def test_git_metadata_never_reaches_the_dataset_whatever_skip_dirs_says(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "o")
    languages = {
        ".py": "Python",
        ".sample": "Shell",
        "HEAD": "Text",
        "config": "INI",
        "description": "Text",
        "exclude": "Text",
        "packed-refs": "Text",
    }
    spec = HarvestSpec(filters=FilterConfig(skip_dirs=["vendor"], languages=languages))
    result = run_harvest(
        spec,
        team_repos.sources(),
        store,
        team=TEAM,
        dataset_id="ds-1",
        cache_dir=tmp_path / "cache",
        policy=LOCAL,
    )
    paths = [r["path"] for r in rows(store, result.manifest)]
    assert "src/billing/invoice.py" in paths
    assert [p for p in paths if ".git/" in p or p.startswith(".git")] == []


def test_a_re_harvest_with_no_changes_says_since_which_dataset(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store, cache = FileStore(tmp_path / "o"), tmp_path / "cache"
    harvest(team_repos, store, cache, "ds-1")
    unchanged = [team_repos.source(n, last_commit=team_repos.heads[n]) for n in team_repos.heads]
    seen: list[str] = []
    second = harvest(
        team_repos,
        store,
        cache,
        "ds-2",
        sources=unchanged,
        previous_datasets=["ds-1"],
        progress=lambda _f, m: seen.append(m),
    ).manifest
    third = harvest(
        team_repos, store, cache, "ds-3", sources=unchanged, previous_datasets=["ds-1", "ds-2"]
    ).manifest
    assert second["unchanged_since"] == ["ds-1"] and second["stats"]["files_kept"] == 0
    assert seen[-1] == "no changes since dataset ds-1: nothing new"
    assert third["stats"]["unchanged_since"] == ["ds-1"]  # the dataset that holds the files


def test_a_re_harvest_records_the_files_deleted_since(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    store, cache = FileStore(tmp_path / "o"), tmp_path / "cache"
    harvest(team_repos, store, cache, "ds-1")
    team_repos.server.commit("billing", {}, delete=["src/billing/retry.py", "poetry.lock"])
    sources = [team_repos.source(n, last_commit=team_repos.heads[n]) for n in team_repos.heads]
    second = harvest(
        team_repos, store, cache, "ds-2", sources=sources, previous_datasets=["ds-1"]
    ).manifest
    assert second["deleted"] == {"billing": ["src/billing/retry.py"]}  # a lock file never counted
    assert second["unchanged_since"] == []
    billing = next(r for r in second["repositories"] if r["name"] == "billing")
    assert (billing["changed_files"], billing["deleted_files"]) == (0, 1)


def test_cancelling_a_live_harvest_stops_git_without_waiting_for_it(
    team_repos: TeamRepos, tmp_path: Path
) -> None:
    stalling = Stalling()
    seen: list[list[psutil.Process]] = []

    def cancelled() -> bool:  # the cancel arrives while git waits on a server that stalls
        if not seen and stalling.accepted.is_set():
            seen.append(git_processes())
        return bool(seen)

    outcome: list[BaseException] = []
    sources = [team_repos.source("billing"), RepoSource("slow", stalling.url())]

    def run() -> None:
        try:
            harvest(
                team_repos,
                FileStore(tmp_path / "o"),
                tmp_path / "cache",
                sources=sources,
                timeout_s=3600,
                cancelled=cancelled,
                cancel_poll_s=0.05,
            )
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)  # a liveness guard only: git's own limit here is an hour
    stalling.close()
    assert not thread.is_alive() and [type(e) for e in outcome] == [HarvestCancelled]
    assert seen[0] and running(seen[0]) == []
    assert FileStore(tmp_path / "o").list("teams/") == []
