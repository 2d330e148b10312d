"""Config sections of the network layers: ``homelab:cilium``, ``homelab:coredns``, ``homelab:spegel``.

Each section is a :class:`~stacks.config.LayerConfig` (enabled, pinned chart,
namespace, extra values) plus the typed settings the layer turns into chart
values. Rules that need other sections (the LoadBalancer pool against the node
network, replicas against the node count) live in ``cross_check``, which
:class:`~stacks.config.StackConfig` calls with the cluster and node sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from pydantic import Field, model_validator

from stacks.config.base import LayerConfig, Model, NonEmpty
from stacks.config.cluster import ClusterConfig, NodeConfig

KUBE_SYSTEM = "kube-system"
"""Exists on every cluster; Talos exempts it from pod-security enforcement."""

# Talos sets the kubelet's clusterDNS to the 10th address of the (first) service
# subnet (siderolabs/talos, kubelet config: NthIPInNetwork(serviceCIDR, 10)); the
# CoreDNS Service must take exactly that address.
DNS_SERVICE_INDEX = 10


def cluster_dns_ip(service_subnet: IPv4Network) -> IPv4Address:
    """The address kubelets send DNS queries to: the 10th of the service subnet."""
    return service_subnet.network_address + DNS_SERVICE_INDEX


class LoadBalancerBlock(Model):
    """One block of LoadBalancer addresses: a CIDR, or a ``start``-``stop`` range (both inclusive)."""

    cidr: IPv4Network | None = Field(None, description="A CIDR inside the node network, e.g. 10.0.10.64/27.")
    start: IPv4Address | None = Field(None, description="First address of a range (with stop).")
    stop: IPv4Address | None = Field(None, description="Last address of a range (with start).")

    @model_validator(mode="after")
    def _shape(self) -> LoadBalancerBlock:
        if self.cidr is not None and (self.start is not None or self.stop is not None):
            raise ValueError("give either cidr or start and stop, not both")
        if self.cidr is None and (self.start is None or self.stop is None):
            raise ValueError("give either cidr or both start and stop")
        if self.start is not None and self.stop is not None and self.stop < self.start:
            raise ValueError(f"stop {self.stop} comes before start {self.start}")
        return self

    @property
    def first(self) -> IPv4Address:
        """Lowest address of the block."""
        return self.cidr.network_address if self.cidr is not None else self.start  # type: ignore[return-value]

    @property
    def last(self) -> IPv4Address:
        """Highest address of the block."""
        return self.cidr.broadcast_address if self.cidr is not None else self.stop  # type: ignore[return-value]

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and self.first <= address <= self.last

    def overlaps(self, other: LoadBalancerBlock) -> bool:
        """Whether the two blocks share an address."""
        return self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        return str(self.cidr) if self.cidr is not None else f"{self.start}-{self.stop}"

    def spec(self) -> dict[str, str]:
        """The block as ``CiliumLoadBalancerIPPool.spec.blocks[]`` takes it."""
        if self.cidr is not None:
            return {"cidr": str(self.cidr)}
        return {"start": str(self.start), "stop": str(self.stop)}


class LoadBalancerConfig(Model):
    """Addresses Cilium's LB IPAM hands to Services of type LoadBalancer (a ``CiliumLoadBalancerIPPool``)."""

    blocks: tuple[LoadBalancerBlock, ...] = Field(
        description="Address blocks on the node network, away from nodes, VIP, gateway and DHCP (at least one)."
    )

    @model_validator(mode="after")
    def _disjoint(self) -> LoadBalancerConfig:
        # Checked here rather than with min_length: pydantic adds a misleading
        # "at least 1 item" error to every invalid block otherwise.
        if not self.blocks:
            raise ValueError("blocks: give at least one block")
        problems = [
            f"blocks[{j}]: {b} overlaps blocks[{i}] ({a})"
            for i, a in enumerate(self.blocks)
            for j, b in enumerate(self.blocks)
            if i < j and a.overlaps(b)
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return self


class L2AnnouncementsConfig(Model):
    """Answer ARP for LoadBalancer addresses from the nodes (a ``CiliumL2AnnouncementPolicy``)."""

    interfaces: tuple[NonEmpty, ...] = Field(
        (), description="Regular expressions of node interfaces to announce on, e.g. '^enp1s0$'; empty: all."
    )


class CiliumConfig(LayerConfig):
    """Cilium, the CNI and kube-proxy replacement (``homelab:cilium``).

    Disable it only if a CNI comes from elsewhere: the Talos patches set
    ``cluster.network.cni.name: none`` and nodes stay NotReady without one.
    """

    namespace: NonEmpty = Field(KUBE_SYSTEM, description="Namespace of the agents and the operator.")
    routing_mode: Literal["native", "tunnel"] = Field(
        "native",
        description="native: pod traffic routed directly between nodes (all nodes share one L2 network); "
        "tunnel: VXLAN overlay.",
    )
    devices: tuple[NonEmpty, ...] = Field(
        (), description="Interfaces Cilium attaches to (names or globs such as 'enp+'); empty: auto-detect."
    )
    operator_replicas: int | None = Field(
        None,
        ge=1,
        description="cilium-operator replicas, at most one per node (required anti-affinity); "
        "default: 2, or 1 on a single node.",
    )
    gateway_api: bool = Field(
        False,
        description="Cilium's Gateway API controller. The Gateway API CRDs must exist before Cilium starts: "
        "the operator checks for them at start-up and leaves the feature off otherwise.",
    )
    load_balancer: LoadBalancerConfig | None = Field(
        None, description="LoadBalancer address pool (LB IPAM); none: no pool is created."
    )
    l2_announcements: L2AnnouncementsConfig | None = Field(
        None, description="Announce LoadBalancer addresses on the LAN with ARP; needs loadBalancer."
    )

    @model_validator(mode="after")
    def _l2_needs_pool(self) -> CiliumConfig:
        if self.l2_announcements is not None and self.load_balancer is None:
            raise ValueError("l2Announcements: needs loadBalancer.blocks (addresses to announce)")
        return self

    def operator_replicas_for(self, node_count: int) -> int:
        """Operator replicas for a cluster of ``node_count`` nodes (an explicit value wins)."""
        if self.operator_replicas is not None:
            return self.operator_replicas
        return min(2, node_count)

    def cross_check(self, cluster: ClusterConfig, nodes: Sequence[NodeConfig]) -> list[str]:
        """Problems with the other sections, as ``cilium.<path>: message`` lines."""
        if not self.enabled:
            return []
        problems: list[str] = []
        if self.operator_replicas is not None and self.operator_replicas > len(nodes):
            problems.append(
                f"cilium.operatorReplicas: {self.operator_replicas} replicas need as many nodes "
                f"(one per node), this stack has {len(nodes)}"
            )
        if self.load_balancer is None:
            return problems
        net = cluster.node_network
        taken: list[tuple[str, IPv4Address]] = [(f"node {n.name}", n.address) for n in nodes]
        taken.append(("the cluster VIP", cluster.vip))
        if cluster.gateway is not None:
            taken.append(("the gateway", cluster.gateway))
        taken.append(("the network address", net.network_address))
        taken.append(("the broadcast address", net.broadcast_address))
        for i, block in enumerate(self.load_balancer.blocks):
            where = f"cilium.loadBalancer.blocks[{i}]"
            if block.first not in net or block.last not in net:
                problems.append(f"{where}: {block} is outside cluster.nodeNetwork {net}")
                continue
            problems.extend(f"{where}: {block} contains {what} ({addr})" for what, addr in taken if addr in block)
        return problems


class CorednsConfig(LayerConfig):
    """CoreDNS from its chart, replacing the one Talos deploys (``homelab:coredns``).

    Its Service takes the 10th address of ``cluster.serviceSubnet`` (the kubelet's
    clusterDNS on Talos); when enabled, Talos's own CoreDNS is disabled.
    """

    namespace: NonEmpty = Field(KUBE_SYSTEM, description="Namespace of CoreDNS.")
    replicas: int = Field(2, ge=1, description="CoreDNS replicas (spread over nodes when possible).")

    def cross_check(self, cluster: ClusterConfig, nodes: Sequence[NodeConfig]) -> list[str]:
        """Problems with the other sections, as ``coredns.<path>: message`` lines."""
        if self.enabled and cluster.service_subnet.num_addresses <= DNS_SERVICE_INDEX:
            return [f"coredns: cluster.serviceSubnet {cluster.service_subnet} has no 10th address for the DNS Service"]
        return []


class SpegelConfig(LayerConfig):
    """Spegel, a peer-to-peer image mirror between the nodes (``homelab:spegel``).

    When enabled, the Talos patches keep containerd's unpacked layers
    (``discard_unpacked_layers = false``) so nodes can serve them to each other.
    """

    namespace: NonEmpty = Field("spegel", description="Namespace of Spegel (labelled privileged: hostPath mounts).")
    mirrored_registries: tuple[NonEmpty, ...] = Field(
        (), description="Registries to mirror, e.g. https://ghcr.io; empty: all registries."
    )
