"""The demo team's repository: real code with a house style an adapter can learn."""

from __future__ import annotations

import random
import subprocess
import sysconfig
from pathlib import Path

# A house style the base model has never seen: typed "ledger" services with fixed idioms.
_SERVICE = '''"""Ledger service for {noun}s: records, validates and totals {noun} entries."""

from __future__ import annotations

from dataclasses import dataclass, field

from acme.ledger import Ledger, LedgerError, audit


@dataclass
class {cls}Entry:
    """One {noun} entry in the ledger."""

    account: str
    amount_cents: int
    memo: str = ""
    tags: list[str] = field(default_factory=list)


class {cls}Service:
    """Keeps the {noun} ledger consistent."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @audit("{noun}.record")
    def record(self, entry: {cls}Entry) -> int:
        """Record an entry and return its ledger id."""
        if entry.amount_cents <= 0:
            raise LedgerError("{noun} amount must be positive")
        if not entry.account.startswith("acct_"):
            raise LedgerError("{noun} account must start with acct_")
        return self.ledger.append("{noun}", entry.account, entry.amount_cents, entry.memo)

    @audit("{noun}.total")
    def total(self, account: str) -> int:
        """Sum of the account's {noun} entries, in cents."""
        return sum(row.amount_cents for row in self.ledger.rows("{noun}", account))

    @audit("{noun}.void")
    def void(self, ledger_id: int, reason: str) -> None:
        """Void an entry, keeping it in the ledger with a reason."""
        if not reason:
            raise LedgerError("{noun} void needs a reason")
        self.ledger.void("{noun}", ledger_id, reason)
'''
_NOUNS = [
    "invoice",
    "refund",
    "payout",
    "transfer",
    "charge",
    "credit",
    "deposit",
    "fee",
    "grant",
    "rebate",
    "royalty",
    "stipend",
    "subsidy",
    "tariff",
    "tip",
    "toll",
    "wage",
    "bonus",
    "commission",
    "dividend",
    "levy",
    "premium",
    "rental",
    "tuition",
]


def write_demo_repo(path: Path, stdlib_files: int = 25, seed: int = 0) -> Path:
    """Create a git repository with house-style services and some stdlib modules."""
    src = path / "src" / "acme"
    src.mkdir(parents=True, exist_ok=True)
    for noun in _NOUNS:
        (src / f"{noun}_service.py").write_text(_SERVICE.format(noun=noun, cls=noun.capitalize()))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    candidates = sorted(p for p in (stdlib / "json").glob("*.py")) + sorted(
        p for p in stdlib.glob("*.py") if 2_000 < p.stat().st_size < 30_000
    )
    for module in random.Random(seed).sample(candidates, min(stdlib_files, len(candidates))):
        (path / "vendor_examples").mkdir(exist_ok=True)
        (path / "vendor_examples" / module.name).write_text(module.read_text())
    (path / "README.md").write_text("# acme ledger\n\nServices for the ledger.\n")
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(
        path,
        "-c",
        "user.name=Demo",
        "-c",
        "user.email=demo@acme.example",
        "commit",
        "-qm",
        "ledger services",
    )
    return path


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True)
