"""The wiring of the layers: which layer gets which config section and inputs.

Only real dependencies become edges, so independent layers deploy in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.talos import TalosCluster, TalosClusterArgs
from stacks import secrets as secret_inputs
from stacks.config import StackConfig
from stacks.secrets import SecretInputs


@dataclass(frozen=True)
class Graph:
    """What the program built; ``outputs`` become stack outputs."""

    talos: TalosCluster
    provider: k8s.Provider
    secrets: SecretInputs

    @property
    def outputs(self) -> dict[str, pulumi.Input[object]]:
        """Stack outputs. Credentials are secret."""
        return {
            "kubeconfig": self.talos.kubeconfig,
            "talosconfig": self.talos.talosconfig,
        }


def kubernetes_provider(talos: TalosCluster) -> k8s.Provider:
    """The one Kubernetes provider; its kubeconfig resolves only after the Talos health gate."""
    return k8s.Provider(
        "kubernetes",
        kubeconfig=talos.kubeconfig,
        enable_server_side_apply=True,
        # Objects Talos created (e.g. kube-system) already exist; adopt instead of failing (4.29+).
        upsert_existing_objects=True,
    )


def build(cfg: StackConfig, secrets: SecretInputs | None = None) -> Graph:
    """Register every resource of the stack.

    ``secrets`` defaults to the secret inputs set with ``pulumi config set --secret``.
    """
    secrets = secrets if secrets is not None else secret_inputs.from_config()
    talos = TalosCluster(
        cfg.cluster.name,
        TalosClusterArgs(cluster=cfg.cluster, nodes=cfg.nodes),
    )
    provider = kubernetes_provider(talos)
    return Graph(talos=talos, provider=provider, secrets=secrets)
