"""Settings need no configuration on a fresh machine."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tailor.config import Settings


def test_embedded_defaults_live_in_the_workspace(tmp_path: Path) -> None:
    s = Settings(workspace=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'tailor.db'}"
    assert s.broker_url.startswith("sqla+sqlite:///") and s.object_store_url.startswith("file://")


def test_the_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    s = Settings(workspace=tmp_path)
    first, second = s.encryption_key(), Settings(workspace=tmp_path).encryption_key()
    assert first == second and len(first) >= 32
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_environment_variables_override_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAILOR_DATABASE_URL", "postgresql+psycopg://db/tailor")
    monkeypatch.setenv("TAILOR_OBJECT_STORE_URL", "s3://bucket/prefix")
    s = Settings(workspace=tmp_path)
    assert (s.database_url, s.object_store_url) == (
        "postgresql+psycopg://db/tailor",
        "s3://bucket/prefix",
    )


def test_a_time_limit_for_one_kind_keeps_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_TIME_LIMITS_S", '{"harvest": 600}')
    s = Settings()
    assert (s.time_limit_s("harvest"), s.time_limit_s("finetune")) == (600, 72 * 3600)


def test_a_time_limit_for_an_unknown_job_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="harvset"):
        Settings(time_limits_s={"harvset": 600})


def test_single_sign_on_is_off_unless_an_issuer_is_set(tmp_path: Path) -> None:
    assert Settings(workspace=tmp_path).oidc_issuer == ""


@pytest.mark.parametrize(
    ("issuer", "client_id", "message"),
    [
        ("http://idp.example.com", "tailor", "must use https"),
        ("https://idp.example.com?tenant=a", "tailor", "not an issuer URL"),
        ("https://idp.example.com", "", "TAILOR_OIDC_CLIENT_ID"),
    ],
)
def test_an_unusable_identity_provider_setting_is_refused_by_name(
    tmp_path: Path, issuer: str, client_id: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(workspace=tmp_path, oidc_issuer=issuer, oidc_client_id=client_id)


def test_a_provider_on_this_machine_may_use_plain_http(tmp_path: Path) -> None:
    s = Settings(workspace=tmp_path, oidc_issuer="http://127.0.0.1:9000", oidc_client_id="t")
    assert s.oidc_issuer == "http://127.0.0.1:9000"
