"""Nodes x GPUs per node for a GPU request: the rule the API and the operator share."""

from __future__ import annotations

import pytest

from tailor.stages.train.sizing import Layout, SizingError, check_layout, plan_layout


@pytest.mark.parametrize(
    ("gpus", "layout"),
    [
        (0, Layout(1, 0)),
        (1, Layout(1, 1)),
        (8, Layout(1, 8)),
        (16, Layout(2, 8)),
        (64, Layout(8, 8)),
    ],
)
def test_requests_fill_one_node_or_whole_nodes(gpus: int, layout: Layout) -> None:
    assert plan_layout(gpus, 8, "a100", max_nodes=64) == layout


def test_a_request_between_whole_nodes_is_refused_with_what_would_fit() -> None:
    with pytest.raises(SizingError, match=r"ask for at most 8 \(one node\) or a multiple of 8"):
        plan_layout(12, 8, "a100", max_nodes=64)


def test_a_request_beyond_the_node_limit_is_refused() -> None:
    with pytest.raises(SizingError, match=r"need 4 a100 nodes .* at most 2 nodes"):
        plan_layout(32, 8, "a100", max_nodes=2)


def test_an_explicit_layout_larger_than_a_node_is_refused() -> None:
    with pytest.raises(SizingError, match="gpusPerNode 16 exceeds the 8 GPUs of a a100 node"):
        check_layout(1, 16, 8, "a100")
