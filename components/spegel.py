"""Spegel: nodes serve each other the image layers they already have (peer-to-peer mirror).

Two Talos facts (Talos docs "Containerd" and "Spegel"; spegel.dev compatibility guide):
- Talos's containerd throws unpacked layers away; Spegel can only serve layers
  that are kept. Talos merges ``/etc/cri/conf.d/20-customization.part`` into the
  CRI config; containerd 2.x (Talos 1.13) reads the setting from the
  ``io.containerd.cri.v1.images`` plugin. If your own patches write that file
  too, put this setting there and leave the layer's patch out.
- Talos keeps containerd's registry host configs under ``/etc/cri/conf.d/hosts``
  (not ``/etc/containerd/certs.d``); Spegel writes its mirror entries there.

The DaemonSet mounts host paths and the containerd socket, which the baseline
pod-security level forbids, so its namespace is labelled privileged. It needs
pod networking (its chart waits for Cilium) and resolves its peers through
cluster DNS at run time, which CoreDNS provides in parallel: the pods turn ready
once both run, well within the chart's await.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as k8s_helpers
from stacks.config.base import Patch
from stacks.config.network import SpegelConfig

CRI_CUSTOMIZATION_PATH = "/etc/cri/conf.d/20-customization.part"
CRI_KEEP_LAYERS = '[plugins."io.containerd.cri.v1.images"]\n  discard_unpacked_layers = false\n'
TALOS_REGISTRY_CONFIG_PATH = "/etc/cri/conf.d/hosts"


def talos_patches(config: SpegelConfig | None) -> list[Patch]:
    """Talos patches this layer contributes: keep unpacked layers so peers can pull them."""
    if config is None or not config.enabled:
        return []
    return [{"machine": {"files": [{"path": CRI_CUSTOMIZATION_PATH, "op": "create", "content": CRI_KEEP_LAYERS}]}}]


def chart_values(config: SpegelConfig) -> dict[str, Any]:
    """Chart values from the typed config, with the section's ``values`` merged over them."""
    spegel: dict[str, Any] = {"containerdRegistryConfigPath": TALOS_REGISTRY_CONFIG_PATH}
    if config.mirrored_registries:
        spegel["mirroredRegistries"] = list(config.mirrored_registries)
    return k8s_helpers.deep_merge({"spegel": spegel}, config.values)


@dataclass(frozen=True)
class SpegelArgs:
    """Inputs of :class:`Spegel`: its config section."""

    config: SpegelConfig


class Spegel(pulumi.ComponentResource):
    """Spegel from its OCI chart in a privileged namespace.

    ``opts.provider`` goes to every child; ``opts.depends_on`` (Cilium) goes to the
    chart only: creating the namespace needs nothing but the API server.
    """

    namespace: k8s.core.v1.Namespace | None
    chart: k8s.helm.v4.Chart

    def __init__(self, name: str, args: SpegelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:Spegel", name, None, opts)
        config = args.config
        provider = opts.provider if opts else None
        depends_on = opts.depends_on if opts else None

        self.namespace = k8s_helpers.layer_namespace(
            f"{name}-namespace", config.namespace, "privileged", pulumi.ResourceOptions(parent=self, provider=provider)
        )
        self.chart = k8s_helpers.chart(
            f"{name}-chart",
            config.chart,
            config.namespace,
            chart_values(config),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=depends_on),
            namespace=self.namespace,
        )
        self.register_outputs({})
