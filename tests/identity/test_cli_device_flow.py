"""`tailor login --sso`: the device authorization grant against the provider, refresh, logout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import select

from tailor.db.base import utcnow
from tailor.db.models import ApiToken, Role
from tailor.security import hash_token
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.identity.conftest import SsoApp, make_team, map_group

TAILOR = [sys.executable, "-m", "tailor.cli.main"]
CONFIRM = re.compile(r"Open (\S+) and confirm the code (\S+)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless: the person confirming the code."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _confirm_in_browser(browser: Browser, url: str, login: str) -> None:
    ctx = browser.new_context()
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    page.goto(url)
    page.get_by_role("button", name="Continue").click()  # "is this the code the CLI shows?"
    page.get_by_placeholder("Enter any login").fill(login)
    page.get_by_placeholder("and password").fill("secret")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # consent
    page.get_by_text("Sign-in Success").wait_for()
    ctx.close()


def test_the_cli_signs_in_with_a_device_code_refreshes_itself_and_signs_out(
    sso: SsoApp, browser: Browser, tmp_path: Path
) -> None:
    team = make_team(sso, "device-team")
    map_group(sso, "device-group", team, Role.member)
    sso.idp.person("mo", "mo@example.com", ["device-group"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILOR_")}
    env |= {"XDG_CONFIG_HOME": str(tmp_path), "TAILOR_URL": sso.url}

    login = subprocess.Popen(
        [*TAILOR, "login", "--sso"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert login.stdout is not None
    try:
        first = login.stdout.readline()
        shown = CONFIRM.search(first)
        assert shown is not None, f"tailor login --sso showed no code: {first!r}"
        _confirm_in_browser(browser, shown.group(1), "mo")
        out, err = login.communicate(timeout=120)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, err
    assert "signed in as mo@example.com" in out

    saved = json.loads((tmp_path / "tailor" / "config.json").read_text())
    assert saved["token"].startswith("tlr_") and saved["refresh_token"]

    def tailor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*TAILOR, *args], env=env, capture_output=True, text=True, timeout=120
        )

    listed = tailor("team", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [t["slug"] for t in json.loads(listed.stdout)] == ["device-team"]

    # The access token runs out: the next command refreshes the session by itself.
    with sso.sessions() as session:
        row = session.scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_token(saved["token"]))
        ).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert tailor("team", "list").returncode == 0
    renewed = json.loads((tmp_path / "tailor" / "config.json").read_text())
    assert renewed["token"] != saved["token"] and renewed["refresh_token"] != saved["refresh_token"]
    with httpx.Client(base_url=sso.url) as http:
        # The replaced refresh token works no more.
        assert (
            http.post(
                "/v1/auth/refresh", json={"refresh_token": saved["refresh_token"]}
            ).status_code
            == 401
        )

        assert tailor("logout").returncode == 0
        assert (
            http.post(
                "/v1/auth/refresh", json={"refresh_token": renewed["refresh_token"]}
            ).status_code
            == 401
        )
        gone = http.get("/v1/teams", headers={"Authorization": f"Bearer {renewed['token']}"})
        assert gone.status_code == 401
    assert not (tmp_path / "tailor" / "config.json").exists()
