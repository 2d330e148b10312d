"""Stack configuration models.

Every value the program reads from ``Pulumi.<stack>.yaml`` is parsed once into
these frozen pydantic models. Each layer owns one section (``homelab:<section>``)
and one model; adding a layer is adding a field to :class:`StackConfig`.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

NAMESPACE = "homelab"
"""The project's config namespace: every key is ``homelab:<section>``."""

HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")
TALOS_VERSION_RE = re.compile(r"^v1\.13\.\d+$")
BY_ID_PREFIX = "/dev/disk/by-id/"

# A Talos config patch: one YAML document as a mapping.
Patch = dict[str, Any]


def matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    """A validator for ``Annotated[str, …]``: the value must match ``pattern``, else it "is not ``what``"."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


Hostname = Annotated[str, matching(HOSTNAME_RE, "an RFC 1123 host name (lower-case letters, digits, '-', '.')")]
Version = Annotated[str, matching(VERSION_RE, "a version of the form vX.Y.Z")]
# pulumiverse-talos 0.8.1 is built on Talos machinery v1.13, and the patches use
# documents (HostnameConfig, LinkConfig, Layer2VIPConfig, …) older Talos rejects.
TalosVersion = Annotated[
    str, matching(TALOS_VERSION_RE, "a Talos v1.13.x version (what this provider and these patches target)")
]
NonEmpty = Annotated[str, Field(min_length=1)]


class Model(BaseModel):
    """Base for every config model: frozen, unknown keys rejected, camelCase keys in YAML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=False,
    )


class InstallDisk(Model):
    """Where Talos installs itself: a fixed device path or a disk selector (exactly one)."""

    path: str | None = Field(None, description="Device path, preferably stable: /dev/disk/by-id/…")
    serial: str | None = Field(None, description="Select the disk by serial number.")
    model: str | None = Field(None, description="Select the disk by model (glob).")
    wwid: str | None = Field(None, description="Select the disk by WWID.")
    type: Literal["ssd", "hdd", "nvme", "sd"] | None = Field(None, description="Select the disk by type.")
    size: str | None = Field(None, description="Select the disk by size expression, e.g. '<= 1TB'.")

    @model_validator(mode="after")
    def _one_way(self) -> InstallDisk:
        selectors = [k for k in ("serial", "model", "wwid", "type", "size") if getattr(self, k) is not None]
        if self.path is None and not selectors:
            raise ValueError("give either path or at least one selector (serial, model, wwid, type, size)")
        if self.path is not None and selectors:
            raise ValueError(f"give either path or selectors, not both (path and {', '.join(selectors)})")
        if self.path is not None and not self.path.startswith("/dev/"):
            raise ValueError(f"path {self.path!r} must start with /dev/")
        return self

    def talos(self) -> Patch:
        """The ``machine.install`` fragment that selects this disk."""
        if self.path is not None:
            return {"disk": self.path}
        return {"diskSelector": self.model_dump(by_alias=True, exclude_none=True, exclude={"path"})}


class NodeConfig(Model):
    """One machine of the rack."""

    name: Hostname = Field(description="RFC 1123 host name; also the Kubernetes node name.")
    address: IPv4Address = Field(description="Static IPv4 address on the node network.")
    role: Literal["controlplane", "worker"] = Field(description="Talos machine type.")
    install_disk: InstallDisk = Field(description="The disk Talos installs to.")
    link: NonEmpty | None = Field(None, description="Network link name; defaults to homelab:cluster.link.")
    osd_disks: tuple[NonEmpty, ...] = Field(
        (), description="Raw disks for Ceph OSDs on this node, as /dev/disk/by-id/… paths."
    )
    patches: tuple[Patch, ...] = Field((), description="Talos config patches for this node only (applied last).")

    @model_validator(mode="after")
    def _disks(self) -> NodeConfig:
        for disk in self.osd_disks:
            if not disk.startswith(BY_ID_PREFIX):
                raise ValueError(f"osdDisks: {disk!r} is not a stable {BY_ID_PREFIX}… path")
            if disk == self.install_disk.path:
                raise ValueError(f"osdDisks: {disk} is the install disk of node {self.name}")
        if len(set(self.osd_disks)) != len(self.osd_disks):
            raise ValueError("osdDisks: a disk is listed twice")
        return self


class RolePatches(Model):
    """Talos config patches by scope; applied cluster → role → node."""

    all: tuple[Patch, ...] = Field((), description="Patches for every node.")
    controlplane: tuple[Patch, ...] = Field((), description="Patches for control-plane nodes.")
    worker: tuple[Patch, ...] = Field((), description="Patches for worker nodes.")


