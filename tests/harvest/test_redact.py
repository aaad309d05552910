"""Redaction: every planted kind of secret and PII is replaced, ordinary code is left alone."""

from __future__ import annotations

from tailor.harvest.redact import redact
from tests.harvest.planted import SECRETS, secrets_module


def test_every_planted_secret_is_replaced_and_counted_by_kind() -> None:
    result = redact(secrets_module(), path="pay/settings.py", language="Python")
    assert [kind for kind, value in SECRETS.items() if value in result.text] == []
    assert len(result.counts) >= 20
    assert result.counts["github_token"] == 1 and result.counts["email"] == 1
    assert 'AWS_ACCESS_KEY_ID = "<API_KEY>"' in result.text
    assert "postgresql://payments:<PASSWORD>@db.internal:5432/payments" in result.text
    assert 'DEPLOY_KEY = """<PRIVATE_KEY>"""' in result.text


def test_config_files_have_bare_values_redacted() -> None:
    text = "database:\n  password: hunter2hunter2\n  host: db.internal\n"
    result = redact(text, path="deploy/values.yaml", language="YAML")
    assert "hunter2hunter2" not in result.text and "db.internal" in result.text


def test_ordinary_code_is_left_as_it_is() -> None:
    code = (
        "import os\n\n"
        "def lookup(table: dict[str, int], key: str) -> int:\n"
        '    """Value of key, or -1."""\n'
        "    token = key.strip()\n"
        '    password_field = "password"\n'
        '    url = "https://example.com/api/v1/items"\n'
        '    version = "1.2.3.4"\n'
        "    return table.get(token, -1)\n"
    )
    result = redact(code, path="a.py", language="Python")
    assert result.text == code and not result.counts


def test_loopback_and_documentation_addresses_are_not_pii() -> None:
    text = 'HOST = "127.0.0.1"\nCONTACT = "someone@example.com"\n'
    assert redact(text, path="a.py", language="Python").text == text
