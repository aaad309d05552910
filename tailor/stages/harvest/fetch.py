"""Fetch a repository into its private, bare cache: shallow, incremental, capped, killable.

Each repository keeps a bare repository (no working tree: no checkout of its files, secrets
included, ever lies on disk) between harvests, 0700 with 0600 files. A harvest fetches the
branch head with depth 1 into `refs/tailor/head`, and, for an incremental harvest, the last
harvested commit too when the cache lacks it; the files are then read from git's objects
(`tailor.stages.harvest.walk`, `tailor.stages.harvest.blobs`).

Every failure to reach the repository reads the same to the team, whatever the cause
(refused, filtered, unresolvable, TLS, 401, 404): one message, so the harvest cannot be used
to scan a network. git's own words go to the server log.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tailor.stages.harvest.gitrun import (
    FetchError,
    GitAccess,
    GitTimeout,
    git_access,
    git_pipe,
    local_env,
    run_git,
)
from tailor.stages.harvest.remote import UNREACHABLE, RemoteRefused, connect_to
from tailor.stages.harvest.spec import RepoSource
from tailor.stages.harvest.urls import UrlPolicy

log = logging.getLogger("tailor.harvest")
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
HEAD_REF = "refs/tailor/head"


@dataclass(frozen=True)
class Fetched:
    """A repository in its cache: the commit to harvest and the one to diff it against."""

    gitdir: Path
    commit: str
    since: str | None  # the last harvested commit, in the cache; None: harvest everything


def repo_dir(cache_root: Path, source: RepoSource) -> Path:
    """The bare cache of a repository: its name plus a hash of its URL and branch, `.git`."""
    legacy = _legacy_dir(cache_root, source)
    return legacy.with_name(legacy.name + ".git")


def _legacy_dir(cache_root: Path, source: RepoSource) -> Path:
    # Where earlier versions kept a full checkout of the repository.
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", source.name)[:60] or "repo"
    digest = hashlib.sha256(f"{source.url}\0{source.branch}".encode()).hexdigest()[:12]
    return cache_root / f"{slug}-{digest}"


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner may enter (created, or narrowed if it was wider)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


@contextmanager
def repo_lock(cache_root: Path, source: RepoSource) -> Iterator[None]:
    """Hold the cache of `source` alone (two harvests of one repository take turns)."""
    private_dir(cache_root)
    lock = _legacy_dir(cache_root, source).with_suffix(".lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_branch(source: RepoSource) -> None:
    if not _BRANCH.match(source.branch) or source.branch.startswith("-") or ".." in source.branch:
        raise FetchError(f"'{source.branch}' is not a valid branch name")


def unreachable(source: RepoSource) -> str:
    """The one reason a team reads for any failure to reach `source`."""
    if source.credential:
        return f"{UNREACHABLE}; check the URL and that the credential may read it"
    return f"{UNREACHABLE}; check the URL, and add a token or SSH key if it is private"


def explain(stderr: str, source: RepoSource) -> str:
    """A reason for a failed fetch from git's (already scrubbed) stderr, as the team reads it.

    A missing branch is named (only a git server that let us in can say so); anything else
    is `unreachable`, with git's words in the server log.
    """
    s = stderr.lower()
    if any(m in s for m in ("couldn't find remote ref", "remote branch", "not our ref")):
        return f"branch '{source.branch}' does not exist in {source.url}"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    log.warning("fetching repository %s failed: %s", source.name, " | ".join(lines[-3:]))
    return unreachable(source)


def _git(args: list[str], cwd: Path, timeout_s: float) -> str:
    """A local git run over the cache (init, rev-parse): its stdout; FetchError if it fails.

    As a pipe, like the walk's: no remote and no credential, and none of the two extra execs
    a fetch's parent-death guard costs, which counted for a repository of a few files.
    """
    with git_pipe(args, local_env(), cwd=cwd, timeout_s=timeout_s) as pipe:
        out = pipe.stdout.read()
        pipe.check()
    return out.decode("utf-8", "surrogateescape").strip()


def _has_commit(gitdir: Path, sha: str, access: GitAccess) -> bool:
    res = run_git(["cat-file", "-e", f"{sha}^{{commit}}"], access, cwd=gitdir, timeout_s=60)
    return res.returncode == 0


def _bare_cache(cache_root: Path, source: RepoSource, timeout_s: float) -> Path:
    """The repository's bare cache, made if missing; a checkout left by an old version goes."""
    legacy = _legacy_dir(cache_root, source)
    if legacy.exists():
        shutil.rmtree(legacy, ignore_errors=True)
    gitdir = repo_dir(cache_root, source)
    if not (gitdir / "HEAD").is_file() or not (gitdir / "objects").is_dir():
        shutil.rmtree(gitdir, ignore_errors=True)
        # --shared=0600: git keeps every file it writes 0600 and every directory 0700.
        # --template= (none): no sample hooks or description to copy, a few ms a repository.
        args = ["init", "-q", "--bare", "--shared=0600", "--template=", str(gitdir)]
        _git(args, cache_root, timeout_s)
    private_dir(gitdir)
    return gitdir


