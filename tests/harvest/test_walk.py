"""The walk of a commit's tree: which files are candidates, from names, modes and sizes alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tailor.demo.gitserver import GitServer, Symlink
from tailor.stages.harvest.blobs import read_blobs
from tailor.stages.harvest.gitrun import FetchError
from tailor.stages.harvest.spec import FilterConfig
from tailor.stages.harvest.walk import Limits, WalkResult, path_selected, walk_tree

MB = 1 << 20


def walk(
    server: GitServer, name: str, commit: str, filters: FilterConfig | None = None, **kw: object
) -> WalkResult:
    kw.setdefault("limits", Limits(64 * MB))
    return walk_tree(
        server.bare_path(name),
        commit,
        repo=name,
        filters=filters or FilterConfig(),
        **kw,  # type: ignore[arg-type]
    )


def test_only_allowlisted_languages_outside_skipped_dirs_are_candidates(
    git_server: GitServer,
) -> None:
    head = git_server.create_repo(
        "r",
        {
            "app/main.py": "x = 1\n",
            "app/ui.tsx": "export {}\n",
            "Dockerfile": "FROM scratch\n",
            "notes.txt": "hello\n",
            "node_modules/a/index.js": "1\n",
            "build/gen.py": "1\n",
            "yarn.lock": "a\n",
            "empty.py": "",
        },
    )
    result = walk(git_server, "r", head)
    assert [(c.path, c.language, c.commit) for c in result.files] == [
        ("Dockerfile", "Dockerfile", head),
        ("app/main.py", "Python", head),
        ("app/ui.tsx", "TypeScript", head),
    ]
    assert result.skipped == {"language": 1, "lock_file": 1, "empty": 1}
    assert result.dirs_skipped == 2


def test_a_candidate_is_read_from_git_objects(git_server: GitServer) -> None:
    head = git_server.create_repo("r", {"app/main.py": "x = 1\n", "b.py": "y = 2\n"})
    files = walk(git_server, "r", head).files
    contents = read_blobs(git_server.bare_path("r"), [c.blob for c in files])
    assert list(contents) == [b"x = 1\n", b"y = 2\n"]


def test_include_and_exclude_globs_choose_paths() -> None:
    assert path_selected("src/a/b.py", ["src/**"], [])
    assert not path_selected("tests/test_b.py", ["src/**"], [])
    assert not path_selected("src/a/b_test.py", [], ["*_test.py"])
    assert path_selected("src/a/b.py", [], ["docs/"])
    assert not path_selected("docs/x/y.md", [], ["docs/"])


def test_symlinks_are_never_followed(git_server: GitServer) -> None:
    head = git_server.create_repo(
        "r",
        {
            "real.py": "x = 1\n",
            "alias.py": Symlink("real.py"),
            "leak.py": Symlink("/etc/passwd"),
            "up.py": Symlink("../../outside/secret.py"),
            "linked_dir": Symlink("/etc"),
        },
    )
    result = walk(git_server, "r", head)
    assert [c.path for c in result.files] == ["real.py"]
    # linked_dir is not even looked at: a name without an allowlisted extension.
    assert result.skipped == {"symlink": 1, "symlink_outside": 2, "language": 1}


def test_files_over_the_size_limit_are_skipped_unread(git_server: GitServer) -> None:
    head = git_server.create_repo("r", {"big.py": "x = 1\n" * 100, "small.py": "y = 2\n"})
    result = walk(git_server, "r", head, FilterConfig(max_file_bytes=100))
    assert [c.path for c in result.files] == ["small.py"]
    assert result.skipped_bytes["too_large"] == 600


def test_a_tree_over_the_size_cap_is_refused_before_any_file_is_read(
    git_server: GitServer,
) -> None:
    # Zeros compress to almost nothing: a tiny download that holds 3 MiB of files.
    head = git_server.create_repo("r", {"zeros.py": "0" * (3 * MB)})
    with pytest.raises(FetchError, match="over the size cap"):
        walk(git_server, "r", head, limits=Limits(MB))
    two = git_server.commit("r", {"two.py": "2\n"})
    with pytest.raises(FetchError, match="more than 1 files"):
        walk(git_server, "r", two, limits=Limits(64 * MB, max_entries=1))


def test_an_incremental_walk_looks_at_changed_paths_and_lists_deletions(
    git_server: GitServer,
) -> None:
    first = git_server.create_repo(
        "r", {"a.py": "a = 1\n", "b.py": "b = 1\n", "c.py": "c\n", "vendor/v.py": "v\n"}
    )
    head = git_server.commit(
        "r",
        {"b.py": "b = 2\n", "d.py": "d = 1\n", "vendor/v.py": "v = 2\n"},
        delete=["c.py"],
    )
    result = walk(git_server, "r", head, since=first)
    assert [c.path for c in result.files] == ["b.py", "d.py"]
    assert (result.changed, result.deleted) == (3, ["c.py"])


def _git(bare: Path, *args: str, stdin: bytes = b"") -> str:
    out = subprocess.run(["git", *args], cwd=bare, input=stdin, capture_output=True, check=True)
    return out.stdout.decode().strip()


def crafted_commit(bare: Path) -> str:
    """A commit whose tree holds `.git/` and `.GIT/` directories: a server can send one."""
    code = _git(bare, "hash-object", "-w", "--stdin", stdin=b"TOKEN = 'from .git'\n")
    inner = _git(bare, "mktree", stdin=f"100644 blob {code}\tconfig.py\n".encode())
    entries = (
        f"040000 tree {inner}\t.git\n040000 tree {inner}\t.GIT\n"
        f"040000 tree {inner}\tsub\n100644 blob {code}\tmain.py\n"
    )
    root = _git(bare, "mktree", stdin=entries.encode())
    env_commit = ["-c", "user.name=x", "-c", "user.email=x@x"]
    return _git(bare, *env_commit, "commit-tree", root, "-m", "crafted")


def test_git_metadata_is_never_a_candidate_whatever_skip_dirs_says(git_server: GitServer) -> None:
    git_server.create_repo("r", {"a.py": "a = 1\n"})
    commit = crafted_commit(git_server.bare_path("r"))
    filters = FilterConfig(skip_dirs=[])  # a spec that drops the default skip list
    result = walk(git_server, "r", commit, filters)
    assert [c.path for c in result.files] == ["main.py", "sub/config.py"]
