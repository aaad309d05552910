"""Context assembly for one request: the expected definitions, within a budget of real tokens,
without what the editor already sent, placed as the model family was trained to read it."""

from __future__ import annotations

import random
from typing import Any

from tailor.fim import QWEN_CODER
from tailor.stages.context.assemble import (
    ContextFile,
    ContextQuery,
    EditorSnippet,
    assemble,
)
from tailor.stages.context.index import CodeIndex, build_index
from tailor.stages.context.index import SourceFile as IndexedFile
from tailor.stages.serve.generation import GenerationRequest
from tailor.stages.serve.prompting import Prompter
from tailor.stages.train.repo_level import SourceFile, encode_repo
from tests.families import FAMILIES, build_tokenizer

from .conftest import CHECKOUT_PREFIX, CHECKOUT_SUFFIX

QUERY = ContextQuery(CHECKOUT_PREFIX, CHECKOUT_SUFFIX, "shop/checkout.py")


def request(**kw: Any) -> GenerationRequest:
    return GenerationRequest(prompt=CHECKOUT_PREFIX, suffix=CHECKOUT_SUFFIX, **kw)


def cost(prompter: Prompter) -> Any:
    req = request(path="shop/checkout.py")
    return lambda snippets: prompter.context_costs(snippets, req)


def test_the_snippets_are_the_definitions_the_code_at_the_cursor_uses(
    shop_index: CodeIndex, prompter: Prompter
) -> None:
    found = assemble(shop_index, QUERY, 400, cost(prompter))

    defs = [(f.symbol, f.path) for f in found.files if f.kind == "definition"]
    assert defs[0] == ("apply_discount", "shop/pricing.py")
    assert ("Cart", "shop/cart.py") in defs
    assert "The price after a discount" in found.files[0].body


def test_the_budget_holds_in_the_tokens_the_model_sees(
    shop_index: CodeIndex, prompter: Prompter
) -> None:
    plain = len(prompter.prompt_ids(request(path="shop/checkout.py")))
    for budget in (80, 150, 300):
        found = assemble(shop_index, QUERY, budget, cost(prompter))
        placed = request(path="shop/checkout.py", context=found.files)

        grown = len(prompter.prompt_ids(placed)) - plain

        assert found.files and found.tokens <= budget
        assert grown <= budget
        assert any(why == "budget" for _, why in found.left_out)


def test_what_the_editor_already_sent_is_not_repeated(
    shop_index: CodeIndex, prompter: Prompter
) -> None:
    sent = EditorSnippet(
        "shop/pricing.py", "def apply_discount(price: float, rate: float) -> float:\n    ..."
    )
    query = ContextQuery(CHECKOUT_PREFIX, CHECKOUT_SUFFIX, "shop/checkout.py", (sent,))

    found = assemble(shop_index, query, 400, cost(prompter))

    assert "apply_discount" not in {f.symbol for f in found.files}
    assert ("apply_discount", "duplicate") in {(f.symbol, why) for f, why in found.left_out}


def test_the_file_being_edited_is_never_its_own_context(
    shop_index: CodeIndex, prompter: Prompter
) -> None:
    query = ContextQuery(
        "from shop.cart import Cart\n\nx = Money(", ")\n", "/home/dev/shop/pricing.py"
    )

    found = assemble(shop_index, query, 400, cost(prompter))

    assert found.files and all(f.path != "shop/pricing.py" for f in found.files)


def test_without_repository_tokens_snippets_go_before_the_prompt_as_comments(
    prompter: Prompter,
) -> None:
    snippet = ContextFile("shop", "shop/pricing.py", "def apply_discount(price, rate):\n    ...")
    req = request(path="shop/checkout.py", context=[snippet])

    text = prompter.tokenizer.decode(prompter.prompt_ids(req))

    assert "# Path: shop/pricing.py\n# def apply_discount(price, rate):\n#     ...\n" in text
    assert text.index("# Path:") < text.index("from shop.cart import Cart")


def test_a_qwen_prompt_lays_out_its_context_as_repository_level_training_does() -> None:
    qwen = next(f for f in FAMILIES if f.style is QWEN_CODER)
    tokenizer = build_tokenizer(qwen, [CHECKOUT_PREFIX, "def apply_discount(price, rate):"])
    prompter = Prompter(tokenizer, 2048)
    body = "def apply_discount(price, rate):\n    ..."
    req = request(path="shop/checkout.py", context=[ContextFile("shop", "shop/pricing.py", body)])

    served = prompter.prompt_ids(req)

    files = [
        SourceFile("shop", "shop/pricing.py", body),
        SourceFile("shop", "shop/checkout.py", ""),
    ]
    assert prompter.fim is not None
    trained = encode_repo(files, prompter.encode, prompter.fim, random.Random(0), 0.0, 0.0)
    leading = len(prompter.leading)
    assert served[leading : leading + len(trained)] == trained
    assert served[leading + len(trained)] == prompter.fim.prefix_id


def test_the_function_being_written_ranks_the_definition_it_names_first(
    prompter: Prompter,
) -> None:
    util = (
        "def refund_order(order, reason):\n    return order.refund(reason)\n\n\n"
        "def archive_order(order, folder):\n    return order.archive(folder)\n"
    )
    index = CodeIndex.load(
        build_index([IndexedFile("r", "shop/util.py", "Python", util)]).to_bytes()
    )
    prefix = (
        "from shop.util import archive_order, refund_order\n\n\n"
        "def handle_archive(order):\n    return archive_order(order, folder='old')\n\n\n"
        "def handle_refund_order(order):\n    return "
    )
    req = GenerationRequest(prompt=prefix, suffix="\n", path="shop/service.py")

    found = assemble(
        index,
        ContextQuery(prefix, "\n", "shop/service.py"),
        400,
        lambda s: prompter.context_costs(s, req),
    )

    assert next(f.symbol for f in found.files if f.kind == "definition") == "refund_order"
