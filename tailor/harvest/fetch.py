"""Fetch a repository into its cache directory: shallow, incremental, capped, with a clear error.

Each repository keeps a cache directory (a non-bare repository) between harvests. A harvest
fetches the branch head with depth 1 into `refs/tailor/head`, refuses trees over the size cap
before anything is checked out (a git bomb's tiny pack can expand to a huge tree), lists the
files changed since the last harvested commit when that commit is at hand, then checks out.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tailor.harvest.gitrun import FetchError, GitAccess, git_access, run_git
from tailor.harvest.spec import RepoSource
from tailor.repositories.urls import check_git_url

MAX_TREE_ENTRIES = 1_000_000
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
_HEAD_REF = "refs/tailor/head"


@dataclass(frozen=True)
class Checkout:
    """A fetched repository: where its files are, at which commit, and what changed."""

    path: Path
    commit: str
    changed: list[str] | None  # repo-relative paths added or modified; None: walk everything

    @property
    def incremental(self) -> bool:
        return self.changed is not None


def repo_dir(cache_root: Path, source: RepoSource) -> Path:
    """The cache directory of a repository: its name plus a hash of its URL and branch."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", source.name)[:60] or "repo"
    digest = hashlib.sha256(f"{source.url}\0{source.branch}".encode()).hexdigest()[:12]
    return cache_root / f"{slug}-{digest}"


