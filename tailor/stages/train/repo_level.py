"""Repository-level examples: several files of one repository in one sequence.

Families pre-trained this way (StarCoder2, Qwen2.5-Coder) see a repository's name, then
each file's path and code behind a file separator, the last file in FIM form; training a
share of examples like this lets an adapter learn the team's cross-file context, as the
base did. Families without the tokens get every file on its own, exactly as before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from tailor.fim import FimTokens
from tailor.stages.train.fim import encode_document

GROUP_FILES = 4  # files per repository-level example (neighbours in the harvest's order)


@dataclass(frozen=True)
class SourceFile:
    """One harvested file: its repository, its path in it, its text."""

    repo: str
    path: str
    content: str


def repo_groups(files: Iterable[SourceFile], size: int = GROUP_FILES) -> Iterator[list[SourceFile]]:
    """Consecutive files of one repository, up to `size` at a time (a new repository ends one)."""
    group: list[SourceFile] = []
    for f in files:
        if group and (len(group) == size or f.repo != group[0].repo):
            yield group
            group = []
        group.append(f)
    if group:
        yield group


def encode_repo(
    group: Sequence[SourceFile],
    encode: Callable[[str], list[int]],
    ids: FimTokens,
    rng: random.Random,
    fim_rate: float,
    spm_rate: float,
) -> list[int]:
    """Ids of one repository-level example in the family's layout; the last file may be FIM."""
    assert ids.file_sep_id is not None and ids.repo_name_id is not None
    nl = "\n" if ids.repo_layout == "qwen" else ""
    out = [ids.repo_name_id, *encode(group[0].repo + nl)]
    for f in group[:-1]:
        out += [ids.file_sep_id, *encode(f"{f.path}\n{f.content}{nl}")]
    last = group[-1]
    out.append(ids.file_sep_id)
    if ids.repo_layout == "qwen":  # the path stands before the FIM tokens
        out += encode(f"{last.path}\n")
        return out + encode_document(last.content, encode, ids, rng, fim_rate, spm_rate)
    # StarCoder2 writes the path inside the prefix, after <fim_prefix>.
    head = f"{last.path}\n"
    return out + encode_document(last.content, encode, ids, rng, fim_rate, spm_rate, head)


def file_documents(
    files: Iterable[SourceFile],
    encode: Callable[[str], list[int]],
    ids: FimTokens | None,
    rng: random.Random,
    rates: tuple[float, float, float],
) -> Iterator[list[int]]:
    """Token ids per document: with probability repo_rate a group of files as one example.

    `rates` is (fim_rate, spm_rate, repo_rate). Without a repository layout the random
    stream and the documents are those of `encode_document` file by file.
    """
    fim_rate, spm_rate, repo_rate = rates
    if ids is None or ids.repo_layout is None or repo_rate <= 0:
        for f in files:
            yield encode_document(f.content, encode, ids, rng, fim_rate, spm_rate)
        return
    for group in repo_groups(files):
        if len(group) > 1 and rng.random() < repo_rate:
            yield encode_repo(group, encode, ids, rng, fim_rate, spm_rate)
            continue
        for f in group:
            yield encode_document(f.content, encode, ids, rng, fim_rate, spm_rate)
