"""Fetching over real git smart HTTP with basic auth: incremental, capped, clear failures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tailor.demo.gitserver import GitServer
from tailor.harvest.fetch import fetch_repo, repo_dir
from tailor.harvest.gitrun import FetchError
from tailor.harvest.spec import RepoSource
from tests.harvest.conftest import TOKEN

MB = 1 << 20


def fetch(source: RepoSource, cache: Path, max_bytes: int = 64 * MB) -> object:
    return fetch_repo(source, cache, timeout_s=60, max_bytes=max_bytes, allow_http=True)


def source(server: GitServer, name: str = "app", **kw: object) -> RepoSource:
    kw.setdefault("credential", TOKEN)
    kw.setdefault("credential_kind", "token")
    return RepoSource(name=name, url=server.url(name), **kw)  # type: ignore[arg-type]


def reason(src: RepoSource, cache: Path, max_bytes: int = 64 * MB) -> str:
    with pytest.raises(FetchError) as err:
        fetch(src, cache, max_bytes)
    return err.value.reason


def test_a_fetch_checks_out_the_branch_head(git_server: GitServer, tmp_path: Path) -> None:
    head = git_server.create_repo("app", {"main.py": "print('hi')\n"})
    co = fetch_repo(source(git_server), tmp_path, timeout_s=60, max_bytes=MB, allow_http=True)
    assert co.commit == head and not co.incremental
    assert (co.path / "main.py").read_text() == "print('hi')\n"


def test_the_credential_never_lands_on_disk(git_server: GitServer, tmp_path: Path) -> None:
    git_server.create_repo("app", {"main.py": "x = 1\n"})
    co = fetch_repo(source(git_server), tmp_path, timeout_s=60, max_bytes=MB, allow_http=True)
    leaked = subprocess.run(["grep", "-r", "-l", TOKEN, str(co.path)], capture_output=True)
    assert leaked.stdout == b""


def test_a_re_fetch_lists_the_files_changed_since_the_last_commit(
    git_server: GitServer, tmp_path: Path
) -> None:
    first = git_server.create_repo("app", {"a.py": "a = 1\n", "b.py": "b = 1\n", "c.py": "c\n"})
    fetch(source(git_server), tmp_path)
    git_server.commit("app", {"b.py": "b = 2\n", "d.py": "d = 1\n"}, delete=["c.py"])
    co = fetch_repo(
        source(git_server, last_commit=first), tmp_path, timeout_s=60, max_bytes=MB,
        allow_http=True,
    )  # fmt: skip
    assert sorted(co.changed or []) == ["b.py", "d.py"]


def test_a_new_cache_still_fetches_incrementally(git_server: GitServer, tmp_path: Path) -> None:
    first = git_server.create_repo("app", {"a.py": "a = 1\n"})
    git_server.commit("app", {"b.py": "b = 1\n"})
    co = fetch_repo(
        source(git_server, last_commit=first), tmp_path / "fresh", timeout_s=60, max_bytes=MB,
        allow_http=True,
    )  # fmt: skip
    assert co.changed == ["b.py"]


def test_a_wrong_token_is_a_clear_reason_without_the_token(
    git_server: GitServer, tmp_path: Path
) -> None:
    git_server.create_repo("app", {"a.py": "a = 1\n"})
    text = reason(source(git_server, credential="user:wr0ng-t0ken-value"), tmp_path)
    assert text.startswith("authentication failed at 127.0.0.1:")
    assert "wr0ng-t0ken-value" not in text
    assert git_server.refused >= 1


def test_no_credential_for_a_private_repository_says_to_add_one(
    git_server: GitServer, tmp_path: Path
) -> None:
    git_server.create_repo("app", {"a.py": "a = 1\n"})
    text = reason(source(git_server, credential=None, credential_kind=None), tmp_path)
    assert "add a token or SSH key" in text


def test_a_missing_branch_is_named(git_server: GitServer, tmp_path: Path) -> None:
    git_server.create_repo("app", {"a.py": "a = 1\n"})
    assert reason(source(git_server, branch="release"), tmp_path).startswith(
        "branch 'release' does not exist"
    )


def test_a_missing_repository_and_an_unreachable_host(
    git_server: GitServer, tmp_path: Path
) -> None:
    assert reason(source(git_server, name="ghost"), tmp_path).startswith("repository not found")
    dead = RepoSource(name="x", url="http://127.0.0.1:9/x.git")
    assert reason(dead, tmp_path) == "host unreachable: could not connect to 127.0.0.1:9"


def test_a_repository_over_the_size_cap_is_refused_before_checkout(
    git_server: GitServer, tmp_path: Path
) -> None:
    # Zeros compress to almost nothing: a tiny pack that would expand to 3 MiB on disk.
    git_server.create_repo("app", {"zeros.py": "0" * (3 * MB)})
    text = reason(source(git_server), tmp_path, max_bytes=MB)
    assert text.startswith("repository is over the size cap")
    assert not (repo_dir(tmp_path, source(git_server)) / "zeros.py").exists()


def test_local_paths_and_helpers_are_refused(tmp_path: Path) -> None:
    for url in ("/srv/repo.git", "ext::sh -c evil", "file:///srv/repo.git"):
        assert reason(RepoSource(name="x", url=url), tmp_path).startswith("repository URL refused")
