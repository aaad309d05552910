"""Code-index fixtures: a small team codebase, its index, and the tiny base's real tokenizer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tailor.demo.tiny import tiny_base_cached
from tailor.stages.context.index import CodeIndex, SourceFile, build_index
from tailor.stages.serve.prompting import Prompter

CACHE_ROOT = Path(os.environ.get("TAILOR_TEST_CACHE", "/tmp/tailor-test-cache"))

PRICING = '''"""Prices and discounts."""

from dataclasses import dataclass


def apply_discount(price: float, rate: float) -> float:
    """The price after a discount `rate` (0..1), rounded to cents."""
    return round(price * (1 - rate), 2)


@dataclass
class Money:
    """An amount in one currency."""

    amount: float
    currency: str = "EUR"

    def plus(self, other: "Money") -> "Money":
        """The sum of two amounts of the same currency."""
        return Money(self.amount + other.amount, self.currency)
'''
CART = '''"""The shopping cart."""

from shop.pricing import Money


class Cart:
    """Lines of a customer's order."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, Money]] = []

    def add_line(self, sku: str, price: Money) -> None:
        """Add one line to the cart."""
        self.lines.append((sku, price))
'''
TS = """// Format an amount for display, with its currency symbol.
export function formatMoney(amount: number, currency: string): string {
  return `${currency} ${amount.toFixed(2)}`;
}
"""
FILES = [
    SourceFile("shop", "shop/pricing.py", "Python", PRICING),
    SourceFile("shop", "shop/cart.py", "Python", CART),
    SourceFile("shop", "web/format.ts", "TypeScript", TS),
]
CHECKOUT_PREFIX = (
    "from shop.cart import Cart\n"
    "from shop.pricing import apply_discount\n\n\n"
    "def checkout_total(cart: Cart, rate: float) -> float:\n"
    "    subtotal = sum(price.amount for _, price in cart.lines)\n"
    "    return apply_discount("
)
CHECKOUT_SUFFIX = ")\n"


@pytest.fixture(scope="session")
def shop_index() -> CodeIndex:
    """The index of the shop repository, as the gateway loads it."""
    return CodeIndex.load(build_index(FILES).to_bytes())


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """The tiny base's tokenizer (byte-level BPE, StarCoder's FIM tokens)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_cached(CACHE_ROOT))


@pytest.fixture(scope="session")
def prompter(tokenizer: Any) -> Prompter:
    """The serving side's prompt builder over the real tokenizer."""
    return Prompter(tokenizer, 512)