class ClusterConfig(Model):
    """Cluster-wide Talos and Kubernetes settings (``homelab:cluster``)."""

    name: Hostname = Field(description="Cluster name (Talos clusterName, kubeconfig context).")
    vip: IPv4Address = Field(description="Shared Layer 2 VIP of the control planes; the Kubernetes API endpoint.")
    link: NonEmpty = Field("eth0", description="Default network link of the nodes (LinkConfig, VIP).")
    node_network: IPv4Network = Field(description="The LAN the nodes live on, e.g. 10.0.10.0/24.")
    gateway: IPv4Address | None = Field(None, description="Default gateway on the node network.")
    nameservers: tuple[IPv4Address, ...] = Field((), description="DNS resolvers for the nodes.")
    ntp_servers: tuple[NonEmpty, ...] = Field((), description="NTP servers for the nodes.")
    pod_subnet: IPv4Network = Field(IPv4Network("10.244.0.0/16"), description="Pod CIDR.")
    service_subnet: IPv4Network = Field(IPv4Network("10.96.0.0/12"), description="Service CIDR.")
    talos_version: TalosVersion = Field(description="Talos version to install (v1.13.x).")
    kubernetes_version: Version = Field(description="Kubernetes version (vX.Y.Z).")
    installer_image: NonEmpty = Field(
        "ghcr.io/siderolabs/installer", description="Installer image without tag when no extensions are set."
    )
    extensions: tuple[NonEmpty, ...] = Field(
        (), description="Official system extensions (e.g. siderolabs/intel-ucode); uses an Image Factory schematic."
    )
    kernel_args: tuple[NonEmpty, ...] = Field((), description="Extra kernel arguments baked into the schematic.")
    apply_mode: Literal["auto", "reboot", "no_reboot", "staged", "staged_if_needing_reboot"] = Field(
        "staged_if_needing_reboot", description="Talos apply mode for configuration changes."
    )
    allow_scheduling_on_control_planes: bool = Field(False, description="Run workloads on control planes.")
    patches: RolePatches = Field(RolePatches(), description="Cluster-wide and per-role Talos patches.")

    @property
    def endpoint(self) -> str:
        """The Kubernetes API URL (through the VIP)."""
        return f"https://{self.vip}:6443"

    @model_validator(mode="after")
    def _network(self) -> ClusterConfig:
        problems = []
        net = self.node_network
        if self.vip not in net:
            problems.append(f"vip: {self.vip} is outside nodeNetwork {net}")
        elif self.vip in (net.network_address, net.broadcast_address):
            problems.append(f"vip: {self.vip} is the network or broadcast address of {net}")
        if self.gateway is not None and self.gateway not in net:
            problems.append(f"gateway: {self.gateway} is outside nodeNetwork {net}")
        for field, cidr in (("podSubnet", self.pod_subnet), ("serviceSubnet", self.service_subnet)):
            if cidr.overlaps(net):
                problems.append(f"{field}: {cidr} overlaps nodeNetwork {net}")
        if self.pod_subnet.overlaps(self.service_subnet):
            problems.append(f"serviceSubnet: {self.service_subnet} overlaps podSubnet {self.pod_subnet}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


CHART_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


ChartVersion = Annotated[str, matching(CHART_VERSION_RE, "an exact chart version (X.Y.Z, no ranges)")]


class ChartConfig(Model):
    """A Helm chart pinned to an exact version (each carries a ``# renovate:`` comment in YAML)."""

    chart: NonEmpty = Field(description="Chart name, or a full oci:// reference.")
    repository: NonEmpty | None = Field(None, description="Chart repository URL (https:// or oci://).")
    version: ChartVersion = Field(description="Exact chart version.")


class LayerConfig(Model):
    """Common shape of a base-platform layer deployed from a Helm chart."""

    enabled: bool = Field(True, description="Deploy this layer.")
    chart: ChartConfig = Field(description="Chart source and exact version.")
    namespace: NonEmpty = Field(description="Namespace the layer lives in.")
    values: dict[str, Any] = Field(
        default_factory=dict, description="Extra chart values, merged over the generated ones."
    )


# Layer sections live in their own modules and build on the classes above, so they
# are imported here, after those classes exist (stacks/__init__.py imports this
# module first, whichever section module a caller imports).
from stacks.config_external import DnsConfig, OnePasswordConfig  # noqa: E402
from stacks.config_flux import FluxConfig  # noqa: E402
from stacks.config_network import CiliumConfig, CorednsConfig, SpegelConfig  # noqa: E402
from stacks.config_platform import CertManagerConfig, RookConfig  # noqa: E402


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
