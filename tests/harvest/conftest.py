"""Harvest fixtures: a real git server with auth, and a team's repositories full of traps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tailor.config import Settings
from tailor.demo.gitserver import FileContent, GitServer, Symlink
from tailor.stages.harvest.addresses import NetworkPolicy
from tailor.stages.harvest.spec import RepoSource
from tailor.stages.harvest.urls import UrlPolicy
from tests.harvest.planted import secrets_module

TOKEN = "tok-9f8e7d6c5b4a3f2e1d0c"
# The test git servers speak plain HTTP on loopback: allowed here, as the demo's settings do.
LOCAL = UrlPolicy(allow_http=True, network=NetworkPolicy(allow_loopback=True))

LEDGER = '''"""Ledger of {noun}s: records, validates and totals entries."""

from dataclasses import dataclass, field


@dataclass
class {cls}Entry:
    """One {noun} entry."""

    account: str
    amount_cents: int
    memo: str = ""
    tags: list[str] = field(default_factory=list)


class {cls}Ledger:
    """Keeps the {noun} entries of every account consistent."""

    def __init__(self) -> None:
        self.rows: list[{cls}Entry] = []

    def record(self, entry: {cls}Entry) -> int:
        """Record an entry and return its position."""
        if entry.amount_cents <= 0:
            raise ValueError("{noun} amount must be positive")
        if not entry.account.startswith("acct_"):
            raise ValueError("{noun} account must start with acct_")
        self.rows.append(entry)
        return len(self.rows) - 1

    def total(self, account: str) -> int:
        """Sum of the account's entries, in cents."""
        return sum(row.amount_cents for row in self.rows if row.account == account)

    def tagged(self, tag: str) -> list[{cls}Entry]:
        """Entries carrying `tag`, oldest first."""
        return [row for row in self.rows if tag in row.tags]
'''

RETRY = '''"""Retry helpers shared by the HTTP clients."""

import random
import time


def backoff_delays(attempts, base=0.5, cap=30.0, jitter=0.1):
    """Exponential back-off delays with a little jitter, capped."""
    delays = []
    for attempt in range(attempts):
        delay = min(cap, base * 2 ** attempt)
        delay += random.uniform(0, jitter * delay)
        delays.append(delay)
    return delays


def retry(function, attempts=3, retry_on=(ConnectionError, TimeoutError), sleep=time.sleep):
    """Call function until it succeeds or attempts run out; re-raise the last error."""
    last_error = None
    for delay in backoff_delays(attempts):
        try:
            return function()
        except retry_on as error:
            last_error = error
            sleep(delay)
    raise last_error


def parse_retry_after(header_value, default=1.0):
    """Seconds to wait from a Retry-After header (seconds only; dates use the default)."""
    if header_value is None:
        return default
    try:
        seconds = float(header_value.strip())
    except ValueError:
        return default
    return max(0.0, min(seconds, 300.0))


def should_retry(status_code, method, idempotent_methods=("GET", "HEAD", "PUT", "DELETE")):
    """Whether an HTTP response is worth retrying for this method."""
    if status_code in (429, 503):
        return True
    if 500 <= status_code < 600:
        return method.upper() in idempotent_methods
    return False
