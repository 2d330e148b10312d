"""Talos machine-config patches built from the stack config (pure data, no Pulumi).

Patches are applied in this order, later ones winning: generated cluster patch →
layer patches (e.g. Spegel, CoreDNS) → ``cluster.patches.all`` → generated role
patch → ``cluster.patches.<role>`` → generated node patch → ``node.patches``.

Host name, addresses and the VIP use the dedicated v1alpha1 documents
(``HostnameConfig``, ``LinkConfig``, ``Layer2VIPConfig``, ``ResolverConfig``,
``TimeSyncConfig``) rather than the deprecated ``machine.network`` block; see
https://www.talos.dev/v1.13/reference/configuration/network/.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import Any

import yaml

from stacks.config.base import Patch
from stacks.config.cluster import ClusterConfig, NodeConfig

KUBEPRISM_PORT = 7445
FACTORY_INSTALLER = "factory.talos.dev/installer"


def _doc(kind: str, **fields: Any) -> Patch:
    return {"apiVersion": "v1alpha1", "kind": kind, **fields}


def installer_image(cluster: ClusterConfig, schematic_id: str | None) -> str:
    """The installer image: Image Factory's when a schematic exists, else the plain one."""
    if schematic_id:
        return f"{FACTORY_INSTALLER}/{schematic_id}:{cluster.talos_version}"
    return f"{cluster.installer_image}:{cluster.talos_version}"


def schematic(cluster: ClusterConfig) -> dict[str, Any] | None:
    """Image Factory schematic for the configured extensions/kernel args, or None."""
    if not cluster.extensions and not cluster.kernel_args:
        return None
    customization: dict[str, Any] = {}
    if cluster.kernel_args:
        customization["extraKernelArgs"] = list(cluster.kernel_args)
    if cluster.extensions:
        customization["systemExtensions"] = {"officialExtensions": list(cluster.extensions)}
    return {"customization": customization}


def cluster_patch(cluster: ClusterConfig) -> Patch:
    """What every node needs: no CNI and no kube-proxy (Cilium replaces both), KubePrism."""
    return {
        "machine": {
            "features": {"kubePrism": {"enabled": True, "port": KUBEPRISM_PORT}},
            "kubelet": {"nodeIP": {"validSubnets": [str(cluster.node_network)]}},
        },
        "cluster": {
            "network": {
                "cni": {"name": "none"},
                "podSubnets": [str(cluster.pod_subnet)],
                "serviceSubnets": [str(cluster.service_subnet)],
            },
            "proxy": {"disabled": True},
        },
    }


def role_patches(cluster: ClusterConfig, role: str) -> list[Patch]:
    """Generated per-role patches: the control planes serve the API at the VIP."""
    if role != "controlplane":
        return []
    return [
        {
            "machine": {"certSANs": [str(cluster.vip)]},
            "cluster": {
                "apiServer": {"certSANs": [str(cluster.vip)]},
                "allowSchedulingOnControlPlanes": cluster.allow_scheduling_on_control_planes,
            },
        }
    ]


LINK_ALIAS = "lan0"
"""Alias of the LAN link of a node selected by ``mac``; Talos asks for a name that no
system interface has (``LinkAliasConfig.name``, siderolabs/talos v1.13.9
pkg/machinery/config/types/network/link_alias.go)."""


def link_name(cluster: ClusterConfig, node: NodeConfig) -> str:
    """The link that carries the node's address (and the VIP): its alias when selected by MAC, else its name.

    The config models guarantee one of ``node.mac``, ``node.link``, ``cluster.link``.
    """
    if node.mac is not None:
        return LINK_ALIAS
    name = node.link or cluster.link
    if name is None:
        raise ValueError(f"node {node.name} has no link (homelab:cluster.link, nodes[].link or nodes[].mac)")
    return name


def link_alias(node: NodeConfig) -> Patch | None:
    """A ``LinkAliasConfig`` naming the NIC with the node's hardware address ``LINK_ALIAS``, or None.

    ``LinkConfig`` and ``Layer2VIPConfig`` then name the alias: Talos resolves link
    names through aliases (``network.LinkResolver``, used by the link and VIP config
    controllers in internal/app/machined/pkg/controllers/network/, v1.13.9). The
    selector is a CEL expression over the permanent (burned-in) address, Talos's own
    example form.
    """
    if node.mac is None:
        return None
    return _doc("LinkAliasConfig", name=LINK_ALIAS, selector={"match": f'mac(link.permanent_addr) == "{node.mac}"'})


