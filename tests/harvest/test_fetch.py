"""Fetching over real git smart HTTP with basic auth: a private bare cache, clear failures."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tailor.demo.gitserver import GitServer
from tailor.stages.harvest.fetch import Fetched, fetch_repo, repo_dir
from tailor.stages.harvest.gitrun import FetchError
from tailor.stages.harvest.remote import UNREACHABLE
from tailor.stages.harvest.spec import RepoSource
from tailor.stages.harvest.urls import UrlPolicy
from tests.harvest.conftest import LOCAL, TOKEN

MB = 1 << 20


def fetch(
    source: RepoSource, cache: Path, max_bytes: int = 64 * MB, policy: UrlPolicy = LOCAL
) -> Fetched:
    return fetch_repo(source, cache, timeout_s=60, max_bytes=max_bytes, policy=policy)


def source(server: GitServer, name: str = "app", **kw: object) -> RepoSource:
    kw.setdefault("credential", TOKEN)
    kw.setdefault("credential_kind", "token")
    return RepoSource(name=name, url=server.url(name), **kw)  # type: ignore[arg-type]


def reason(src: RepoSource, cache: Path, policy: UrlPolicy = LOCAL) -> str:
    with pytest.raises(FetchError) as err:
        fetch(src, cache, policy=policy)
    return err.value.reason


def test_a_fetch_keeps_the_branch_head_in_a_bare_cache(
    git_server: GitServer, tmp_path: Path
) -> None:
    head = git_server.create_repo("app", {"main.py": "print('hi')\n"})
    fetched = fetch(source(git_server), tmp_path / "cache")
    assert fetched.commit == head and fetched.since is None
    bare = subprocess.run(
        ["git", "rev-parse", "--is-bare-repository"], cwd=fetched.gitdir, capture_output=True
    )
    assert bare.stdout.strip() == b"true"
    assert not any(p.name == "main.py" for p in (tmp_path / "cache").rglob("*"))  # no checkout


def test_the_cache_and_everything_in_it_are_private(git_server: GitServer, tmp_path: Path) -> None:
    first = git_server.create_repo("app", {"main.py": "print('hi')\n", "lib/util.py": "X = 1\n"})
    git_server.commit("app", {"lib/more.py": "Y = 2\n"})
    fetch(source(git_server, last_commit=first), tmp_path / "cache")  # both commits fetched
    open_to_others = [
        str(p)
        for p in [tmp_path / "cache", *(tmp_path / "cache").rglob("*")]
        if stat.S_IMODE(p.lstat().st_mode) & 0o077
    ]
    assert open_to_others == []


def test_a_checkout_left_by_an_earlier_version_is_removed(
    git_server: GitServer, tmp_path: Path
) -> None:
    git_server.create_repo("app", {"main.py": "print('hi')\n"})
    legacy = repo_dir(tmp_path, source(git_server)).with_suffix("")
    (legacy / ".git").mkdir(parents=True)
    (legacy / "settings.py").write_text("API_KEY = 'still here'\n")
    fetch(source(git_server), tmp_path)
    assert not legacy.exists()


def test_the_credential_never_lands_on_disk(git_server: GitServer, tmp_path: Path) -> None:
    git_server.create_repo("app", {"main.py": "x = 1\n"})
    fetch(source(git_server), tmp_path / "cache")
    leaked = subprocess.run(
        ["grep", "-r", "-l", TOKEN, str(tmp_path / "cache")], capture_output=True
    )
    assert leaked.stdout == b""


def test_a_re_fetch_diffs_against_the_last_harvested_commit(
    git_server: GitServer, tmp_path: Path
) -> None:
    first = git_server.create_repo("app", {"a.py": "a = 1\n"})
    fetch(source(git_server), tmp_path)
    head = git_server.commit("app", {"b.py": "b = 1\n"})
    fetched = fetch(source(git_server, last_commit=first), tmp_path)
    assert (fetched.commit, fetched.since) == (head, first)


def test_a_new_cache_fetches_the_last_harvested_commit_too(
    git_server: GitServer, tmp_path: Path
) -> None:
    first = git_server.create_repo("app", {"a.py": "a = 1\n"})
    git_server.commit("app", {"b.py": "b = 1\n"})
    assert fetch(source(git_server, last_commit=first), tmp_path / "fresh").since == first


def test_a_missing_branch_is_named(git_server: GitServer, tmp_path: Path) -> None:
    git_server.create_repo("app", {"a.py": "a = 1\n"})
    assert reason(source(git_server, branch="release"), tmp_path).startswith(
        "branch 'release' does not exist"
    )


def test_local_paths_and_helpers_are_refused(tmp_path: Path) -> None:
    for url in ("/srv/repo.git", "ext::sh -c evil", "file:///srv/repo.git"):
        assert reason(RepoSource(name="x", url=url), tmp_path).startswith("repository URL refused")


def test_without_a_credential_the_reason_says_to_add_one(
    git_server: GitServer, tmp_path: Path
) -> None:
    git_server.create_repo("app", {"a.py": "a = 1\n"})
    text = reason(source(git_server, credential=None, credential_kind=None), tmp_path)
    assert text.startswith(UNREACHABLE) and "add a token or SSH key" in text
