"""Talos layer: machine secrets → per-node configs → applies → bootstrap → kubeconfig → health.

Facts this follows (pulumiverse-talos 0.8.1 / Talos machinery v1.13):
- ``Secrets`` does not mark its outputs secret, so we do, and protect it: losing it
  means losing the cluster's PKI.
- Invokes do not translate keys: ``machine_secrets`` and ``client_configuration``
  are rebuilt with the provider's camelCase keys (pulumiverse/pulumi-talos #103, #200, #251).
- Configs, bootstrap and talosconfig target node IPs, never the VIP: the VIP only
  comes up after etcd is bootstrapped.
- Control planes are applied one after another so etcd keeps quorum; workers in parallel.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

import pulumi
import pulumiverse_talos as talos
import yaml

from components import talos_patches
from stacks.config.base import Patch
from stacks.config.cluster import ClusterConfig, NodeConfig

SECRET_OUTPUTS = ["machine_secrets", "client_configuration"]


def _pick(data: Mapping[str, Any], snake: str) -> Any:
    """Read a provider object by its snake_case or camelCase key (SDK output types vary)."""
    head, *rest = snake.split("_")
    for key in (snake, head + "".join(p.capitalize() for p in rest)):
        if key in data:
            # dict's own lookup: the SDK's output types warn on camelCase access.
            return dict.__getitem__(data, key) if isinstance(data, dict) else data[key]
    return None


def provider_machine_secrets(ms: Mapping[str, Any]) -> dict[str, Any]:
    """``machine_secrets`` with the keys the provider's invokes expect (camelCase)."""
    certs, cluster = _pick(ms, "certs"), _pick(ms, "cluster")
    secrets, trustd = _pick(ms, "secrets"), _pick(ms, "trustdinfo")

    def pair(c: Mapping[str, Any]) -> dict[str, Any]:
        return {"cert": _pick(c, "cert"), "key": _pick(c, "key")}

    out_secrets = {
        "bootstrapToken": _pick(secrets, "bootstrap_token"),
        "secretboxEncryptionSecret": _pick(secrets, "secretbox_encryption_secret"),
    }
    aescbc = _pick(secrets, "aescbc_encryption_secret")
    if aescbc:
        out_secrets["aescbcEncryptionSecret"] = aescbc
    return {
        "certs": {
            "etcd": pair(_pick(certs, "etcd")),
            "k8s": pair(_pick(certs, "k8s")),
            "k8sAggregator": pair(_pick(certs, "k8s_aggregator")),
            "k8sServiceaccount": {"key": _pick(_pick(certs, "k8s_serviceaccount"), "key")},
            "os": pair(_pick(certs, "os")),
        },
        "cluster": {"id": _pick(cluster, "id"), "secret": _pick(cluster, "secret")},
        "secrets": out_secrets,
        "trustdinfo": {"token": _pick(trustd, "token")},
    }


def provider_client_configuration(cc: Mapping[str, Any]) -> dict[str, str]:
    """``client_configuration`` with the provider's invoke keys."""
    return {
        "caCertificate": _pick(cc, "ca_certificate"),
        "clientCertificate": _pick(cc, "client_certificate"),
        "clientKey": _pick(cc, "client_key"),
    }


def apply_endpoint(node: NodeConfig) -> IPv4Address:
    """Where the provider dials to apply ``node``'s config: its maintenance address while one is set.

    A machine booted from the ISO/PXE answers only at its DHCP lease, and the provider
    dials only ``endpoint`` (terraform-provider-talos v0.11.0 ``talosClientOp``,
    pkg/talos/util.go). ``node`` stays ``address``: in maintenance mode apid does not
    route by the ``node`` metadata (``NodeRoutingDisabled``, siderolabs/talos v1.13.9
    internal/app/machined/pkg/controllers/runtime/api_service_config.go), and once
    configured the node is ``address``. No attribute of the apply forces replacement
    (pkg/talos/talos_machine_configuration_apply_resource.go has no RequiresReplace), so
    removing ``maintenanceAddress`` later is an in-place update that re-sends the same
    config to ``address``. Bootstrap, kubeconfig and talosconfig always use ``address``.
    """
    return node.maintenance_address or node.address


@dataclass(frozen=True)
class TalosClusterArgs:
    """Inputs of :class:`TalosCluster`: the cluster section, the nodes, and patches from later layers."""

    cluster: ClusterConfig
    nodes: Sequence[NodeConfig]
    layer_patches: Sequence[Patch] = field(default_factory=tuple)


