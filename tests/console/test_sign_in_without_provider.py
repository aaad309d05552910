"""Without an identity provider configured, the console signs in with tokens as before."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.console.conftest import Console


def test_no_single_sign_on_button_and_its_routes_answer_404(console: Console, page: Page) -> None:
    page.goto("/console/sign-in")
    assert page.get_by_label("API token").is_visible()
    assert page.get_by_role("link", name="Sign in with").count() == 0
    response = page.goto("/console/sign-in/sso")
    assert response is not None and response.status == 404
