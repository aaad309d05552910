"""The side-by-side comparison table the CLI prints (rich)."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text

from tailor.stages.evaluate.spec import Comparison, EvalReport

_PERCENT = ("fim.", "humaneval.")  # metrics in [0, 1], shown as percentages


def _is_percent(metric: str) -> bool:
    return metric.startswith(_PERCENT)


def _value(metric: str, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{100 * value:.1f}%" if _is_percent(metric) else f"{value:.3f}"


def _delta(row: Comparison) -> str:
    if row.delta is None or math.isnan(row.delta):
        return "-"
    scale, unit = (100.0, " pt") if _is_percent(row.metric) else (1.0, "")
    text = f"{scale * row.delta:+.1f}{unit}" if unit else f"{row.delta:+.3f}"
    better = row.delta > 0 if row.higher_is_better else row.delta < 0
    colour = "green" if better else "red" if row.delta != 0 else "white"
    return f"[{colour}]{text}[/{colour}]"


def _ci(row: Comparison) -> str:
    if row.ci_low is None or row.ci_high is None:
        return ""
    scale = 100.0 if _is_percent(row.metric) else 1.0
    return f"[{scale * row.ci_low:+.1f}, {scale * row.ci_high:+.1f}]"


def render_comparison(report: EvalReport) -> Table:
    """Base vs adapter per metric: values, delta (green when better) and the delta's 95% CI."""
    adapter = report.spec.adapter or "-"
    table = Table(title=f"Evaluation of {adapter} vs {report.spec.base_model}")
    for name, justify in (
        ("metric", "left"),
        ("base", "right"),
        ("adapter", "right"),
        ("delta", "right"),
        ("95% CI of delta", "right"),
        ("n", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in report.comparison or _base_only(report):
        table.add_row(
            Text(row.metric),  # plain text: `[line]` in a name is not rich markup
            _value(row.metric, row.base),
            _value(row.metric, row.adapter),
            _delta(row),
            _ci(row),
            str(row.n) if row.n else "",
        )
    return table


def render_examples(report: EvalReport, count: int = 3) -> Table:
    """Held-out snippets the models completed: the code that was cut out, then what the base
    and the adapter wrote in its place, side by side (whitespace kept, as an editor shows)."""
    table = Table(title="Held-out code completed by each model (same cut, greedy)", show_lines=True)
    for name in ("file (cut)", "held-out code", "base", "adapter"):
        table.add_column(name, overflow="fold")
    for ex in report.examples[:count]:
        table.add_row(
            Text(f"{ex.path} ({ex.kind})"),
            Text(ex.middle),
            Text(ex.base),
            Text(ex.adapter if ex.adapter is not None else "-"),
        )
    return table


def _base_only(report: EvalReport) -> list[Comparison]:
    """Rows for a base-only evaluation: the adapter columns stay empty."""
    scores = report.base
    rows = [
        Comparison(metric=f"fim.{name}", base=est.value, adapter=None, delta=None, n=est.n)
        for name, est in scores.fim.items()
    ]
    rows += [
        Comparison(metric=f"humaneval.{name}", base=est.value, adapter=None, delta=None, n=est.n)
        for name, est in scores.humaneval.items()
    ]
    if scores.eval_loss is not None:
        rows.append(
            Comparison(
                metric="eval_loss",
                base=scores.eval_loss,
                adapter=None,
                delta=None,
                higher_is_better=False,
            )
        )
    return rows
