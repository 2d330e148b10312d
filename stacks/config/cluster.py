"""Config sections of the machines: ``homelab:cluster`` and ``homelab:nodes``."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from pydantic import Field, model_validator

from stacks.config.base import BY_ID_PREFIX, Hostname, MacAddress, Model, NonEmpty, Patch, TalosVersion, Version

# Kubernetes versions Talos v1.13 runs: at least 1.31.0, below 1.36.99 (siderolabs/talos
# v1.13.9 pkg/machinery/compatibility/talos113/talos113.go, Minimum/MaximumKubernetesVersion;
# kubernetes_version.go refuses a version >= the maximum as "too new").
KUBERNETES_MIN = (1, 31, 0)
KUBERNETES_MAX = (1, 36, 99)


def kubernetes_problem(version: str) -> str | None:
    """Why Talos v1.13 cannot run this ``vX.Y.Z`` Kubernetes version (``None`` when it can)."""
    parts = tuple(int(p) for p in version.removeprefix("v").split("."))
    if KUBERNETES_MIN <= parts < KUBERNETES_MAX:
        return None
    lo, hi = KUBERNETES_MIN, KUBERNETES_MAX
    side = "too old" if parts < KUBERNETES_MIN else "too new"
    return (
        f"{version} is {side} for Talos v1.13, which supports Kubernetes v{lo[0]}.{lo[1]}.{lo[2]} to v{hi[0]}.{hi[1]}.x"
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
    maintenance_address: IPv4Address | None = Field(
        None,
        description="Where the node answers in maintenance mode (its DHCP lease) when that is not address: "
        "only its first config apply goes there. Remove it once the node runs at address.",
    )
    role: Literal["controlplane", "worker"] = Field(description="Talos machine type.")
    install_disk: InstallDisk = Field(description="The disk Talos installs to.")
    link: NonEmpty | None = Field(
        None, description="Name of the node's LAN link (e.g. enp1s0), when it differs from homelab:cluster.link."
    )
    mac: MacAddress | None = Field(
        None,
        description="Hardware address of the node's LAN NIC: selects the link by a LinkAliasConfig "
        "instead of by name (instead of link).",
    )
    osd_disks: tuple[NonEmpty, ...] = Field(
        (), description="Raw disks for Ceph OSDs on this node, as /dev/disk/by-id/… paths."
    )
    patches: tuple[Patch, ...] = Field((), description="Talos config patches for this node only (applied last).")

    @model_validator(mode="after")
    def _link(self) -> NodeConfig:
        if self.link is not None and self.mac is not None:
            raise ValueError(f"mac: give link or mac, not both (link {self.link}, mac {self.mac})")
        return self

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
    link: NonEmpty | None = Field(
        None,
        description="Name of the nodes' LAN link (LinkConfig, VIP), e.g. enp1s0; required unless every node "
        "sets link or mac. Talos names links predictably since v1.5: there is no eth0 to default to.",
    )
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
        k8s = kubernetes_problem(self.kubernetes_version)
        if k8s is not None:
            problems.append(f"kubernetesVersion: {k8s}")
        if problems:
            raise ValueError("\n".join(problems))
        return self
