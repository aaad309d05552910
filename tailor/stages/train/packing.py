"""Turn token streams into fixed-shape training sequences.

`pack` is what training uses: documents joined with EOS and cut into constant-length
sequences, so no position is padding. `pad_to_longest` is the naive baseline the
benchmark compares against: one document per row, padded to the longest in its batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass
class PackingStats:
    """Counts of real and padding positions a batcher produced."""

    real_tokens: int = 0
    pad_tokens: int = 0
    dropped_tokens: int = 0

    @property
    def padding_fraction(self) -> float:
        """Share of produced positions that are padding."""
        total = self.real_tokens + self.pad_tokens
        return self.pad_tokens / total if total else 0.0


def pack(
    documents: Iterable[list[int]],
    seq_len: int,
    eos_id: int,
    stats: PackingStats | None = None,
) -> Iterator[list[int]]:
    """Constant-length sequences: each document followed by EOS, cut every seq_len tokens.

    A document longer than seq_len continues in the next sequence; the tail that cannot
    fill a last sequence is dropped (and counted).
    """
    stats = stats if stats is not None else PackingStats()
    buffer: list[int] = []
    for doc in documents:
        buffer.extend(doc)
        buffer.append(eos_id)
        while len(buffer) >= seq_len:
            stats.real_tokens += seq_len
            yield buffer[:seq_len]
            del buffer[:seq_len]
    stats.dropped_tokens += len(buffer)


def batch_rows(rows: Iterable[list[int]], batch_size: int) -> Iterator[list[list[int]]]:
    """Group rows into lists of batch_size; a last short group is dropped (fixed shapes)."""
    group: list[list[int]] = []
    for row in rows:
        group.append(row)
        if len(group) == batch_size:
            yield group
            group = []


@dataclass
class PaddedBatch:
    """One pad-to-longest batch: ids, attention mask (1 = real) and labels (-100 = ignore)."""

    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    labels: list[list[int]]


def pad_to_longest(
    documents: Iterable[list[int]],
    batch_size: int,
    max_len: int,
    eos_id: int,
    pad_id: int,
    stats: PackingStats | None = None,
) -> Iterator[PaddedBatch]:
    """The naive baseline: one document (+EOS, truncated to max_len) per row, padded."""
    stats = stats if stats is not None else PackingStats()
    rows = ([*doc, eos_id][:max_len] for doc in documents)
    for group in batch_rows(rows, batch_size):
        width = max(len(r) for r in group)
        batch = PaddedBatch([], [], [])
        for row in group:
            pad = width - len(row)
            batch.input_ids.append(row + [pad_id] * pad)
            batch.attention_mask.append([1] * len(row) + [0] * pad)
            batch.labels.append(row + [-100] * pad)
            stats.real_tokens += len(row)
            stats.pad_tokens += pad
        yield batch
