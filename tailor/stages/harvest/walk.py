"""Walk a commit's tree in the cache: which files are candidates, and why the others are not.

The listing comes from `git ls-tree` (names, modes, sizes), so nothing here reads a file's
content except a symlink's target. A `.git` path is never a candidate, whatever `skip_dirs`
says (a crafted tree can hold one). Symlinks are never followed: one pointing outside the
repository is counted as such, one inside is skipped because its target is harvested under
its own path. An incremental walk looks at the paths changed since an earlier commit only,
and lists those deleted.

`walk_tree` takes a repository's cache and a commit range and gives its candidates; with
`blobs.read_blobs` it is all one worker needs to harvest one repository.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tailor.stages.harvest.blobs import read_blobs
from tailor.stages.harvest.gitrun import FetchError, git_pipe, local_env
from tailor.stages.harvest.globs import compile_glob
from tailor.stages.harvest.spec import FilterConfig

MAX_TREE_ENTRIES = 1_000_000
LIST_TIMEOUT_S = 600
_REGULAR = (b"100644", b"100755")
_SYMLINK = b"120000"


@dataclass(frozen=True)
class Candidate:
    """A file the walk keeps: where it is in the repository, which blob holds it, what it is."""

    repo: str
    path: str  # repo-relative, POSIX separators
    blob: str  # the object id of its content
    gitdir: str  # the bare cache holding that object
    language: str
    size: int
    commit: str = ""


@dataclass
class WalkResult:
    """Candidates in path order, files skipped by reason (with their bytes), and deletions."""

    files: list[Candidate] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_bytes: Counter[str] = field(default_factory=Counter)
    dirs_skipped: int = 0
    changed: int | None = None  # incremental: paths added or modified since the base commit
    deleted: list[str] = field(default_factory=list)  # incremental: harvestable paths removed

    def skip(self, reason: str, size: int = 0) -> None:
        self.skipped[reason] += 1
        self.skipped_bytes[reason] += size


@dataclass(frozen=True)
class Limits:
    """How much a commit's tree may hold before the repository is refused."""

    max_bytes: int
    max_entries: int = MAX_TREE_ENTRIES
    timeout_s: float = LIST_TIMEOUT_S