def fetch_repo(
    source: RepoSource,
    cache_root: Path,
    *,
    timeout_s: float,
    max_bytes: int,
    policy: UrlPolicy | None = None,
    stop: Callable[[], bool] | None = None,
) -> Fetched:
    """Fetch `source`'s branch head into its bare cache; FetchError saying why if not.

    `policy` says which URLs and addresses are allowed (plain http:// and loopback only where
    the settings allow them); `stop` is asked while git runs, and git is killed when it
    turns true (GitStopped).
    """
    _check_branch(source)
    try:
        remote = connect_to(source.url, policy or UrlPolicy())
    except RemoteRefused as exc:
        raise FetchError(unreachable(source) if exc.reason == UNREACHABLE else exc.reason) from exc
    allow_http = (policy or UrlPolicy()).allow_http
    known_hosts = private_dir(cache_root) / "known_hosts"
    with git_access(source, remote, known_hosts, int(timeout_s), allow_http=allow_http) as access:
        gitdir = _bare_cache(cache_root, source, timeout_s)
        refspec = f"+refs/heads/{source.branch}:{HEAD_REF}"
        args = [
            "fetch",
            "--depth=1",
            "--no-tags",
            "--no-write-fetch-head",
            "--",
            remote.url,
            refspec,
        ]
        try:
            res = run_git(
                args,
                access,
                cwd=gitdir,
                timeout_s=timeout_s,
                watch=gitdir,
                max_growth=max_bytes,
                stop=stop,
            )
        except GitTimeout as exc:
            if exc.received:
                raise
            log.warning("fetching repository %s: no answer in %.0f s", source.name, timeout_s)
            raise FetchError(unreachable(source)) from exc
        if res.returncode != 0:
            raise FetchError(explain(res.stderr, source))
        commit = _git(["rev-parse", f"{HEAD_REF}^{{commit}}"], gitdir, timeout_s)
        since = _since(source, commit, remote.url, access, gitdir, timeout_s, stop)
    return Fetched(gitdir, commit, since)


def _since(
    source: RepoSource,
    commit: str,
    url: str,
    access: GitAccess,
    gitdir: Path,
    timeout_s: float,
    stop: Callable[[], bool] | None,
) -> str | None:
    """The last harvested commit when the cache has (or can get) it, else None."""
    last = source.last_commit
    if last is None or not _SHA.match(last):
        return None
    if last == commit or _has_commit(gitdir, last, access):
        return last
    # Not in the cache (a new worker): ask the server for just that commit.
    args = ["fetch", "--depth=1", "--no-tags", "--no-write-fetch-head", "--", url, last]
    run_git(args, access, cwd=gitdir, timeout_s=timeout_s, stop=stop)
    return last if _has_commit(gitdir, last, access) else None
