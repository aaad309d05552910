"""Pure view helpers: the loss plot laid out server-side, and dataset statistics."""

from __future__ import annotations

from api.console.plots import job_plots, line_plot
from api.console.team import stat_sections
from tailor.jobs.schemas import MetricPoint


def series(*values: float) -> list[MetricPoint]:
    return [MetricPoint(step=i + 1, value=v) for i, v in enumerate(values)]


def test_a_falling_loss_is_drawn_from_top_left_to_bottom_right() -> None:
    plot = line_plot({"loss": series(4.0, 3.0, 2.0, 1.0)}, ["loss"], "Loss")
    points = [tuple(map(float, p.split(","))) for p in plot.lines[0].points.split()]
    xs, ys = zip(*points, strict=True)
    assert list(xs) == sorted(xs) and list(ys) == sorted(ys)  # y grows downwards in SVG
    assert plot.left <= min(xs) and max(xs) <= plot.right
    assert plot.top <= min(ys) and max(ys) <= plot.bottom
    assert plot.lines[0].last == 1.0


def test_ticks_are_round_numbers_inside_the_axes() -> None:
    plot = line_plot({"loss": series(2.31, 2.05, 1.87)}, ["loss"], "Loss")
    labels = [t.label for t in plot.y_ticks]
    assert labels and all(len(label) <= 5 for label in labels)
    assert len(set(labels)) == len(labels)
    assert all(plot.top <= t.at <= plot.bottom for t in plot.y_ticks)


def test_no_points_and_non_finite_points_draw_nothing() -> None:
    assert line_plot({}, ["loss"], "Loss").empty
    assert line_plot({"loss": series(float("nan"))}, ["loss"], "Loss").empty


def test_a_single_point_sits_in_the_middle() -> None:
    plot = line_plot({"loss": series(3.0)}, ["loss"], "Loss")
    x, _y = map(float, plot.lines[0].points.split(","))
    assert x == (plot.left + plot.right) / 2


def test_loss_comes_first_and_constant_series_are_left_out() -> None:
    plots = job_plots(
        {
            "lr": series(1e-3, 5e-4),
            "loss": series(3.0, 2.0),
            "eval_loss": series(2.5, 2.4),
            "trainable_params": series(5.0, 5.0),
        }
    )
    assert [p.title for p in plots] == ["Loss", "lr"]
    assert [line.name for line in plots[0].lines] == ["loss", "eval_loss"]


def test_dataset_statistics_become_figures_and_tables_sorted_by_count() -> None:
    figures, tables = stat_sections(
        {
            "files_kept": 5,
            "dropped": {"binary": 1, "lock_file": 2},
            "languages": {"Python": 3},
            "notes": ["a"],
        }
    )
    assert figures == [("files kept", "5"), ("notes", '["a"]')]
    dropped = tables[0]
    assert dropped["title"] == "dropped"
    assert dropped["rows"] == [("lock_file", 2, 1.0), ("binary", 1, 0.5)]
