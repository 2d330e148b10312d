"""Config models of the platform layers cert-manager (``homelab:certManager``) and Rook-Ceph (``homelab:rook``).

Both are Helm-based layers built on :class:`~stacks.config.LayerConfig`. Rules
that need the node inventory (OSD hosts, mon count, install-disk selectors that
could match an OSD disk) live in :func:`rook_problems` and
:func:`osd_disk_problems`, called from ``StackConfig``'s validator; each returns
``sub.path: message`` lines that the loader prefixes with ``homelab:``;
``RookConfig.cross_check`` is how ``StackConfig`` calls them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from stacks.config.base import NAMESPACE, Hostname, LayerConfig, Model, NonEmpty, matching
from stacks.config.cluster import ClusterConfig, NodeConfig

# Let's Encrypt ACME directories: https://letsencrypt.org/docs/acme-protocol-updates/
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NAMESERVER_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$")
# Kubernetes object names (RFC 1123 subdomain, lower case).
OBJECT_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


Email = Annotated[str, matching(EMAIL_RE, "an e-mail address")]
Nameserver = Annotated[str, matching(NAMESERVER_RE, "host:port of a recursive resolver (e.g. 1.1.1.1:53)")]
ObjectName = Annotated[str, matching(OBJECT_NAME_RE, "a Kubernetes object name (lower-case letters, digits, '-', '.')")]


class IssuersConfig(Model):
    """Let's Encrypt ClusterIssuers (production and staging) solving DNS-01 through Cloudflare."""

    enabled: bool = Field(True, description="Create the ClusterIssuers (needs homelab:cloudflareApiToken).")
    email: Email = Field(description="ACME account e-mail (Let's Encrypt expiry notices).")
    dns_zones: tuple[Hostname, ...] = Field(
        min_length=1, description="Cloudflare zones the issuers solve DNS-01 for (solver selector dnsZones)."
    )
    production_name: ObjectName = Field("letsencrypt-production", description="Name of the production ClusterIssuer.")
    staging_name: ObjectName = Field("letsencrypt-staging", description="Name of the staging ClusterIssuer.")
    token_secret_name: ObjectName = Field(
        "cloudflare-api-token", description="Kubernetes Secret (in the cert-manager namespace) holding the token."
    )


class CertManagerConfig(LayerConfig):
    """cert-manager from the jetstack chart, with its CRDs and optional ClusterIssuers (``homelab:certManager``)."""

    namespace: NonEmpty = Field("cert-manager", description="Namespace of cert-manager and the token Secret.")
    issuers: IssuersConfig | None = Field(None, description="Let's Encrypt ClusterIssuers; none when absent.")
    dns01_recursive_nameservers: tuple[Nameserver, ...] = Field(
        ("1.1.1.1:53", "1.0.0.1:53"),
        description="Public resolvers for the DNS-01 self check (a home LAN's split-horizon DNS would lie); "
        "empty to use the cluster's resolvers.",
    )

    @property
    def issuers_enabled(self) -> bool:
        """Whether ClusterIssuers are created (the layer on and the issuers configured and on)."""
        return self.enabled and self.issuers is not None and self.issuers.enabled


class PoolConfig(Model):
    """The replicated RBD pool behind the default StorageClass."""

    name: ObjectName = Field("ceph-blockpool", description="CephBlockPool name.")
    replicas: int = Field(
        3, ge=1, le=9, description="Copies of each object, one per host; at most the number of OSD hosts."
    )


class StorageClassConfig(Model):
    """The block StorageClass served by the Ceph RBD CSI driver."""

    name: ObjectName = Field("ceph-block", description="StorageClass name.")
    default: bool = Field(True, description="Mark it the cluster's default StorageClass.")
    reclaim_policy: Literal["Delete", "Retain"] = Field("Delete", description="What happens to a released volume.")
    fs_type: Literal["ext4", "xfs"] = Field("ext4", description="Filesystem of filesystem-mode volumes.")


class RookConfig(LayerConfig):
    """Rook-Ceph (``homelab:rook``): operator chart, a CephCluster on the nodes' ``osdDisks``, pool, StorageClass.

    ``nbd`` is not loaded on the nodes: the StorageClass maps volumes with the
    kernel RBD client (krbd), the CSI default; only ``mounter: rbd-nbd`` needs it.
    """

    namespace: NonEmpty = Field("rook-ceph", description="Namespace of the operator and the Ceph cluster.")
    ceph_image: NonEmpty = Field(description="Ceph container image with an exact tag (quay.io/ceph/ceph:vX.Y.Z).")
    mon_count: int = Field(3, ge=1, le=9, description="Ceph monitors (odd; one per node).")
    mgr_count: int = Field(2, ge=1, le=2, description="Ceph managers (one active, one standby).")
    data_dir_host_path: str = Field(
        "/var/lib/rook", pattern=r"^/\S+$", description="Host path for mon data and config (under /var on Talos)."
    )
    dashboard: bool = Field(True, description="Enable the Ceph dashboard (mgr module).")
    pool: PoolConfig = Field(PoolConfig(), description="The replicated block pool.")
    storage_class: StorageClassConfig = Field(StorageClassConfig(), description="The block StorageClass.")

    def cross_check(self, cluster: ClusterConfig, nodes: Sequence[NodeConfig]) -> list[str]:
        """Problems against the node inventory, as ``rook.<path>:``/``nodes[i].<path>:`` lines."""
        return [*osd_disk_problems(nodes), *rook_problems(self, nodes)]


