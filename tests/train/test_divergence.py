"""A run whose loss becomes NaN or blows up ends with a reason a person can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.config import get_settings
from tailor.stages.train.entrypoint import EXIT_SPEC_ERROR, run_command
from tailor.stages.train.errors import DivergedError
from tailor.stages.train.loop import check_loss
from tailor.stages.train.protocol import parse
from tailor.storage import FileStore
from tests.train.conftest import TEAM, make_spec


def test_a_nan_loss_names_the_step_and_what_to_change() -> None:
    with pytest.raises(DivergedError) as caught:
        check_loss(float("nan"), 4, 6.2, 0.5)
    assert str(caught.value) == (
        "loss became NaN at step 4; lower the learning rate (it was 0.5 at that step)"
    )


def test_an_infinite_loss_is_refused_on_the_first_step() -> None:
    with pytest.raises(DivergedError, match="loss became infinite at step 1"):
        check_loss(float("inf"), 1, None, 1e-3)


def test_a_loss_that_blew_up_to_several_times_its_first_value_is_refused() -> None:
    with pytest.raises(DivergedError, match=r"diverged to 19\.5 at step 7.*first value 6\.2"):
        check_loss(19.5, 7, 6.2, 1e-2)


def test_a_noisy_but_sane_loss_goes_on() -> None:
    for loss in (6.2, 7.5, 12.0, 0.01):
        check_loss(loss, 3, 6.2, 1e-3)


@pytest.mark.slow
def test_a_diverging_learning_rate_ends_the_run_with_exit_status_3_and_no_adapter(
    tiny_base: Path,
    dataset: FileStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TAILOR_OBJECT_STORE_URL", dataset.url)
    monkeypatch.setenv("TAILOR_WORKSPACE", str(tmp_path / "ws"))
    get_settings.cache_clear()
    path = tmp_path / "spec.json"
    spec = make_spec(tiny_base, learning_rate=1.0, max_steps=30, max_grad_norm=1000.0)
    path.write_text(spec.model_dump_json())

    code = run_command(path, "job-diverges")

    get_settings.cache_clear()
    events = [e for e in map(parse, capsys.readouterr().out.splitlines()) if e]
    assert code == EXIT_SPEC_ERROR
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "DivergedError"
    assert "lower the learning rate (it was 1 at that step)" in events[-1]["message"]
    step = int(events[-1]["message"].split(" at step ")[1].split(",")[0].split(";")[0])
    recorded = [e["step"] for e in events if e["event"] == "metrics"]
    assert recorded == list(range(1, step))  # the diverged step itself is never recorded
    assert not dataset.list(f"teams/{TEAM}/adapters/")
