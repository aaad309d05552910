"""Walk a checkout: which files are candidates for the dataset, and why the others are not.

Nothing here reads file contents; it decides from names, globs, lstat and symlink targets.
Symlinks are never followed: one pointing outside the root is counted as such, one inside is
skipped because its target is harvested under its own path; directories reached through
symlinks are never entered.
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tailor.harvest.spec import FilterConfig


@dataclass(frozen=True)
class Candidate:
    """A file the walk keeps: where it is in the repo, where to read it, what it is."""

    repo: str
    path: str  # repo-relative, POSIX separators
    source: str  # absolute path to read (a symlink's target, checked to be inside the root)
    language: str
    size: int
    commit: str = ""


@dataclass
class WalkResult:
    """Candidates in path order, and files skipped by reason (with their bytes)."""

    files: list[Candidate] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_bytes: Counter[str] = field(default_factory=Counter)
    dirs_skipped: int = 0

    def skip(self, reason: str, size: int = 0) -> None:
        self.skipped[reason] += 1
        self.skipped_bytes[reason] += size


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: `*` within a segment, `**` across segments, `?`, `[...]`.

    A pattern without `/` matches a file name anywhere (`*.py`); a trailing `/` means
    everything below (`docs/` == `docs/**`).
    """
    pat = pattern.strip()
    if pat.endswith("/"):
        pat += "**"
    if "/" not in pat:
        pat = "**/" + pat
    pat = pat.lstrip("/")
    out, i = [], 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif pat[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pat[i] == "?":
            out.append("[^/]")
            i += 1
        elif pat[i] == "[" and "]" in pat[i + 1 :]:
            j = pat.index("]", i + 1)
            body = pat[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j + 1
        else:
            out.append(re.escape(pat[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def path_selected(path: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    """True when `path` matches an include glob (or there are none) and no exclude glob."""
    inc = list(include)
    if inc and not any(glob_regex(g).match(path) for g in inc):
        return False
    return not any(glob_regex(g).match(path) for g in exclude)


def language_of(name: str, languages: dict[str, str]) -> str | None:
    """The language of a file name from the allowlist (exact name first, then extension)."""
    if name in languages:
        return languages[name]
    dot = name.rfind(".")
    return languages.get(name[dot:].lower()) if dot > 0 else None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


class _Walker:
    def __init__(
        self, root: Path, repo: str, commit: str, include: list[str], exclude: list[str],
        cfg: FilterConfig,
    ) -> None:  # fmt: skip
        self.root = os.path.realpath(root)
        self.repo, self.commit, self.include, self.exclude = repo, commit, include, exclude
        self.cfg = cfg
        self.skip_dirs = set(cfg.skip_dirs)
        self.lock_files = set(cfg.lock_files)
        self.result = WalkResult()

    def consider(self, rel: str, full: str, st: os.stat_result) -> None:
        """Decide one non-directory entry (lstat result `st`)."""
        name = rel.rsplit("/", 1)[-1]
        if not path_selected(rel, self.include, self.exclude):
            return self.result.skip("not_selected", st.st_size)
        if name in self.lock_files:
            return self.result.skip("lock_file", st.st_size)
        language = language_of(name, self.cfg.languages)
        if language is None:
            return self.result.skip("language", st.st_size)
        source = full
        if stat.S_ISLNK(st.st_mode):
            source = os.path.realpath(full)
            if not _inside(source, self.root):
                return self.result.skip("symlink_outside")
            # A link inside the repository: its target is harvested under its own path.
            return self.result.skip("symlink")
        if not stat.S_ISREG(st.st_mode):
            return self.result.skip("not_regular_file")
        if st.st_size > self.cfg.max_file_bytes:
            return self.result.skip("too_large", st.st_size)
        if st.st_size == 0:
            return self.result.skip("empty")
        cand = Candidate(self.repo, rel, source, language, st.st_size, self.commit)
        self.result.files.append(cand)
        return None

    def walk(self) -> None:
        stack = [("", self.root)]
        while stack:
            rel_dir, full_dir = stack.pop()
            with os.scandir(full_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                rel = f"{rel_dir}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    if entry.name in self.skip_dirs:
                        self.result.dirs_skipped += 1
                    else:
                        stack.append((rel + "/", entry.path))
                    continue
                self.consider(rel, entry.path, entry.stat(follow_symlinks=False))

    def walk_paths(self, paths: Iterable[str]) -> None:
        for rel in paths:
            parts = rel.split("/")
            if any(p in ("", ".", "..") for p in parts):
                self.result.skip("invalid_path")
                continue
            if any(p in self.skip_dirs for p in parts[:-1]):
                continue
            full = os.path.join(self.root, *parts)
            # A parent directory that is a symlink could lead outside: check the real parent.
            if not _inside(os.path.realpath(os.path.dirname(full)), self.root):
                self.result.skip("symlink_outside")
                continue
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                continue  # deleted since the diff was taken
            if not stat.S_ISDIR(st.st_mode):
                self.consider(rel, full, st)


def walk_tree(
    root: Path,
    *,
    repo: str,
    filters: FilterConfig,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    commit: str = "",
    only: Iterable[str] | None = None,
) -> WalkResult:
    """Candidates under `root` (or only the repo-relative `only` paths), sorted by path."""
    walker = _Walker(root, repo, commit, include or [], exclude or [], filters)
    if only is None:
        walker.walk()
    else:
        walker.walk_paths(sorted(set(only)))
    walker.result.files.sort(key=lambda c: c.path)
    return walker.result
