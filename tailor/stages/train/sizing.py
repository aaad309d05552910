"""How many nodes a fine-tune of N GPUs takes: the one rule the API and the operator share.

A node holds at most the type's `gpus_per_node` GPUs. A request that fits one node runs
there; a larger one must fill whole nodes, so every node runs the same number of torchrun
processes and no node is shared by two ranks' worth of half-used NVLink domains. Anything
else is refused with the reason and what would fit.
"""

from __future__ import annotations

from dataclasses import dataclass


class SizingError(ValueError):
    """A GPU request the GPU type cannot hold; the message says why and what would fit."""


@dataclass(frozen=True)
class Layout:
    """Nodes x GPUs per node of one fine-tune (0 GPUs: one CPU-only pod)."""

    nodes: int
    gpus_per_node: int

    @property
    def gpus(self) -> int:
        """GPUs over all nodes."""
        return self.nodes * self.gpus_per_node

    @property
    def processes(self) -> int:
        """torchrun processes over all nodes (one per GPU; one on a CPU-only pod)."""
        return self.nodes * max(self.gpus_per_node, 1)


def plan_layout(gpus: int, gpus_per_node: int, gpu_type: str, max_nodes: int) -> Layout:
    """Nodes x GPUs per node for `gpus` GPUs on nodes of `gpus_per_node` GPUs.

    Raises SizingError for a request no layout of whole nodes holds, or one needing more
    nodes than `max_nodes`.
    """
    if gpus < 0:
        raise SizingError(f"{gpus} GPUs: ask for 0 or more")
    if gpus <= gpus_per_node:
        return Layout(1, gpus)
    if gpus % gpus_per_node:
        raise SizingError(
            f"{gpus} GPUs do not fill whole {gpu_type} nodes of {gpus_per_node} GPUs: ask for "
            f"at most {gpus_per_node} (one node) or a multiple of {gpus_per_node}"
        )
    nodes = gpus // gpus_per_node
    if nodes > max_nodes:
        raise SizingError(
            f"{gpus} GPUs need {nodes} {gpu_type} nodes of {gpus_per_node} GPUs; "
            f"at most {max_nodes} nodes ({max_nodes * gpus_per_node} GPUs) may be used"
        )
    return Layout(nodes, gpus_per_node)


def check_layout(nodes: int, gpus_per_node: int, node_gpus: int, gpu_type: str) -> Layout:
    """An explicit nodes x GPUs-per-node request, refused when a node cannot hold it."""
    if gpus_per_node > node_gpus:
        raise SizingError(
            f"gpusPerNode {gpus_per_node} exceeds the {node_gpus} GPUs of a {gpu_type} node: "
            f"ask for gpus={nodes * gpus_per_node} and let the platform choose the nodes"
        )
    return Layout(nodes, gpus_per_node)
