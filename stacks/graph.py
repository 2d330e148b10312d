"""The wiring of the layers: which layer gets which config section and inputs.

Only real dependencies become edges, so independent layers deploy in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard, TypeVar

import pulumi
import pulumi_kubernetes as k8s

from components import coredns as coredns_layer
from components import spegel as spegel_layer
from components import talos_day2
from components.cert_manager import CertManager, CertManagerArgs
from components.cilium import Cilium, CiliumArgs
from components.coredns import CoreDNS, CoreDNSArgs
from components.flux import Flux, FluxArgs
from components.rook import Rook, RookArgs
from components.spegel import Spegel, SpegelArgs
from components.talos import TalosCluster, TalosClusterArgs
from components.talos_day2 import ClusterHealth, ClusterHealthArgs
from stacks import secrets as secret_inputs
from stacks.config import StackConfig
from stacks.config.base import LayerConfig
from stacks.config.flux import credential_problems
from stacks.config.network import cluster_dns_ip
from stacks.config.platform import token_problems
from stacks.loader import ConfigError
from stacks.secrets import SecretInputs

if TYPE_CHECKING:
    from components.dns import CloudflareDns
    from components.onepassword import OnePassword


@dataclass(frozen=True)
class Graph:
    """What the program built; ``outputs`` become stack outputs."""

    talos: TalosCluster
    provider: k8s.Provider
    secrets: SecretInputs
    cilium: Cilium | None = None
    """The CNI; layers that need pod networking depend on ``cilium.ready``."""
    coredns: CoreDNS | None = None
    spegel: Spegel | None = None
    flux: Flux | None = None
    """flux-operator, the FluxInstance and the bootstrap Secrets (``homelab:flux``)."""
    onepassword: OnePassword | None = None
    """Secret inputs read from 1Password and backups of the cluster's secrets (``homelab:onepassword``)."""
    dns: CloudflareDns | None = None
    """Cloudflare records (``homelab:dns``)."""
    cert_manager: CertManager | None = None
    """cert-manager and the Let's Encrypt ClusterIssuers (``homelab:certManager``)."""
    rook: Rook | None = None
    """Rook-Ceph: operator, CephCluster, pool, default StorageClass (``homelab:rook``)."""
    health: ClusterHealth | None = None
    """``talosctl health`` after the CNI, when the applies or the inventory change."""

    @property
    def outputs(self) -> dict[str, pulumi.Input[object]]:
        """Stack outputs. Credentials are secret."""
        return {
            "kubeconfig": self.talos.kubeconfig,
            "talosconfig": self.talos.talosconfig,
            # How Talos applied each node's config: "staged" means a reboot step ran (or will).
            "resolvedApplyModes": self.talos.resolved_apply_modes,
        }


def kubernetes_provider(talos: TalosCluster, cluster_name: str) -> k8s.Provider:
    """The one Kubernetes provider; its kubeconfig resolves only once the API server answers.

    ``cluster_identifier``: without it, pulumi-kubernetes replaces the provider, and
    so plans to replace every object it manages, whenever the kubeconfig is unknown
    at preview (a node added, the client certificate renewed ~30 days before it
    expires); a protected CephCluster then fails the preview (pulumi/pulumi#15969).
    With it, the provider is replaced only when the cluster name changes.

    No ``upsert_existing_objects``: nothing here needs adopting, and with it a rename
    without aliases deletes the object it had adopted.
    """
    return k8s.Provider(
        "kubernetes",
        kubeconfig=talos.kubeconfig,
        cluster_identifier=cluster_name,
        enable_server_side_apply=True,
    )


def health_check(cfg: StackConfig, talos: TalosCluster, cni: list[pulumi.Resource]) -> ClusterHealth | None:
    """``talosctl health`` over the members once the CNI runs (nodes are NotReady before); None without Cilium.

    It follows the applies and bootstrap: it runs again when a node's config or the
    inventory changes, never on a preview (DESIGN.md: no invoke may check health).
    """
    if not cni:
        return None
    return ClusterHealth(
        "cluster-health",
        ClusterHealthArgs(
            talosconfig=talos.step_talosconfig,
            control_planes=[str(n.address) for n in cfg.control_planes],
            day2=cfg.day2,
            follows=[talos.bootstrap.id, *(a.machine_configuration_hash for a in talos.applies.values())],
            # After the staged reboots too: the check runs through the first control plane,
            # the first node a rolling reboot takes down.
            depends_on=[*cni, *talos.reboots.values()],
        ),
    )


def onepassword_layer(cfg: StackConfig, talos: TalosCluster) -> OnePassword | None:
    """The 1Password layer when ``homelab:onepassword`` is set; its SDK is imported only then."""
    if cfg.onepassword is None:
        return None
    from components.onepassword import OnePassword, OnePasswordArgs  # noqa: PLC0415 - SDK only when used

    return OnePassword(
        "onepassword",
        OnePasswordArgs(
            config=cfg.onepassword,
            cluster_name=cfg.cluster.name,
            machine_secrets=talos.machine_secrets,
            talosconfig=talos.talosconfig,
            kubeconfig=talos.kubeconfig,
        ),
    )


