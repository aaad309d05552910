"""Repository-level examples: each family's layout of several files of one repository."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tailor.demo.sample_data import house_style_documents, write_documents
from tailor.fim import CODEGEMMA, DEEPSEEK_CODER, QWEN_CODER, STARCODER2, FimStyle, require_fim
from tailor.stages.train import data
from tailor.stages.train.fim import encode_document
from tailor.stages.train.repo_level import SourceFile, encode_repo, file_documents, repo_groups
from tailor.storage import FileStore
from tests.families import FAMILIES, build_tokenizer

FILES = [SourceFile("acme/quill", "a.py", "x = 1\n"), SourceFile("acme/quill", "b.py", "y = 2\n")]


def chars(text: str) -> list[int]:
    return [ord(c) for c in text]


def tokens(style: FimStyle) -> Any:
    texts = (style.prefix, style.suffix, style.middle, *style.extra, *style.repo_tokens)
    return require_fim({t: 1000 + i for i, t in enumerate(texts)}, style)


def test_qwen_writes_repo_name_then_each_file_behind_file_sep_as_its_readme_shows() -> None:
    t = tokens(QWEN_CODER)

    ids = encode_repo(FILES, chars, t, random.Random(0), fim_rate=0.0, spm_rate=0.0)

    sep = [t.file_sep_id]
    body = chars("acme/quill\n") + sep + chars("a.py\nx = 1\n\n") + sep + chars("b.py\ny = 2\n")
    assert ids == [t.repo_name_id, *body]


def test_starcoder2_puts_the_last_files_path_inside_the_fim_prefix() -> None:
    t = tokens(STARCODER2)

    ids = encode_repo(FILES, chars, t, random.Random(0), fim_rate=1.0, spm_rate=0.0)

    last = ids[len(ids) - ids[::-1].index(t.file_sep_id) :]
    assert ids[:2] == [t.repo_name_id, ord("a")] and ids.count(t.file_sep_id) == 2
    assert last[0] == t.prefix_id and last[1 : 1 + len("b.py\n")] == chars("b.py\n")
    middle = last[last.index(t.middle_id) + 1 :]
    assert "".join(map(chr, middle)) in "y = 2\n"  # the path is never the part to fill in


@pytest.mark.parametrize("style", [DEEPSEEK_CODER, CODEGEMMA], ids=lambda s: s.name)
def test_a_family_without_a_repository_layout_trains_file_by_file_as_before(
    style: FimStyle,
) -> None:
    t = tokens(style)
    before = [encode_document(f.content, chars, t, random.Random(3), 0.5, 0.5) for f in FILES[:1]]

    docs = list(file_documents(FILES[:1], chars, t, random.Random(3), (0.5, 0.5, 1.0)))

    assert docs == before and t.repo_layout is None


def test_groups_never_mix_repositories_and_stay_small() -> None:
    files = [SourceFile("r1", f"{i}.py", "x") for i in range(6)] + [SourceFile("r2", "z.py", "y")]

    groups = list(repo_groups(files, size=4))

    assert [len(g) for g in groups] == [4, 2, 1]
    assert all(len({f.repo for f in g}) == 1 for g in groups)


def test_training_rows_of_a_qwen_model_carry_repo_examples_only_when_asked(tmp_path: Path) -> None:
    qwen = next(f for f in FAMILIES if f.style is QWEN_CODER)
    docs = house_style_documents(12, 2)
    tokenizer = build_tokenizer(qwen, [content for _, content, _ in docs])
    store = FileStore(tmp_path / "objects")
    write_documents(store, "acme", "ds", docs)
    manifest = data.read_manifest(store, "acme", "ds")
    fim = require_fim(tokenizer.get_vocab())

    def first_rows(repo_rate: float) -> list[int]:
        pipeline = data.token_pipeline(tokenizer, fim, 0.5, 0.5, repo_rate)
        stream = data.training_stream(store, manifest, pipeline, 256, 0, tmp_path / "s")
        return [i for _ in range(8) for i in next(stream)]

    assert fim.file_sep_id in first_rows(1.0) and fim.repo_name_id in first_rows(1.0)
    assert fim.file_sep_id not in first_rows(0.0)