@contextmanager
def repo_lock(cache_root: Path, source: RepoSource) -> Iterator[None]:
    """Hold the cache directory of `source` alone (two harvests of one repo take turns)."""
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(repo_dir(cache_root, source).with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_source(source: RepoSource, allow_http: bool) -> None:
    try:
        check_git_url(source.url, allow_http=allow_http)
    except ValueError as exc:
        raise FetchError(f"repository URL refused: {exc}") from exc
    if not _BRANCH.match(source.branch) or source.branch.startswith("-") or ".." in source.branch:
        raise FetchError(f"'{source.branch}' is not a valid branch name")


def explain(stderr: str, source: RepoSource) -> str:
    """A reason a person can act on, from git's (already scrubbed) stderr."""
    s = stderr.lower()
    host = re.sub(r"^[a-z+]+://", "", source.url).split("/")[0].split("@")[-1]
    if any(m in s for m in ("couldn't find remote ref", "remote branch", "not our ref")):
        return f"branch '{source.branch}' does not exist in {source.url}"
    if any(
        m in s
        for m in (
            "authentication failed", "could not read username", "could not read password",
            "error: 401", "error: 403", "permission denied", "terminal prompts disabled",
            "invalid username or password", "access denied",
        )
    ):  # fmt: skip
        return (
            f"authentication failed at {host}: the {source.credential_kind} credential was "
            "rejected; check that it is valid and may read this repository"
            if source.credential
            else f"authentication required at {host}: add a token or SSH key to the repository"
        )
    if any(
        m in s
        for m in (
            "could not resolve host", "could not resolve hostname", "connection refused",
            "failed to connect", "connection timed out", "network is unreachable",
            "no route to host", "operation timed out", "connection reset",
        )
    ):  # fmt: skip
        return f"host unreachable: could not connect to {host}"
    if any(m in s for m in ("not found", "error: 404", "does not appear to be a git repository")):
        return f"repository not found at {source.url}"
    last = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"git failed: {last[-1] if last else 'no output'}"


def _git(args: list[str], access: GitAccess, path: Path, timeout_s: float) -> str:
    res = run_git(args, access, cwd=path, timeout_s=timeout_s)
    if res.returncode != 0:
        raise FetchError(f"git {args[0]} failed: {res.stderr.strip()[-300:]}")
    return res.stdout.decode("utf-8", "surrogateescape").strip()


def check_tree(
    path: Path, commit: str, access: GitAccess, *, max_bytes: int, timeout_s: float,
    max_entries: int = MAX_TREE_ENTRIES,
) -> int:  # fmt: skip
    """Total blob bytes of `commit`'s tree; FetchError as soon as a cap is passed."""
    proc = subprocess.Popen(
        ["git", "ls-tree", "-r", "-z", "-l", commit], cwd=path, env=access.env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    total = entries = 0
    tail = b""
    deadline = time.monotonic() + timeout_s
    try:
        while chunk := proc.stdout.read(1 << 16):
            records = (tail + chunk).split(b"\0")
            tail = records.pop()
            for rec in records:
                size = rec.split(b"\t", 1)[0].split()[-1]
                total += int(size) if size.isdigit() else 0
            entries += len(records)
            if total > max_bytes:
                raise FetchError(
                    f"repository is over the size cap: its files hold more than "
                    f"{max_bytes / 2**20:.0f} MiB (found after {entries:,} files)"
                )
            if entries > max_entries:
                raise FetchError(
                    f"repository is over the size cap: more than {max_entries:,} files"
                )
            if time.monotonic() > deadline:
                raise FetchError(f"listing the tree took longer than {timeout_s:.0f} s")
    finally:
        proc.kill()
        proc.wait()
    return total


def _has_commit(path: Path, sha: str, access: GitAccess) -> bool:
    res = run_git(["cat-file", "-e", f"{sha}^{{commit}}"], access, cwd=path, timeout_s=60)
    return res.returncode == 0


def changed_files(
    path: Path, source: RepoSource, commit: str, access: GitAccess, timeout_s: float
) -> list[str] | None:
    """Paths added or modified since `source.last_commit`, or None when unknown."""
    last = source.last_commit
    if last is None or not _SHA.match(last):
        return None
    if last == commit:
        return []
    if not _has_commit(path, last, access):
        # Not in the cache (a new worker): ask the server for just that commit.
        args = ["fetch", "--depth=1", "--no-tags", "--", source.url, last]
        run_git(args, access, cwd=path, timeout_s=timeout_s)
        if not _has_commit(path, last, access):
            return None
    args = ["diff", "--name-only", "-z", "--no-renames", "--diff-filter=ACMRT", last, commit]
    res = run_git(args, access, cwd=path, timeout_s=timeout_s)
    if res.returncode != 0:
        return None
    return [p for p in res.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def fetch_repo(
    source: RepoSource,
    cache_root: Path,
    *,
    timeout_s: float,
    max_bytes: int,
    allow_http: bool = False,
) -> Checkout:
    """Fetch `source`'s branch into its cache directory and check it out; FetchError if not.

    Plain http:// is refused unless `allow_http` (settings.git_allow_http: loopback test and
    demo servers); production URLs are https:// or ssh.
    """
    _check_source(source, allow_http)
    path = repo_dir(cache_root, source)
    known_hosts = cache_root / "known_hosts"
    with git_access(source, known_hosts, int(timeout_s), allow_http=allow_http) as access:
        if not (path / ".git").is_dir():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            _git(["init", "-q"], access, path, timeout_s)
        refspec = f"+refs/heads/{source.branch}:{_HEAD_REF}"
        args = ["fetch", "--depth=1", "--no-tags", "--", source.url, refspec]
        res = run_git(
            args, access, cwd=path, timeout_s=timeout_s, watch=path / ".git", max_growth=max_bytes
        )
        if res.returncode != 0:
            raise FetchError(explain(res.stderr, source))
        commit = _git(["rev-parse", f"{_HEAD_REF}^{{commit}}"], access, path, timeout_s)
        check_tree(path, commit, access, max_bytes=max_bytes, timeout_s=timeout_s)
        changed = changed_files(path, source, commit, access, timeout_s)
        _git(["checkout", "-q", "--force", "--detach", commit], access, path, timeout_s)
        _git(["clean", "-q", "-ffdx"], access, path, timeout_s)
    return Checkout(path, commit, changed)