def dns_layer(cfg: StackConfig) -> CloudflareDns | None:
    """The Cloudflare layer when ``homelab:dns`` is set (without importing ``pulumi_cloudflare``: see its module)."""
    if cfg.dns is None:
        return None
    from components.dns import CloudflareDns, CloudflareDnsArgs  # noqa: PLC0415 - SDK only when used

    return CloudflareDns("cloudflare", CloudflareDnsArgs(config=cfg.dns))


def _given(cfg: StackConfig, secrets: SecretInputs, field_name: str) -> bool:
    """Whether a secret input will be there: set in config, or listed as a 1Password item."""
    listed = cfg.onepassword.items.listed() if cfg.onepassword is not None else {}
    return getattr(secrets, field_name) is not None or field_name in listed


_Layer = TypeVar("_Layer", bound=LayerConfig)


def _on(section: _Layer | None) -> TypeGuard[_Layer]:
    """Whether an optional layer is configured and enabled (an absent section is off)."""
    return section is not None and section.enabled


def build(cfg: StackConfig, secrets: SecretInputs | None = None) -> Graph:
    """Register every resource of the stack.

    ``secrets`` defaults to the secret inputs set with ``pulumi config set --secret``;
    those listed in ``homelab:onepassword.items`` are read from 1Password instead
    (an input set both ways is a config error, so neither silently wins).
    """
    secrets = secrets if secrets is not None else secret_inputs.from_config()
    # Config that depends on which secret inputs exist is checked before anything is registered.
    problems = [
        *credential_problems(cfg.flux, _given(cfg, secrets, "git_credentials")),
        *token_problems(cfg.cert_manager, _given(cfg, secrets, "cloudflare_api_token")),
    ]
    if problems:
        raise ConfigError(problems)
    # Layers that change the machine config contribute Talos patches (empty when off).
    layer_patches = [
        *coredns_layer.talos_patches(cfg.coredns),
        *spegel_layer.talos_patches(cfg.spegel),
        *talos_day2.talos_patches(cfg.day2),
    ]
    talos = TalosCluster(
        cfg.cluster.name,
        TalosClusterArgs(
            cluster=cfg.cluster,
            nodes=cfg.nodes,
            layer_patches=layer_patches,
            day2=cfg.day2,
            rook_namespace=cfg.rook.namespace if _on(cfg.rook) else None,
        ),
    )
    provider = kubernetes_provider(talos, cfg.cluster.name)
    onepassword = onepassword_layer(cfg, talos)
    if onepassword is not None:
        secrets = secret_inputs.combine(secrets, onepassword.secrets)
    dns = dns_layer(cfg)  # independent of the cluster: deploys in parallel with it
    k8s_opts = pulumi.ResourceOptions(provider=provider)
    # Cilium first: nodes stay NotReady until a CNI runs, and Talos reboots them after ~10 min.
    cilium = (
        Cilium(
            "cilium",
            CiliumArgs(config=cfg.cilium, pod_subnet=cfg.cluster.pod_subnet, node_count=len(cfg.nodes)),
            opts=k8s_opts,
        )
        if _on(cfg.cilium)
        else None
    )
    # Layers with pods wait for the CNI, not for each other.
    cni: list[pulumi.Resource] = list(cilium.ready) if cilium is not None else []
    after_cni = pulumi.ResourceOptions(provider=provider, depends_on=cni)
    health = health_check(cfg, talos, cni)
    coredns = (
        CoreDNS(
            "coredns",
            CoreDNSArgs(config=cfg.coredns, dns_ip=cluster_dns_ip(cfg.cluster.service_subnet)),
            opts=after_cni,
        )
        if _on(cfg.coredns)
        else None
    )
    spegel = Spegel("spegel", SpegelArgs(config=cfg.spegel), opts=after_cni) if _on(cfg.spegel) else None
    # Flux waits for pod networking and cluster DNS only (it pulls from Git by host
    # name), not for storage or certificates: apps that need those wait inside Flux.
    flux = (
        Flux(
            "flux",
            FluxArgs(
                config=cfg.flux,
                git_credentials=secrets.git_credentials,
                sops_age_key=secrets.sops_age_key,
                onepassword_connect_credentials=secrets.onepassword_connect_credentials,
                onepassword_connect_token=secrets.onepassword_connect_token,
                depends_on=[*cni, *([coredns] if coredns is not None else [])],
            ),
            opts=k8s_opts,
        )
        if _on(cfg.flux)
        else None
    )
    # cert-manager and Rook wait for the CNI only: not for each other, DNS, Spegel or Flux.
    cert_manager = (
        CertManager(
            "cert-manager",
            CertManagerArgs(config=cfg.cert_manager, cloudflare_api_token=secrets.cloudflare_api_token, depends_on=cni),
            opts=k8s_opts,
        )
        if _on(cfg.cert_manager)
        else None
    )
    rook = (
        Rook("rook", RookArgs(config=cfg.rook, nodes=cfg.nodes, depends_on=cni), opts=k8s_opts)
        if _on(cfg.rook)
        else None
    )
    return Graph(
        health=health,
        cert_manager=cert_manager,
        rook=rook,
        flux=flux,
        talos=talos,
        provider=provider,
        secrets=secrets,
        cilium=cilium,
        coredns=coredns,
        spegel=spegel,
        onepassword=onepassword,
        dns=dns,
    )
