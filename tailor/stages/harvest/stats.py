"""A harvest's statistics: what was seen, kept and dropped (by reason), and where time went.

The tally grows as stages finish; `to_dict` is the manifest's `stats` and the dataset's row.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tailor.stages.harvest.gather import RepoFiles
from tailor.stages.harvest.process import Batch

# Code averages roughly 3.5-4 characters per token with BPE tokenizers (StarCoder's: ~3.6).
CHARS_PER_TOKEN = 4


@dataclass
class Tally:
    """Counters that the pipeline's stages add to."""

    files_seen: int = 0
    files_processed: int = 0
    bytes_processed: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_bytes: Counter[str] = field(default_factory=Counter)
    secrets: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    exact_duplicates: int = 0
    near_duplicates: int = 0
    duplicates_of_previous: int = 0
    unchanged_since: list[str] = field(default_factory=list)

    def add_walk(self, repo: RepoFiles) -> None:
        """Files the walk skipped (lock files, vendored, binary by name, too large, ...)."""
        if repo.walk is None:
            return
        walk = repo.walk
        self.files_seen += len(walk.files) + sum(walk.skipped.values())
        self.dropped.update(walk.skipped)
        self.dropped_bytes.update(walk.skipped_bytes)
        self.seconds["fetch"] += repo.seconds

    def add_batch(self, batch: Batch, files: int) -> None:
        """Files the per-file stages dropped, and their time."""
        self.files_processed += files
        self.bytes_processed += batch.bytes_read
        self.dropped.update(batch.dropped)
        self.dropped_bytes.update(batch.dropped_bytes)
        for stage, s in batch.seconds.items():
            self.seconds[stage] += s

    def counts(self) -> dict[str, Any]:
        """What a harvest part tallied before deduplication, as JSON (see `absorb`)."""
        return {
            "files_seen": self.files_seen,
            "files_processed": self.files_processed,
            "bytes_processed": self.bytes_processed,
            "dropped": dict(self.dropped),
            "dropped_bytes": dict(self.dropped_bytes),
            "seconds": dict(self.seconds),
        }

    def absorb(self, counts: dict[str, Any]) -> None:
        """Add a part's `counts()`: the parts' tallies sum to the single task's."""
        self.files_seen += int(counts.get("files_seen", 0))
        self.files_processed += int(counts.get("files_processed", 0))
        self.bytes_processed += int(counts.get("bytes_processed", 0))
        self.dropped.update(counts.get("dropped", {}))
        self.dropped_bytes.update(counts.get("dropped_bytes", {}))
        for stage, s in counts.get("seconds", {}).items():
            self.seconds[stage] += float(s)

    def add_duplicates(
        self, exact: int, near: int, of_previous: int, exact_b: int, near_b: int
    ) -> None:
        """What deduplication removed."""
        self.exact_duplicates, self.near_duplicates = exact, near
        self.duplicates_of_previous = of_previous
        self.dropped.update({"exact_duplicate": exact, "near_duplicate": near})
        self.dropped_bytes.update({"exact_duplicate": exact_b, "near_duplicate": near_b})

    def to_dict(self, kept: list[dict[str, Any]], repos: list[RepoFiles]) -> dict[str, Any]:
        """The manifest's `stats`; `kept` holds language, size, chars, split per kept row."""
        ok = sum(1 for r in repos if r.outcome.status == "ok")
        chars = sum(int(k["chars"]) for k in kept)
        return {
            "files_seen": self.files_seen,
            "files_processed": self.files_processed,
            "bytes_processed": self.bytes_processed,
            "files_kept": len(kept),
            "bytes_kept": sum(int(k["size"]) for k in kept),
            "files_dropped": sum(self.dropped.values()),
            "dropped": dict(sorted((k, v) for k, v in self.dropped.items() if v)),
            "dropped_bytes": dict(sorted((k, v) for k, v in self.dropped_bytes.items() if v)),
            "languages": dict(Counter(str(k["language"]) for k in kept).most_common()),
            "splits": dict(sorted(Counter(str(k["split"]) for k in kept).items())),
            "duplicates": {
                "exact": self.exact_duplicates,
                "near": self.near_duplicates,
                "of_previous_datasets": self.duplicates_of_previous,
            },
            "secrets_redacted": dict(sorted(self.secrets.items())),
            "secrets_total": sum(self.secrets.values()),
            "tokens_estimate": chars // CHARS_PER_TOKEN,
            "repositories": {"ok": ok, "failed": len(repos) - ok},
            "seconds": {k: round(v, 3) for k, v in sorted(self.seconds.items())},
            "unchanged_since": self.unchanged_since,
        }