def node_patches(cluster: ClusterConfig, node: NodeConfig, image: str) -> list[Patch]:
    """Generated per-node patches: install disk/image, host name, static address, the VIP on control planes."""
    lan = link_name(cluster, node)
    alias = link_alias(node)
    link: dict[str, Any] = {
        "name": lan,
        "addresses": [{"address": f"{node.address}/{cluster.node_network.prefixlen}"}],
    }
    if cluster.gateway is not None:
        link["routes"] = [{"destination": "0.0.0.0/0", "gateway": str(cluster.gateway)}]
    patches: list[Patch] = [
        {"machine": {"install": {**node.install_disk.talos(), "image": image}}},
        _doc("HostnameConfig", hostname=node.name, auto="off"),
        *([alias] if alias is not None else []),
        _doc("LinkConfig", **link),
    ]
    if node.role == "controlplane":
        # The VIP lives on the link that carries the node's address: its selector
        # must match exactly one link of this node.
        patches.append(_doc("Layer2VIPConfig", name=str(cluster.vip), link=lan))
    if cluster.nameservers:
        patches.append(_doc("ResolverConfig", nameservers=[{"address": str(a)} for a in cluster.nameservers]))
    if cluster.ntp_servers:
        patches.append(_doc("TimeSyncConfig", ntp={"servers": list(cluster.ntp_servers)}))
    return patches


def shared_patches(cluster: ClusterConfig, role: str, layer_patches: Sequence[Patch] = ()) -> list[Patch]:
    """The patches every node of a role gets, in the order Talos applies them (before the node's own)."""
    scoped = cluster.patches
    role_user = scoped.controlplane if role == "controlplane" else scoped.worker
    return [cluster_patch(cluster), *layer_patches, *scoped.all, *role_patches(cluster, role), *role_user]


def own_patches(cluster: ClusterConfig, node: NodeConfig, image: str) -> list[Patch]:
    """The patches only this node gets, applied last: generated, then ``node.patches``."""
    return [*node_patches(cluster, node, image), *node.patches]


def patches_for(
    cluster: ClusterConfig, node: NodeConfig, image: str, layer_patches: Sequence[Patch] = ()
) -> list[Patch]:
    """Every patch for one node, in the order Talos applies them."""
    return [*shared_patches(cluster, node.role, layer_patches), *own_patches(cluster, node, image)]


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    # Strategic merge as Talos does it for v1alpha1: maps merge, lists append.
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = into[key] + copy.deepcopy(value)
        else:
            into[key] = copy.deepcopy(value)


def merged(patches: Sequence[Patch]) -> list[Patch]:
    """Fold patches into one v1alpha1 document plus the named documents (last one wins)."""
    main: dict[str, Any] = {}
    docs: dict[tuple[str, str], Patch] = {}
    for patch in patches:
        if "kind" in patch:
            docs[(patch["kind"], str(patch.get("name", "")))] = copy.deepcopy(patch)
        else:
            _merge(main, patch)
    return [main, *docs.values()]


# libyaml's C emitter and parser when PyYAML has them (its wheels do): the pure-Python
# ones dominated the plan of large inventories (about 10 ms per node).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def to_yaml(patch: Patch) -> str:
    """One patch as the YAML text Talos receives."""
    return yaml.dump(patch, Dumper=_DUMPER, sort_keys=False)


@functools.cache
def read_patch(text: str) -> Any:
    """Parse a patch text written by :func:`to_yaml`: one parse per distinct text, shared.

    Every node carries the same cluster and role patches; reports parse each once.
    The result is shared between callers: read it, never change it.
    """
    return yaml.load(text, Loader=_LOADER)


def to_yaml_all(docs: Sequence[Patch]) -> str:
    """Several documents as one YAML stream, each starting with ``---``."""
    return yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=False, explicit_start=True)
