"""A completion's repository context: definitions of the names near the cursor and similar chunks,
ranked, deduplicated against what the editor sent, and fitted to a token budget.

Pure functions over a loaded `CodeIndex`; the caller supplies the token count (the served
model's tokenizer), so the budget holds in the tokens the model will see.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tailor.stages.context.index import STOPWORDS, CodeIndex, terms
from tailor.stages.context.snippets import ContextFile

NEAR_CHARS = 1200  # the prefix's tail read for names and for the lexical query
SUFFIX_CHARS = 400
MAX_DEFINITIONS = 24  # candidates considered, before the budget
MAX_CHUNKS = 8
MAX_CANDIDATES = 12  # offered to the budget, best first
MIN_SNIPPET_TOKENS = 16  # a budget left smaller than this holds no useful snippet
MAX_CHARS_PER_TOKEN = 8  # code averages 3-4; a longer snippet cannot fit and is not counted
MIN_NAME = 3  # shorter names (i, df, ok) match too many definitions to mean one
CURSOR_LINES = 2  # the lines up to the cursor (blank ones not counted): what is being written
CURSOR_BONUS = 1.0  # a name all of whose parts are there outranks one used nearer the cursor

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT = re.compile(
    r"^[ \t]*from[ \t]+([\w.]+)[ \t]+import[ \t]+(?:\(([^)]*)\)|([\w \t,]+))"
    r"|^[ \t]*import[ \t]+([\w.]+)",
    re.MULTILINE,
)
_HEADER = re.compile(r"\s*(?:export\s+|pub\s+|async\s+)*(?:def|class|function|func|fn)\s")
_LOCAL_DEF = re.compile(r"\b(?:def|class|function|func|fn|struct|interface|type)\s+([A-Za-z_]\w*)")


@dataclass(frozen=True)
class EditorSnippet:
    """Context the editor sent itself (Tabby's declarations and snippets)."""

    path: str
    body: str


@dataclass(frozen=True)
class ContextQuery:
    """What retrieval reads of a request."""

    prefix: str
    suffix: str = ""
    path: str | None = None
    editor: Sequence[EditorSnippet] = ()


@dataclass(frozen=True)
class Assembled:
    """The snippets that fit, and why the others did not (the debug output)."""

    files: list[ContextFile]
    tokens: int
    budget: int
    left_out: list[tuple[ContextFile, str]] = field(default_factory=list)


def _same_file(query_path: str | None, path: str) -> bool:
    """The index's copy of the file being edited (the client's path may be absolute)."""
    if not query_path:
        return False
    q = query_path.replace("\\", "/")
    return q == path or q.endswith("/" + path)


def _wanted_names(query: ContextQuery) -> dict[str, float]:
    """Names used near the cursor (nearer weighs more) and names the file imports."""
    near = query.prefix[-NEAR_CHARS:]
    local = set(_LOCAL_DEF.findall(query.prefix)) | set(_LOCAL_DEF.findall(query.suffix))
    weights: dict[str, float] = {}
    for match in _IMPORT.finditer(query.prefix):
        names = match.group(2) or match.group(3) or (match.group(4) or "").rsplit(".", 1)[-1]
        for name in re.split(r"[\s,]+", names):
            if name and name != "as":
                weights[name] = max(weights.get(name, 0.0), 0.5)
    idents = list(_IDENT.finditer(near))
    for match in idents:
        position = match.start() / max(len(near), 1)  # 1.0 at the cursor
        weights[match.group(0)] = max(weights.get(match.group(0), 0.0), 0.5 + position)
    for match in _IDENT.finditer(query.suffix[:SUFFIX_CHARS]):
        weights[match.group(0)] = max(weights.get(match.group(0), 0.0), 0.75)
    return {
        n: w
        for n, w in weights.items()
        if len(n) >= MIN_NAME and n.lower() not in STOPWORDS and n not in local
    }


def _imported_modules(prefix: str) -> tuple[set[str], tuple[str, ...]]:
    """The modules the prefix imports, and the same as dotted tails (for one `endswith`)."""
    modules = {m.group(1) or m.group(4) for m in _IMPORT.finditer(prefix)}
    return modules, tuple("." + m for m in modules)


def _module_bonus(imported: tuple[set[str], tuple[str, ...]], path: str) -> float:
    """A definition in the module a `from x.y import` line names outranks a namesake."""
    module = path.rsplit(".", 1)[0].replace("/", ".")
    hit = module in imported[0] or module.endswith(imported[1])
    return 0.5 if hit else 0.0


def _cursor_terms(prefix: str) -> set[str]:
    """The terms of what is being written: the enclosing definition's header and the last
    CURSOR_LINES non-blank lines."""
    lines = [line for line in prefix[-NEAR_CHARS:].splitlines() if line.strip()]
    headers = [n for n, line in enumerate(lines) if _HEADER.match(line)]
    shown = lines[-CURSOR_LINES:]
    if headers and headers[-1] < len(lines) - CURSOR_LINES:
        shown = [lines[headers[-1]], *shown]
    return set(terms("\n".join(shown)))


def _cursor_bonus(name: str, cursor: set[str]) -> float:
    """The share of a name's parts in the lines just before the cursor: the function being
    written (`handle_refund_order`) names what it is about to call (`refund_order`)."""
    parts = terms(name)
    parts = parts[1:] if len(parts) > 1 else parts  # the parts, not the whole name
    return CURSOR_BONUS * sum(p in cursor for p in parts) / len(parts) if parts else 0.0


def definitions(index: CodeIndex, query: ContextQuery) -> list[ContextFile]:
    """Definitions of the names the request uses, from other files of the team's code."""
    found = []
    imported = _imported_modules(query.prefix)
    cursor = _cursor_terms(query.prefix)
    bonus: dict[int, float | None] = {}  # per file: its module bonus, None for the edited file
    for name, weight in _wanted_names(query).items():
        sids = index.by_name.get(name)
        if not sids:
            continue
        named = 2.0 + weight + _cursor_bonus(name, cursor)
        for sid in sids[:MAX_DEFINITIONS]:
            _, _kind, file, line, text = index.symbols[sid]
            repo, path, _lang = index.files[file]
            if file not in bonus:
                same = _same_file(query.path, path)
                bonus[file] = None if same else _module_bonus(imported, path)
            extra = bonus[file]
            if extra is None:
                continue
            found.append(
                ContextFile(repo, path, text, round(named + extra, 4), "definition", name, line)
            )
    found.sort(key=lambda f: -f.score)
    return found[:MAX_DEFINITIONS]


def similar_chunks(index: CodeIndex, query: ContextQuery) -> list[ContextFile]:
    """Chunks of other files that share the most rare terms with the code around the cursor."""
    text = query.prefix[-NEAR_CHARS:] + "\n" + query.suffix[:SUFFIX_CHARS]
    hits = index.search(terms(text), MAX_CHUNKS * 2)
    if not hits:
        return []
    best = hits[0][1]
    found = []
    for chunk, score in hits:
        repo, path, _lang = index.files[int(index.chunk_file[chunk])]
        if _same_file(query.path, path):
            continue
        line = int(index.chunk_start[chunk]) + 1
        body = index.chunk_text(chunk)
        found.append(ContextFile(repo, path, body, round(score / best, 4), "chunk", None, line))
    return found[:MAX_CHUNKS]


def _normal(text: str) -> str:
    return " ".join(text.split())


def _already_seen(candidate: ContextFile, seen: list[str]) -> bool:
    """The editor (or a chosen snippet) already shows this code."""
    body = _normal(candidate.body)
    # A definition's signature line is enough: the editor may show it with another docstring.
    lines = candidate.body.strip().splitlines()
    head = _normal(lines[0]) if candidate.kind == "definition" and lines else ""
    return any(body in s or (head and head in s) for s in seen)


def assemble(
    index: CodeIndex,
    query: ContextQuery,
    budget: int,
    costs: Callable[[Sequence[ContextFile]], list[int]],
) -> Assembled:
    """The best snippets that fit in `budget` tokens (`costs` counts the tokens each snippet
    adds, placed as the prompt places it).

    Definitions rank above chunks; a snippet whose code the editor sent, or that repeats a
    better one, is dropped; a snippet over the remaining budget is skipped for a smaller one.
    Counting is most of retrieval's time, so snippets are counted one by one, best first, until
    the budget is spent; one whose characters could not fit even at MAX_CHARS_PER_TOKEN is
    skipped uncounted.
    """
    seen = [_normal(s.body) for s in query.editor]
    seen += [_normal(query.prefix[-NEAR_CHARS * 4 :]), _normal(query.suffix[: SUFFIX_CHARS * 4])]
    left_out: list[tuple[ContextFile, str]] = []
    fresh: list[ContextFile] = []
    for candidate in [*definitions(index, query), *similar_chunks(index, query)]:
        if _already_seen(candidate, seen):
            left_out.append((candidate, "duplicate"))
            continue
        fresh.append(candidate)
        seen.append(_normal(candidate.body))
    left_out += [(c, "ranked below the candidates counted") for c in fresh[MAX_CANDIDATES:]]
    fresh = fresh[:MAX_CANDIDATES]
    chosen: list[ContextFile] = []
    used = 0
    for n, candidate in enumerate(fresh):
        left = budget - used
        if left < MIN_SNIPPET_TOKENS:
            left_out += [(c, "budget") for c in fresh[n:]]
            break
        if len(candidate.body) > left * MAX_CHARS_PER_TOKEN:
            left_out.append((candidate, "budget"))
            continue
        (tokens,) = costs([candidate])
        if tokens > left:
            left_out.append((candidate, "budget"))
            continue
        chosen.append(candidate)
        used += tokens
    return Assembled(chosen, used, budget, left_out)
