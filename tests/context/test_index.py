"""The code index: definitions with signatures and docstrings, BM25 chunks, its serialised form."""

from __future__ import annotations

from typing import Any

from tailor.stages.context.index import CodeIndex, SourceFile, build_index
from tailor.stages.context.symbols import extract

from .conftest import FILES, PRICING, TS


def test_python_definitions_carry_their_signature_and_docstring_not_their_body() -> None:
    found = {s.name: s for s in extract("shop/pricing.py", PRICING)}

    text = found["apply_discount"].text
    assert text.startswith("def apply_discount(price: float, rate: float) -> float:")
    assert "The price after a discount" in text and "round(" not in text
    assert found["plus"].kind == "method" and found["Money"].kind == "class"
    assert "amount: float" in found["Money"].text and "def plus(" in found["Money"].text


def test_other_languages_give_their_declarations_with_the_comment_above() -> None:
    (fmt,) = extract("web/format.ts", TS)

    assert fmt.name == "formatMoney" and fmt.line == 2
    assert fmt.text.splitlines() == TS.splitlines()[:2]


def test_a_python_file_that_does_not_parse_still_gives_its_definitions() -> None:
    broken = "def helper(x):\n    return x +\n\nclass Thing:\n    pass\n"

    assert [s.name for s in extract("a.py", broken)] == ["helper", "Thing"]


def test_the_lexical_index_finds_the_chunk_sharing_rare_terms_first(shop_index: CodeIndex) -> None:
    from tailor.stages.context.index import terms

    hits = shop_index.search(terms("cart.add_line(sku, price)"), 3)

    assert hits and shop_index.files[int(shop_index.chunk_file[hits[0][0]])][1] == "shop/cart.py"


def test_the_serialised_index_loads_to_the_same_symbols_and_chunks() -> None:
    builder = build_index(FILES)
    loaded = CodeIndex.load(builder.to_bytes())

    assert loaded.symbols == builder.build().symbols and loaded.chunks == len(builder.chunks)
    assert loaded.chunk_text(0) == "\n".join(PRICING.splitlines()[:20])


def test_identifiers_split_into_their_parts_for_the_lexical_index() -> None:
    from tailor.stages.context.index import terms

    found = set(terms("addLine add_line formatMoney"))

    assert {"addline", "add_line", "add", "line", "formatmoney", "format", "money"} <= found
    assert "self" not in terms("self.lines")


def test_files_over_the_size_limit_are_left_out() -> None:
    from tailor.stages.context.index import MAX_FILE_BYTES

    big = SourceFile("shop", "data/huge.py", "Python", "x = 1\n" * (MAX_FILE_BYTES // 5))
    builder = build_index([big, FILES[1]])

    assert [f[1] for f in builder.files] == ["shop/cart.py"]


def test_a_query_past_the_postings_cap_is_decided_by_its_rarest_terms(monkeypatch: Any) -> None:
    from tailor.stages.context import index as index_module

    common = [SourceFile("r", f"m{i}.py", "Python", f"total = amount + {i}\n") for i in range(50)]
    rare = SourceFile("r", "ledger.py", "Python", "reconcile_ledger(amount)\n")
    index = CodeIndex.load(build_index([*common, rare]).to_bytes())
    monkeypatch.setattr(index_module, "QUERY_POSTINGS", 8)  # fewer than "amount" alone holds

    hits = index.search(["amount", "total", "reconcile_ledger"], 3)

    assert index.files[int(index.chunk_file[hits[0][0]])][1] == "ledger.py"
    assert len(hits) == 1  # the common terms were not scored