class TalosCluster(pulumi.ComponentResource):
    """A Talos cluster on existing machines (booted into maintenance mode or already running Talos)."""

    kubeconfig: pulumi.Output[str]
    """Admin kubeconfig (secret); resolves only once the cluster passed the health gate."""
    talosconfig: pulumi.Output[str]
    """talosconfig for all nodes, control-plane IPs as endpoints (secret)."""
    machine_secrets: pulumi.Output[Any]
    client_configuration: pulumi.Output[Any]
    applies: dict[str, talos.machine.ConfigurationApply]
    bootstrap: talos.machine.Bootstrap
    installer_image: pulumi.Output[str]

    def __init__(self, name: str, args: TalosClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:TalosCluster", name, None, opts)
        cluster = args.cluster
        cps = [n for n in args.nodes if n.role == "controlplane"]
        workers = [n for n in args.nodes if n.role == "worker"]
        child = pulumi.ResourceOptions(parent=self)

        secrets = talos.machine.Secrets(
            f"{name}-secrets",
            talos_version=cluster.talos_version,
            opts=pulumi.ResourceOptions(parent=self, protect=True, additional_secret_outputs=SECRET_OUTPUTS),
        )
        self.machine_secrets = secrets.machine_secrets
        self.client_configuration = secrets.client_configuration
        # Resources translate the SDK's output types themselves; typed as Any because
        # the SDK's input and output classes differ for the same shape.
        client: Any = secrets.client_configuration
        invoke_secrets: Any = pulumi.Output.secret(secrets.machine_secrets.apply(provider_machine_secrets))
        invoke_client: Any = pulumi.Output.secret(secrets.client_configuration.apply(provider_client_configuration))

        image: pulumi.Output[str]
        spec = talos_patches.schematic(cluster)
        if spec is not None:
            schematic = talos.imagefactory.Schematic(f"{name}-schematic", schematic=yaml.safe_dump(spec), opts=child)
            image = schematic.id.apply(lambda sid: talos_patches.installer_image(cluster, sid))
        else:
            image = pulumi.Output.from_input(talos_patches.installer_image(cluster, None))
        self.installer_image = image

        # Patches shared by a role are rendered once, not once per node.
        shared = {
            role: [talos_patches.to_yaml(p) for p in talos_patches.shared_patches(cluster, role, args.layer_patches)]
            for role in {n.role for n in args.nodes}
        }
        self.applies = {}
        previous_cp: pulumi.Resource | None = None
        for node in [*cps, *workers]:
            patches = image.apply(functools.partial(self._patch_texts, cluster, node, shared[node.role]))
            config = talos.machine.get_configuration_output(
                cluster_name=cluster.name,
                cluster_endpoint=cluster.endpoint,
                machine_type=node.role,
                machine_secrets=invoke_secrets,
                talos_version=cluster.talos_version,
                kubernetes_version=cluster.kubernetes_version,
                config_patches=patches,
                docs=False,
                examples=False,
            )
            # Each control plane waits for the one before it: etcd keeps quorum.
            depends = [previous_cp] if node.role == "controlplane" and previous_cp is not None else []
            apply = talos.machine.ConfigurationApply(
                f"{name}-apply-{node.name}",
                node=str(node.address),
                endpoint=str(apply_endpoint(node)),
                client_configuration=client,
                machine_configuration_input=config.machine_configuration,
                apply_mode=cluster.apply_mode,
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
            self.applies[node.name] = apply
            if node.role == "controlplane":
                previous_cp = apply

        first = cps[0]
        self.bootstrap = talos.machine.Bootstrap(
            f"{name}-bootstrap",
            node=str(first.address),
            endpoint=str(first.address),
            client_configuration=client,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.applies[first.name]]),
        )
        kubeconfig = talos.cluster.Kubeconfig(
            f"{name}-kubeconfig",
            node=str(first.address),
            endpoint=str(first.address),
            client_configuration=client,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.bootstrap]),
        )
        cp_ips = [str(n.address) for n in cps]
        talosconfig = talos.client.get_configuration_output(
            cluster_name=cluster.name,
            client_configuration=invoke_client,
            endpoints=cp_ips,
            nodes=[str(n.address) for n in args.nodes],
        )
        self.talosconfig = pulumi.Output.secret(talosconfig.talos_config)

        # Health gate: waits for etcd, kubelet and every node to be ready. Kubernetes
        # readiness is skipped because nodes stay NotReady until Cilium runs.
        health = talos.cluster.get_health_output(
            client_configuration=invoke_client,
            control_plane_nodes=cp_ips,
            worker_nodes=[str(n.address) for n in workers],
            endpoints=cp_ips,
            skip_kubernetes_checks=True,
            opts=pulumi.InvokeOutputOptions(depends_on=[kubeconfig, *self.applies.values()]),
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(health.id, kubeconfig.kubeconfig_raw).apply(lambda v: str(v[1]))
        )
        self.register_outputs({"kubeconfig": self.kubeconfig, "talosconfig": self.talosconfig})

    @staticmethod
    def _patch_texts(cluster: ClusterConfig, node: NodeConfig, shared: list[str], image: str) -> list[str]:
        return [*shared, *(talos_patches.to_yaml(p) for p in talos_patches.own_patches(cluster, node, image))]
