"""Stack configuration models.

Every value the program reads from ``Pulumi.<stack>.yaml`` is parsed once into
frozen pydantic models. Each layer owns one section (``homelab:<section>``) and
one model in a module of this package; the shared base types live in
:mod:`stacks.config.base`. This module assembles :class:`StackConfig` from the
sections and nothing in the package imports it back: adding a layer is adding a
field here.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from pydantic import Field, model_validator

from stacks.config.base import NAMESPACE, Model
from stacks.config.cluster import ClusterConfig, NodeConfig
from stacks.config.day2 import Day2Config
from stacks.config.external import DnsConfig, OnePasswordConfig
from stacks.config.flux import FluxConfig
from stacks.config.network import CiliumConfig, CorednsConfig, SpegelConfig
from stacks.config.platform import CertManagerConfig, RookConfig
from stacks.config.talos_schema import patch_problems

__all__ = ["NAMESPACE", "StackConfig"]


class StackConfig(Model):
    """The whole stack: one field per ``homelab:<section>`` key.

    Optional layers are ``None`` when their section is absent; adding a layer is
    adding a field here (and a component that takes it).
    """

    cluster: ClusterConfig = Field(description="Cluster-wide Talos/Kubernetes settings.")
    nodes: tuple[NodeConfig, ...] = Field(min_length=1, description="The machines, in order.")
    cilium: CiliumConfig | None = Field(None, description="Cilium CNI, LoadBalancer pool and L2 announcements.")
    coredns: CorednsConfig | None = Field(None, description="CoreDNS from its chart (Talos's own is disabled).")
    spegel: SpegelConfig | None = Field(None, description="Spegel peer-to-peer image mirror.")
    onepassword: OnePasswordConfig | None = Field(
        None, description="1Password: secret inputs read from items; backups of the cluster's own secrets."
    )
    dns: DnsConfig | None = Field(None, description="Cloudflare DNS records of one zone.")
    flux: FluxConfig | None = Field(
        None, description="Flux bootstrap: flux-operator, a FluxInstance syncing this repository, bootstrap Secrets."
    )
    cert_manager: CertManagerConfig | None = Field(
        None, description="cert-manager with its CRDs and Let's Encrypt ClusterIssuers (Cloudflare DNS-01)."
    )
    day2: Day2Config = Field(
        Day2Config(), description="Rolling, health-gated day-2 steps (upgrades, reboots) and etcd snapshot access."
    )
    rook: RookConfig | None = Field(
        None, description="Rook-Ceph: operator, a CephCluster on the nodes' osdDisks, a pool and a StorageClass."
    )

    @property
    def control_planes(self) -> tuple[NodeConfig, ...]:
        """Control-plane nodes in config order (the first one is bootstrapped)."""
        return tuple(n for n in self.nodes if n.role == "controlplane")

    @property
    def workers(self) -> tuple[NodeConfig, ...]:
        """Worker nodes in config order."""
        return tuple(n for n in self.nodes if n.role == "worker")

    @model_validator(mode="after")
    def _nodes(self) -> StackConfig:
        problems: list[str] = []
        names: dict[str, int] = {}
        addresses: dict[IPv4Address, str] = {}
        net = self.cluster.node_network
        for i, node in enumerate(self.nodes):
            where = f"nodes[{i}]"
            if node.name in names:
                problems.append(f"{where}.name: {node.name} is already the name of nodes[{names[node.name]}]")
            names.setdefault(node.name, i)
            if node.address in addresses:
                problems.append(f"{where}.address: {node.address} is already used by node {addresses[node.address]}")
            addresses.setdefault(node.address, node.name)
            if node.address not in net:
                problems.append(f"{where}.address: {node.address} is outside cluster.nodeNetwork {net}")
            elif node.address in (net.network_address, net.broadcast_address):
                problems.append(f"{where}.address: {node.address} is the network or broadcast address of {net}")
            if node.address == self.cluster.vip:
                problems.append(f"{where}.address: {node.address} is the cluster VIP")
            if node.address == self.cluster.gateway:
                problems.append(f"{where}.address: {node.address} is the gateway")
        if not self.control_planes:
            problems.append("nodes: no node has role controlplane (at least one is needed)")
        problems += self._link_problems()
        problems += self._maintenance_problems()
        problems += self._workload_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _link_problems(self) -> list[str]:
        """Every node needs its LAN link named or selected by MAC: there is no safe default.

        Talos names links predictably since v1.5 (``enp1s0``, not ``eth0``), and a
        ``LinkConfig``/``Layer2VIPConfig`` naming a link that does not exist leaves the
        node without its address and the cluster without its VIP.
        """
        problems: list[str] = []
        macs: dict[str, str] = {}
        for i, node in enumerate(self.nodes):
            if node.mac is not None:
                if node.mac in macs:
                    problems.append(f"nodes[{i}].mac: {node.mac} is already the mac of node {macs[node.mac]}")
                macs.setdefault(node.mac, node.name)
        if self.cluster.link is not None:
            return problems
        unnamed = [i for i, node in enumerate(self.nodes) if node.link is None and node.mac is None]
        if len(unnamed) == len(self.nodes):
            problems.append(
                "cluster.link: is required unless every node sets link or mac: the name of the nodes' LAN link "
                "(e.g. enp1s0; Talos names links predictably since v1.5, so eth0 usually does not exist)"
            )
        else:
            problems += [
                f"nodes[{i}].link: node {self.nodes[i].name} has no link: set its link or mac, or cluster.link"
                for i in unnamed
            ]
        return problems

    def _maintenance_problems(self) -> list[str]:
        """A maintenance address must not be taken by another machine or the VIP while the node boots."""
        problems: list[str] = []
        taken = {node.address: f"the address of node {node.name}" for node in self.nodes}
        taken[self.cluster.vip] = "the cluster VIP"
        if self.cluster.gateway is not None:
            taken[self.cluster.gateway] = "the gateway"
        seen: dict[IPv4Address, str] = {}
        for i, node in enumerate(self.nodes):
            where, addr = f"nodes[{i}].maintenanceAddress", node.maintenance_address
            if addr is None or addr == node.address:
                continue
            if addr in taken:
                problems.append(f"{where}: {addr} is {taken[addr]}")
            elif addr in seen:
                problems.append(f"{where}: {addr} is already the maintenanceAddress of node {seen[addr]}")
            seen.setdefault(addr, node.name)
        return problems

    def _workload_problems(self) -> list[str]:
        """The cluster needs somewhere to run workloads.

        Control planes carry the ``node-role.kubernetes.io/control-plane:NoSchedule``
        taint unless ``allowSchedulingOnControlPlanes`` is set (Talos's
        ``cluster.allowSchedulingOnControlPlanes``); with no worker, CoreDNS, Flux,
        cert-manager and every app would stay Pending.
        """
        if self.workers or self.cluster.allow_scheduling_on_control_planes:
            return []
        return [
            "cluster.allowSchedulingOnControlPlanes: false, but every node is a control plane, so nothing "
            "could run workloads (control planes are tainted NoSchedule); set it to true or add a worker"
        ]

    @model_validator(mode="after")
    def _patches(self) -> StackConfig:
        """Every user patch against the Talos v1.13 schema: Talos decodes configs strictly, on the node."""
        scoped = self.cluster.patches
        named = [
            *(
                (f"cluster.patches.{scope}[{j}]", p)
                for scope in ("all", "controlplane", "worker")
                for j, p in enumerate(getattr(scoped, scope))
            ),
            *((f"nodes[{i}].patches[{j}]", p) for i, node in enumerate(self.nodes) for j, p in enumerate(node.patches)),
        ]
        problems = [line for where, patch in named for line in patch_problems(where, patch)]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _sections(self) -> StackConfig:
        """Rules across sections: a layer section may define ``cross_check(cluster, nodes)``."""
        problems: list[str] = []
        for name in type(self).model_fields:
            check = getattr(getattr(self, name), "cross_check", None)
            if callable(check):
                problems.extend(check(self.cluster, self.nodes))
        if problems:
            raise ValueError("\n".join(problems))
        return self
