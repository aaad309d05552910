"""Packing: constant-length rows, EOS between documents, and the padding it saves, measured."""

from __future__ import annotations

import itertools

from tailor.stages.train.packing import PackingStats, batch_rows, pack, pad_to_longest

EOS, PAD = 0, 99


def _docs() -> list[list[int]]:
    # Lengths from 1 to 40 tokens; ids never equal EOS or PAD.
    return [[1000 * d + i + 1 for i in range(1 + (d * 7) % 40)] for d in range(50)]


def test_every_packed_row_has_the_same_length_and_no_padding() -> None:
    stats = PackingStats()

    rows = list(pack(_docs(), 32, EOS, stats))

    assert rows and {len(r) for r in rows} == {32}
    assert PAD not in itertools.chain.from_iterable(rows)
    assert stats.padding_fraction == 0.0
    assert stats.real_tokens == 32 * len(rows)


def test_documents_are_separated_by_eos_and_come_back_whole_and_in_order() -> None:
    docs = _docs()
    stats = PackingStats()

    stream = list(itertools.chain.from_iterable(pack(docs, 32, EOS, stats)))

    # Splitting the packed stream at EOS gives back the documents: no document crosses
    # into the next without an EOS marking the boundary.
    pieces = [list(g) for is_eos, g in itertools.groupby(stream, lambda t: t == EOS) if not is_eos]
    whole, cut = (pieces, []) if stream[-1] == EOS else (pieces[:-1], pieces[-1])
    assert whole == docs[: len(whole)]
    assert cut == docs[len(whole)][: len(cut)]  # the last row may end inside a document
    assert stream.count(EOS) == len(whole)
    assert stats.real_tokens + stats.dropped_tokens == sum(len(d) + 1 for d in docs)


def test_a_document_longer_than_a_row_continues_in_the_next_row() -> None:
    rows = list(pack([list(range(1, 71))], 32, EOS))

    assert rows == [list(range(1, 33)), list(range(33, 65))]


def test_the_pad_to_longest_baseline_wastes_positions_and_says_how_many() -> None:
    stats = PackingStats()

    batches = list(pad_to_longest(_docs(), 8, 64, EOS, PAD, stats))

    for batch in batches:
        width = len(batch.input_ids[0])
        assert all(len(row) == width for row in batch.input_ids)
        rows = zip(batch.input_ids, batch.attention_mask, batch.labels, strict=True)
        for ids, mask, labels in rows:
            assert [t == PAD for t in ids] == [m == 0 for m in mask]
            assert [lab == -100 for lab in labels] == [m == 0 for m in mask]
    pads = sum(row.count(PAD) for b in batches for row in b.input_ids)
    assert stats.pad_tokens == pads > 0
    assert 0.2 < stats.padding_fraction < 0.8


def test_batches_have_a_fixed_size_and_a_short_tail_is_dropped() -> None:
    assert list(batch_rows([[1], [2], [3], [4], [5]], 2)) == [[[1], [2]], [[3], [4]]]
