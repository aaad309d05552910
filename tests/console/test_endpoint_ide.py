"""The endpoint page's IDE settings, in chromium: every client's file with where it goes and
the steps around it, copied exactly as the API prints it."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import create_version
from tests.console.conftest import Console, Person, make_person, sign_in, snap

COPIED = "async (text) => (await navigator.clipboard.readText()) === text"


def published(console: Console) -> Person:
    """An owner whose team serves endpoint `completion` (version 1, evaluated)."""
    owner = make_person(console)
    assert owner.team is not None
    with console.sessions() as session:
        create_version(session, owner.team, "completion", 1)
    resp = httpx.post(
        f"{console.url}/v1/teams/{owner.slug}/endpoints",
        json={"name": "completion", "adapter": "completion"},
        headers={"Authorization": f"Bearer {owner.token}"},
    )
    assert resp.status_code == 201, resp.text
    return owner


def test_each_clients_settings_are_copied_as_the_api_prints_them(
    console: Console, page: Page
) -> None:
    owner = published(console)
    api = httpx.get(
        f"{console.url}/v1/teams/{owner.slug}/endpoints/completion/ide",
        headers={"Authorization": f"Bearer {owner.token}"},
    ).json()
    sign_in(page, owner.token)
    page.goto(f"/console/teams/{owner.slug}/endpoints/completion")
    for client in api["clients"].values():
        page.get_by_role("button", name=f"Copy {client['title']}").click()
        expect(page.locator("#announcer")).to_have_text("Copied to the clipboard.")
        # The copy is asynchronous: wait until the clipboard holds this client's text.
        page.wait_for_function(COPIED, arg=client["content"])
    login = page.get_by_role("list", name="Steps for llm-vscode (VS Code user settings.json)")
    expect(login).to_contain_text("'Llm: Login'")
    expect(page.locator("code", has_text="~/.tabby-client/agent/config.toml")).to_be_visible()
    snap(console, page, "35-endpoint-ide-settings")
