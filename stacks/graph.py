"""The wiring of the layers: which layer gets which config section and inputs.

Only real dependencies become edges, so independent layers deploy in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.talos import TalosCluster, TalosClusterArgs
from stacks.config import StackConfig


@dataclass(frozen=True)
class Graph:
    """What the program built; ``outputs`` become stack outputs."""

    talos: TalosCluster

    @property
    def outputs(self) -> dict[str, pulumi.Input[object]]:
        """Stack outputs. Credentials are secret."""
        return {
            "kubeconfig": self.talos.kubeconfig,
            "talosconfig": self.talos.talosconfig,
        }


def build(cfg: StackConfig) -> Graph:
    """Register every resource of the stack."""
    talos = TalosCluster(
        cfg.cluster.name,
        TalosClusterArgs(cluster=cfg.cluster, nodes=cfg.nodes),
    )
    return Graph(talos=talos)
