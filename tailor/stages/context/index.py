"""A team's code index: the definitions of every file and a BM25 index over code chunks.

Built from a dataset's rows (the harvest's filtered, deduplicated, redacted files), never from
checkouts, so what the harvest removed cannot come back through retrieval. Serialised as one
compressed `.npz` (arrays only, loaded without pickle): the files' text once, as UTF-8 with
offsets, the chunks as line ranges into it, the BM25 postings with their weights precomputed so
a query is one `bincount` over the postings of its terms.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tailor.stages.context.symbols import Symbol, extract

CHUNK_LINES = 20  # lines per chunk: a function or two, what Tabby's snippets hold
MAX_FILE_BYTES = 1 << 20  # larger files are generated or data: not worth a definition
BM25_K1, BM25_B = 1.2, 0.75
QUERY_POSTINGS = 32_768  # postings one query scores at most (see `CodeIndex.search`)
FORMAT = 1  # bump when the layout changes: an older index is rebuilt, not misread

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# Words every file of a language repeats: they rank nothing.
_STOPWORDS = """self cls def class return import from if else elif for while in is not and or none
true false the to of a an as with try except finally raise pass lambda yield async await var let
const function func fn pub int str bool this new public private static void null nil end do then"""
STOPWORDS = frozenset(_STOPWORDS.split())


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset: its repository, its path and its text."""

    repo: str
    path: str
    language: str
    content: str


def terms(text: str) -> list[str]:
    """The lexical terms of code: identifiers lower-cased, and their snake/camel-case parts."""
    out = []
    for ident in _IDENT.findall(text):
        low = ident.lower()
        if low in STOPWORDS or len(low) < 2:
            continue
        out.append(low)
        parts = [p.lower() for piece in ident.split("_") for p in _CAMEL.findall(piece)]
        if len(parts) > 1:
            out.extend(p for p in parts if len(p) > 1 and p not in STOPWORDS)
    return out


@dataclass(frozen=True)
class Chunk:
    """Lines [start, end) of one file."""

    file: int
    start: int
    end: int


