"""Rook-Ceph layer: operator chart → CephCluster (OSDs on the nodes' raw disks) → block pool → StorageClass.

Facts this follows (Rook v1.20, Talos v1.13):
- Talos enforces pod-security ``baseline``; Ceph daemons need host access, so the
  namespace is labelled ``privileged``
  (https://www.talos.dev/v1.13/kubernetes-guides/configuration/ceph-with-rook/).
- OSDs go only on the disks named in the node inventory: ``useAllNodes: false``,
  ``useAllDevices: false`` and one ``nodes[]`` entry per host. A device ``name`` may
  be a full udev path such as ``/dev/disk/by-id/…``, which survives reboots
  (Rook docs, CephCluster CRD, "Storage Selection Settings"). Disks must be raw.
- The cluster is the ``CephCluster`` CR (not the rook-ceph-cluster chart), so preview
  and policies see it; it is protected: deleting it deletes the data.
- The RBD CSI driver is named ``<operator namespace>.rbd.csi.ceph.com`` and reads the
  ``rook-csi-rbd-provisioner``/``rook-csi-rbd-node`` Secrets the operator creates in
  the cluster namespace (Rook deploy/examples/csi/rbd/storageclass.yaml, v1.20.6).
- Volumes are mapped with the kernel RBD client, so the ``nbd`` module is not needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as k8s_helpers
from stacks.config.cluster import NodeConfig
from stacks.config.platform import RookConfig, osd_hosts

# Control planes carry this taint unless the cluster schedules workloads there
# (Talos allowSchedulingOnControlPlanes); small labs put OSD disks and mons on them.
CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Exists",
    "effect": "NoSchedule",
}

# Talos's kernel is far newer than 5.4, which krbd needs for these features (Rook's
# storageclass.yaml: "For 5.4 or later kernels").
IMAGE_FEATURES = "layering,fast-diff,object-map,deep-flatten,exclusive-lock"


def operator_values(config: RookConfig) -> dict[str, Any]:
    """Operator chart values; the chart installs the Ceph CRDs (``crds.enabled``)."""
    return k8s_helpers.deep_merge({"crds": {"enabled": True}}, config.values)


def cluster_spec(config: RookConfig, nodes: Sequence[NodeConfig]) -> dict[str, Any]:
    """``CephCluster.spec``: mons/mgrs from config, OSDs exactly on each node's ``osdDisks``."""
    return {
        "cephVersion": {"image": config.ceph_image},
        "dataDirHostPath": config.data_dir_host_path,
        "mon": {"count": config.mon_count, "allowMultiplePerNode": False},
        "mgr": {"count": config.mgr_count, "allowMultiplePerNode": False},
        "dashboard": {"enabled": config.dashboard},
        "placement": {"all": {"tolerations": [CONTROL_PLANE_TOLERATION]}},
        # Rook keeps PodDisruptionBudgets so a drain never takes too many OSDs at once.
        "disruptionManagement": {"managePodBudgets": True},
        # As Rook's example cluster.yaml: mons and OSDs are node-critical, the mgr
        # cluster-critical, so a busy node evicts workloads before Ceph daemons.
        "priorityClassNames": {
            "mon": "system-node-critical",
            "osd": "system-node-critical",
            "mgr": "system-cluster-critical",
        },
        "storage": {
            "useAllNodes": False,
            "useAllDevices": False,
            "nodes": [
                {"name": node.name, "devices": [{"name": disk} for disk in node.osd_disks]} for node in osd_hosts(nodes)
            ],
        },
    }


def pool_spec(config: RookConfig) -> dict[str, Any]:
    """``CephBlockPool.spec``: replicated across hosts."""
    replicas = config.pool.replicas
    return {
        "failureDomain": "host",
        # Rook refuses size 1 unless told it is meant (no redundancy at all).
        "replicated": {"size": replicas, "requireSafeReplicaSize": replicas > 1},
    }


def storage_class_parameters(config: RookConfig) -> dict[str, str]:
    """RBD CSI parameters: cluster, pool and the CSI Secrets in the cluster namespace."""
    ns = config.namespace
    params = {
        "clusterID": ns,
        "pool": config.pool.name,
        "imageFormat": "2",
        "imageFeatures": IMAGE_FEATURES,
        "csi.storage.k8s.io/fstype": config.storage_class.fs_type,
    }
    for role, secret in (
        ("provisioner", "rook-csi-rbd-provisioner"),
        ("controller-expand", "rook-csi-rbd-provisioner"),
        ("controller-publish", "rook-csi-rbd-provisioner"),
        ("node-stage", "rook-csi-rbd-node"),
    ):
        params[f"csi.storage.k8s.io/{role}-secret-name"] = secret
        params[f"csi.storage.k8s.io/{role}-secret-namespace"] = ns
    return params


@dataclass(frozen=True)
class RookArgs:
    """Inputs of :class:`Rook`: its config section, the node inventory and what the operator waits for."""

    config: RookConfig
    nodes: Sequence[NodeConfig]
    """The machines; those with ``osd_disks`` become OSD hosts."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What the operator chart waits for (the CNI)."""


class Rook(pulumi.ComponentResource):
    """Rook-Ceph operator, a protected CephCluster, a replicated block pool and the default block StorageClass.

    ``opts.provider`` (the cluster's Kubernetes provider) is passed to every child.
    """

    namespace: k8s.core.v1.Namespace
    operator: k8s.helm.v4.Chart
    """The operator chart, Ceph CRDs included."""
    cluster: k8s.apiextensions.CustomResource
    pool: k8s.apiextensions.CustomResource
    storage_class: k8s.storage.v1.StorageClass
    storage_class_name: pulumi.Output[str]

    def __init__(self, name: str, args: RookArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:Rook", name, None, opts)
        config = args.config
        provider = opts.provider if opts else None

        self.namespace = k8s_helpers.namespace(
            f"{name}-namespace",
            config.namespace,
            "privileged",
            pulumi.ResourceOptions(parent=self, provider=provider),
        )
        ns_name = self.namespace.metadata.name
        self.operator = k8s_helpers.chart(
            f"{name}-operator",
            config.chart,
            config.namespace,
            operator_values(config),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(args.depends_on)),
            namespace=self.namespace,
        )
        self.cluster = k8s.apiextensions.CustomResource(
            f"{name}-cluster",
            api_version="ceph.rook.io/v1",
            kind="CephCluster",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=config.namespace, namespace=ns_name),
            spec=cluster_spec(config, args.nodes),
            # The CRD comes with the operator chart. Protected: deleting it destroys the data.
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.operator], protect=True),
        )
        self.pool = k8s.apiextensions.CustomResource(
            f"{name}-pool",
            api_version="ceph.rook.io/v1",
            kind="CephBlockPool",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=config.pool.name, namespace=ns_name),
            spec=pool_spec(config),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.operator, self.cluster]),
        )
        sc = config.storage_class
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if sc.default else {}
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-storageclass",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=sc.name, annotations=annotations),
            provisioner=f"{config.namespace}.rbd.csi.ceph.com",
            parameters=storage_class_parameters(config),
            reclaim_policy=sc.reclaim_policy,
            allow_volume_expansion=True,
            volume_binding_mode="Immediate",
            # Volumes are carved from the pool: claims made before it exists fail.
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.pool]),
        )
        self.storage_class_name = self.storage_class.metadata.name
        self.register_outputs({"storageClassName": self.storage_class_name})