def path_selected(path: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """True when `path` matches an include glob (or there are none) and no exclude glob."""
    inc = list(include)
    if inc and not any(compile_glob(g).matches(path) for g in inc):
        return False
    return not any(compile_glob(g).matches(path) for g in exclude)


def language_of(name: str, languages: dict[str, str]) -> str | None:
    """The language of a file name from the allowlist (exact name first, then extension)."""
    if name in languages:
        return languages[name]
    dot = name.rfind(".")
    return languages.get(name[dot:].lower()) if dot > 0 else None


def _is_git_dir(name: str) -> bool:
    # Case-insensitive: on the file systems of many clients `.GIT` is `.git`.
    return name.lower() == ".git"


def _inside(link: str, target: str) -> bool:
    """Whether symlink `link` (a repo path) pointing at `target` stays inside the repository."""
    if target.startswith("/"):
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
    return resolved != ".." and not resolved.startswith("../")


@dataclass(frozen=True)
class _Entry:
    mode: bytes
    kind: bytes
    blob: str
    size: int
    path: str


class _Walker:
    def __init__(
        self, gitdir: Path, repo: str, commit: str, include: list[str], exclude: list[str],
        cfg: FilterConfig,
    ) -> None:  # fmt: skip
        self.gitdir, self.repo, self.commit = gitdir, repo, commit
        self.include, self.exclude, self.cfg = include, exclude, cfg
        self.skip_dirs = set(cfg.skip_dirs)
        self.lock_files = set(cfg.lock_files)
        self.result = WalkResult()
        self.dirs: set[str] = set()
        self.links: list[_Entry] = []

    def harvestable(self, path: str) -> str | None:
        """The language of `path` if its name and place could make it a candidate, else None."""
        parts = path.split("/")
        if any(p in ("", ".", "..") or _is_git_dir(p) for p in parts):
            return None
        if any(p in self.skip_dirs for p in parts[:-1]):
            return None
        if not path_selected(path, self.include, self.exclude) or parts[-1] in self.lock_files:
            return None
        return language_of(parts[-1], self.cfg.languages)

    def _in_skipped_dir(self, parts: list[str]) -> bool:
        for i, part in enumerate(parts[:-1]):
            if part in self.skip_dirs or _is_git_dir(part):
                self.dirs.add("/".join(parts[: i + 1]))
                return True
        return False

    def consider(self, e: _Entry) -> None:
        """Decide one entry of the tree."""
        parts = e.path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            return self.result.skip("invalid_path")
        if self._in_skipped_dir(parts) or e.kind == b"commit":  # submodules are not walked
            return None
        name = parts[-1]
        if _is_git_dir(name):
            return self.result.skip("git_metadata", e.size)
        if not path_selected(e.path, self.include, self.exclude):
            return self.result.skip("not_selected", e.size)
        if name in self.lock_files:
            return self.result.skip("lock_file", e.size)
        language = language_of(name, self.cfg.languages)
        if language is None:
            return self.result.skip("language", e.size)
        if e.mode == _SYMLINK:
            self.links.append(e)
            return None
        if e.mode not in _REGULAR or e.kind != b"blob":
            return self.result.skip("not_regular_file")
        if e.size > self.cfg.max_file_bytes:
            return self.result.skip("too_large", e.size)
        if e.size == 0:
            return self.result.skip("empty")
        self.result.files.append(
            Candidate(self.repo, e.path, e.blob, str(self.gitdir), language, e.size, self.commit)
        )
        return None

    def judge_links(self) -> None:
        """Skip each symlink, counted by whether its target is inside the repository."""
        if not self.links:
            return
        targets = read_blobs(self.gitdir, [e.blob for e in self.links])
        for e, target in zip(self.links, targets, strict=True):
            text = (target or b"").decode("utf-8", "surrogateescape")
            self.result.skip("symlink" if _inside(e.path, text) else "symlink_outside")


def _entries(gitdir: Path, commit: str, limits: Limits) -> Iterator[_Entry]:
    """Every entry of `commit`'s tree; FetchError as soon as a cap is passed."""
    args = ["ls-tree", "-r", "-z", "-l", "--full-tree", commit]
    total = entries = 0
    with git_pipe(args, local_env(), cwd=gitdir, timeout_s=limits.timeout_s) as pipe:
        tail = b""
        while chunk := pipe.stdout.read(1 << 16):
            records = (tail + chunk).split(b"\0")
            tail = records.pop()
            for rec in records:
                meta, _, path = rec.partition(b"\t")
                mode, kind, blob, size = meta.split()
                total += int(size) if size.isdigit() else 0
                entries += 1
                yield _Entry(
                    mode,
                    kind,
                    blob.decode(),
                    int(size) if size.isdigit() else 0,
                    path.decode("utf-8", "surrogateescape"),
                )
            if total > limits.max_bytes:
                raise FetchError(
                    f"repository is over the size cap: its files hold more than "
                    f"{limits.max_bytes / 2**20:.0f} MiB (found after {entries:,} files)"
                )
            if entries > limits.max_entries:
                raise FetchError(
                    f"repository is over the size cap: more than {limits.max_entries:,} files"
                )
        pipe.check()


def changes(gitdir: Path, since: str, commit: str, timeout_s: float) -> tuple[set[str], list[str]]:
    """(paths added or modified, paths deleted) from `since` to `commit`."""
    if since == commit:
        return set(), []
    args = ["diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", since, commit]
    with git_pipe(args, local_env(), cwd=gitdir, timeout_s=timeout_s) as pipe:
        fields = pipe.stdout.read().split(b"\0")
        pipe.check()
    changed, deleted = set(), []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        name = path.decode("utf-8", "surrogateescape")
        if meta.endswith(b"D"):
            deleted.append(name)
        else:
            changed.add(name)
    return changed, deleted


def walk_tree(
    gitdir: Path,
    commit: str,
    *,
    repo: str,
    filters: FilterConfig,
    limits: Limits,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    since: str | None = None,
) -> WalkResult:
    """Candidates of `commit` (only those changed since `since`, if given), sorted by path.

    The whole tree is listed when any file changed: the size caps hold for what the commit
    holds, not only for what changed.
    """
    walker = _Walker(gitdir, repo, commit, include or [], exclude or [], filters)
    only: set[str] | None = None
    if since is not None:
        only, deleted = changes(gitdir, since, commit, limits.timeout_s)
        walker.result.changed = len(only)
        walker.result.deleted = sorted(p for p in deleted if walker.harvestable(p))
    if only is None or only:  # nothing changed: nothing to list
        for entry in _entries(gitdir, commit, limits):
            if only is None or entry.path in only:
                walker.consider(entry)
    walker.judge_links()
    walker.result.dirs_skipped = len(walker.dirs)
    walker.result.files.sort(key=lambda c: c.path)
    return walker.result