class CodeIndex:
    """The loaded index: files, definitions by name, and BM25 over chunks."""

    def __init__(self, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
        header = json.loads(bytes(arrays["header"]).decode())
        if header.get("format") != FORMAT:
            raise ValueError(f"code index format {header.get('format')}, expected {FORMAT}")
        self.files: list[tuple[str, str, str]] = [tuple(f) for f in header["files"]]  # type: ignore[misc]
        self.symbols: list[tuple[str, str, int, int, str]] = [tuple(s) for s in header["symbols"]]  # type: ignore[misc]
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(header["vocab"])}
        self._text = arrays["text"]
        self._text_at = arrays["text_at"]
        self.chunk_file, self.chunk_start, self.chunk_end = (
            arrays["chunk_file"],
            arrays["chunk_start"],
            arrays["chunk_end"],
        )
        self.term_at, self.post_chunk, self.post_weight = (
            arrays["term_at"],
            arrays["post_chunk"],
            arrays["post_weight"],
        )
        self._lines: dict[int, list[str]] = {}
        # Symbol ids by the defined name: built with the index, not by its first query.
        self.by_name: dict[str, list[int]] = self._by_name()

    def _by_name(self) -> dict[str, list[int]]:
        names: dict[str, list[int]] = {}
        for i, sym in enumerate(self.symbols):
            names.setdefault(sym[0], []).append(i)
        return names

    @property
    def chunks(self) -> int:
        """How many chunks the lexical index holds."""
        return len(self.chunk_file)

    def lines(self, file: int) -> list[str]:
        """One file's lines (decoded on first use)."""
        if file not in self._lines:
            a, b = int(self._text_at[file]), int(self._text_at[file + 1])
            self._lines[file] = bytes(self._text[a:b]).decode("utf-8", "replace").splitlines()
        return self._lines[file]

    def chunk_text(self, chunk: int) -> str:
        """The text of one chunk."""
        lines = self.lines(int(self.chunk_file[chunk]))
        return "\n".join(lines[int(self.chunk_start[chunk]) : int(self.chunk_end[chunk])])

    def search(self, query: Iterable[str], limit: int) -> list[tuple[int, float]]:
        """The `limit` best chunks for the query terms by BM25, best first.

        The rarest terms are scored first and the commonest left out once QUERY_POSTINGS are
        gathered: a term in a tenth of the chunks weighs little and costs the most, and this
        bounds a query's time whatever the team's size (a small index scores every term).
        """
        ids = np.array([self.vocab[t] for t in set(query) if t in self.vocab], dtype=np.int64)
        if not len(ids) or not self.chunks:
            return []
        ids.sort()  # the terms' order is the query's, not the set's
        starts = self.term_at[ids].astype(np.int64)
        ends = self.term_at[ids + 1].astype(np.int64)
        order = np.argsort(ends - starts, kind="stable")
        gathered = np.cumsum((ends - starts)[order])
        kept = order[: max(1, int(np.searchsorted(gathered, QUERY_POSTINGS, side="right")))]
        spans = [(int(starts[i]), int(ends[i])) for i in kept]
        chunks = np.concatenate([self.post_chunk[a:b] for a, b in spans])
        weights = np.concatenate([self.post_weight[a:b] for a, b in spans])
        scores = np.bincount(chunks, weights=weights, minlength=self.chunks)
        hit = np.flatnonzero(scores)  # the chunks holding a term: the top is among them
        k = min(limit, len(hit))
        if k == 0:
            return []
        top = hit[np.argpartition(-scores[hit], k - 1)[:k]]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(c), float(scores[c])) for c in top]

    @classmethod
    def load(cls, data: bytes) -> CodeIndex:
        """An index from `IndexBuilder.to_bytes` (arrays only: nothing is unpickled)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return cls({name: npz[name] for name in npz.files})


def _chunks(lines: list[str]) -> Iterator[tuple[int, int]]:
    for start in range(0, len(lines), CHUNK_LINES):
        end = min(start + CHUNK_LINES, len(lines))
        if any(line.strip() for line in lines[start:end]):
            yield start, end


class IndexBuilder:
    """Collects files and writes the index's arrays."""

    def __init__(self) -> None:
        self.files: list[tuple[str, str, str]] = []
        self.symbols: list[tuple[str, str, int, int, str]] = []
        self.texts: list[bytes] = []
        self.chunks: list[Chunk] = []
        self.chunk_terms: list[Counter[str]] = []

    def add(self, f: SourceFile) -> None:
        """Index one file (a larger one than MAX_FILE_BYTES is left out)."""
        raw = f.content.encode("utf-8", "replace")
        if len(raw) > MAX_FILE_BYTES:
            return
        file = len(self.files)
        self.files.append((f.repo, f.path, f.language))
        self.texts.append(raw)
        for sym in extract(f.path, f.content):
            self.symbols.append(_symbol_row(sym, file))
        lines = f.content.splitlines()
        for start, end in _chunks(lines):
            self.chunks.append(Chunk(file, start, end))
            self.chunk_terms.append(Counter(terms("\n".join(lines[start:end]))))

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The index's arrays, BM25 weights included."""
        vocab, term_at, post_chunk, post_weight = self._postings()
        offsets = np.zeros(len(self.texts) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in self.texts], out=offsets[1:])
        header = {
            "format": FORMAT,
            "files": self.files,
            "symbols": self.symbols,
            "vocab": vocab,
        }
        return {
            "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            "text": np.frombuffer(b"".join(self.texts), dtype=np.uint8),
            "text_at": offsets,
            "chunk_file": np.array([c.file for c in self.chunks], dtype=np.int32),
            "chunk_start": np.array([c.start for c in self.chunks], dtype=np.int32),
            "chunk_end": np.array([c.end for c in self.chunks], dtype=np.int32),
            "term_at": term_at,
            "post_chunk": post_chunk,
            "post_weight": post_weight,
        }

    def _postings(
        self,
    ) -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        postings: dict[str, list[tuple[int, int]]] = {}
        for chunk, counts in enumerate(self.chunk_terms):
            for term, tf in counts.items():
                postings.setdefault(term, []).append((chunk, tf))
        n = max(len(self.chunk_terms), 1)
        lengths = np.array([sum(c.values()) for c in self.chunk_terms] or [0], dtype=np.float32)
        avg = max(float(lengths.mean()), 1.0)
        vocab = sorted(postings)
        term_at = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum([len(postings[t]) for t in vocab], out=term_at[1:])
        post_chunk = np.empty(int(term_at[-1]), dtype=np.int32)
        post_weight = np.empty(int(term_at[-1]), dtype=np.float32)
        for i, term in enumerate(vocab):
            rows = postings[term]
            a, b = int(term_at[i]), int(term_at[i + 1])
            ids = np.array([r[0] for r in rows], dtype=np.int32)
            tfs = np.array([r[1] for r in rows], dtype=np.float32)
            idf = math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
            norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[ids] / avg)
            post_chunk[a:b] = ids
            post_weight[a:b] = idf * tfs * (BM25_K1 + 1) / (tfs + norm)
        return vocab, term_at, post_chunk, post_weight

    def to_bytes(self) -> bytes:
        """The index as one compressed `.npz`."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.arrays())  # type: ignore[arg-type]
        return buf.getvalue()

    def build(self) -> CodeIndex:
        """The index in memory, as a loader would see it."""
        return CodeIndex(self.arrays())


def _symbol_row(sym: Symbol, file: int) -> tuple[str, str, int, int, str]:
    return (sym.name, sym.kind, file, sym.line, sym.text)


def build_index(files: Iterable[SourceFile]) -> IndexBuilder:
    """An index builder holding every file (serialise with `to_bytes`, query with `build`)."""
    builder = IndexBuilder()
    for f in files:
        builder.add(f)
    return builder