def osd_hosts(nodes: Sequence[NodeConfig]) -> list[NodeConfig]:
    """Nodes that carry at least one OSD disk, in inventory order."""
    return [n for n in nodes if n.osd_disks]


def _install_selector_hits(node: NodeConfig, disk: str) -> str | None:
    """Why ``node``'s install-disk serial or WWID names the OSD ``disk`` (``None`` if it does not).

    A by-id name is ``<bus>-<model>_<serial>`` or ``wwn-<wwid>`` (udev's
    60-persistent-storage rules), so serial and WWID are visible in it. Other
    selector fields only narrow a serial or WWID match further.
    """
    sel = node.install_disk
    leaf = disk.removeprefix("/dev/disk/by-id/")
    if sel.serial and sel.serial in leaf:
        return f"contains the install disk's serial {sel.serial}"
    if sel.wwid and sel.wwid.lower().removeprefix("0x") in leaf.lower():
        return f"is the install disk's WWID {sel.wwid}"
    return None


def osd_disk_problems(nodes: Sequence[NodeConfig]) -> list[str]:
    """Install-disk selections that could also pick an OSD disk (Talos would install over it)."""
    problems = []
    for i, node in enumerate(nodes):
        if not node.osd_disks:
            continue
        sel = node.install_disk
        if not (sel.path or sel.serial or sel.wwid):
            # Talos installs to the first disk that matches every field; type, model
            # and size cannot be checked against by-id paths here, so they are not enough.
            problems.append(
                f"nodes[{i}].installDisk: select it by path, serial or wwid on a node with osdDisks "
                "(type, model or size alone could also match an OSD disk)"
            )
            continue
        for j, disk in enumerate(node.osd_disks):
            why = _install_selector_hits(node, disk)
            if why:
                problems.append(
                    f"nodes[{i}].osdDisks[{j}]: {disk} {why}; select the install disk so it cannot match an OSD disk"
                )
    return problems


def rook_problems(rook: RookConfig, nodes: Sequence[NodeConfig]) -> list[str]:
    """Cross-section rules of ``homelab:rook`` against the node inventory."""
    if not rook.enabled:
        return []
    hosts = osd_hosts(nodes)
    if not hosts:
        return [
            "rook.enabled: true but no node lists osdDisks; add /dev/disk/by-id/… paths to "
            "homelab:nodes[].osdDisks or set enabled: false"
        ]
    problems = []
    replicas = rook.pool.replicas
    if replicas > len(hosts):
        names = ", ".join(n.name for n in hosts)
        hint = "lower replicas explicitly for a smaller lab" if replicas == 3 else "lower replicas or add OSD disks"
        problems.append(
            f"rook.pool.replicas: {replicas} replicas need at least {replicas} nodes with osdDisks, "
            f"found {len(hosts)} ({names}); {hint}"
        )
    mons, mgrs = rook.mon_count, rook.mgr_count
    if mons % 2 == 0:
        problems.append(f"rook.monCount: {mons} is even; use 1, 3 or 5 (an even count adds no fault tolerance)")
    # Rook places one mon and one mgr per node (allowMultiplePerNode: false).
    if mons > len(nodes):
        problems.append(f"rook.monCount: {mons} mons need {mons} nodes (one each), found {len(nodes)}")
    if mgrs > len(nodes):
        problems.append(f"rook.mgrCount: {mgrs} mgrs need {mgrs} nodes (one each), found {len(nodes)}")
    return problems


def token_problems(cert_manager: CertManagerConfig | None, token_given: bool) -> list[str]:
    """The line for enabled issuers without a Cloudflare token (a secret input, so checked in the wiring).

    The token comes from ``pulumi config set --secret homelab:cloudflareApiToken`` or
    from a 1Password item (``homelab:onepassword.items.cloudflareApiToken``).
    """
    if cert_manager is None or not cert_manager.issuers_enabled or token_given:
        return []
    key = f"{NAMESPACE}:cloudflareApiToken"
    return [
        f"{key}: required by {NAMESPACE}:certManager.issuers (set it with pulumi config set --secret {key} …, "
        f"or list it in {NAMESPACE}:onepassword.items), or set certManager.issuers.enabled: false"
    ]