'''


def near_duplicate_of_retry() -> str:
    """RETRY reformatted (wrapping, spacing, indentation), one local variable renamed."""
    text = RETRY.replace("last_error", "previous_failure")
    text = text.replace(
        "def retry(function, attempts=3, retry_on=(ConnectionError, TimeoutError), "
        "sleep=time.sleep):",
        "def retry(function,\n          attempts = 3,\n          retry_on = (ConnectionError, "
        "TimeoutError),\n          sleep = time.sleep):",
    )
    return text.replace("    ", "  ")


NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {},
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# PROSE_MARKER exploration\n"]},
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 1,
            "source": [
                "def monthly_totals(rows):\n",
                "    totals = {}\n",
                "    for month, cents in rows:\n",
                "        totals[month] = totals.get(month, 0) + cents\n",
                "    return totals\n",
            ],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["OUTPUT_MARKER\n"]}],
        },
    ],
}


def billing_files() -> dict[str, FileContent]:
    """The billing repository: good code, secrets, and one of every kind of junk."""
    return {
        "src/billing/settings.py": secrets_module(),
        "src/billing/invoice.py": LEDGER.format(noun="invoice", cls="Invoice"),
        "src/billing/retry.py": RETRY,
        "src/billing/alias.py": Symlink("invoice.py"),
        "src/billing/passwd.py": Symlink("/etc/passwd"),
        "src/billing/api_pb2.py": "# Generated by the protocol buffer compiler.  DO NOT EDIT!\n"
        + "x = 1\n" * 40,
        "src/billing/table.py": "DATA = [\n"
        + "".join(f"    {i * 7919 % 100003},\n" for i in range(400))
        + "]\n",
        "src/billing/blob.py": b"MAGIC = 1\n\x00\x01\x02\x03binary payload\n",
        "src/billing/latin.py": "NAME = 'Zoë Müller'\n".encode("latin-1") * 3,
        "src/billing/wide.py": "X = '" + "a" * 1500 + "'\n",
        "static/app.min.js": "function a(b){return b+1}" * 200,
        "vendor/left_pad.py": "def left_pad(s, n):\n    return s.rjust(n)\n",
        "node_modules/pkg/index.js": "module.exports = function () { return 42; };\n",
        "package-lock.json": json.dumps({"name": "billing", "lockfileVersion": 3}),
        "poetry.lock": "[[package]]\nname = 'requests'\n",
        "notebooks/explore.ipynb": json.dumps(NOTEBOOK),
        "notebooks/broken.ipynb": "{ this is not json",
        "config/secrets.yaml": "stripe_key: sk_live_51HaQ2mK8vLp3Xz7Yt9Wq4RsQ\n"
        "github: ghp_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8Nn\n",
        "assets/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "README.md": "# Billing\n\nInvoices and refunds for the ACME platform.\n",
    }


def payments_files() -> dict[str, FileContent]:
    """The payments repository: its own code, plus copies of billing's under other names."""
    return {
        "src/payments/refund.py": LEDGER.format(noun="refund", cls="Refund"),
        "src/payments/retry_utils.py": near_duplicate_of_retry(),
        # The same file as billing's invoice.py with other indentation: an exact duplicate.
        "src/payments/invoice_copy.py": LEDGER.format(noun="invoice", cls="Invoice").replace(
            "    ", "\t"
        ),
    }


@dataclass
class TeamRepos:
    """The team's repositories on the server, and how to name them in a harvest."""

    server: GitServer
    heads: dict[str, str]

    def source(self, name: str, *, credential: str | None = TOKEN, **kw: object) -> RepoSource:
        """A RepoSource for repository `name` with the (or another) token."""
        kind = "token" if credential else None
        return RepoSource(
            name=name,
            url=self.server.url(name),
            credential=credential,
            credential_kind=kind,
            **kw,  # type: ignore[arg-type]
        )

    def sources(self) -> list[RepoSource]:
        return [self.source("billing"), self.source("payments")]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The embedded settings, letting git reach the test servers on loopback."""
    settings.git_allow_loopback = True
    return settings


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    """A git smart-HTTP server on loopback that wants the token TOKEN."""
    with GitServer(tmp_path / "git", tokens={TOKEN}) as server:
        yield server


@pytest.fixture
def team_repos(git_server: GitServer) -> TeamRepos:
    """Two repositories of one team: billing (secrets, junk, notebook) and payments (copies)."""
    heads = {
        "billing": git_server.create_repo("billing", billing_files()),
        "payments": git_server.create_repo("payments", payments_files()),
    }
    return TeamRepos(git_server, heads)
