"""Talos layer: machine secrets → upgrades → per-node configs → applies → bootstrap → kubeconfig → API gate.

Facts this follows (pulumiverse-talos 0.8.1 / Talos machinery v1.13):
- ``Secrets`` does not mark its outputs secret, so we do, and protect it: losing it
  means losing the cluster's PKI.
- Invokes do not translate keys: ``machine_secrets`` and ``client_configuration``
  are rebuilt with the provider's camelCase keys (pulumiverse/pulumi-talos #103, #200, #251).
- Configs, bootstrap and talosconfig target node IPs, never the VIP: the VIP only
  comes up after etcd is bootstrapped.
- Control planes are applied one after another so etcd keeps quorum; workers in parallel.
- The day-2 steps around the applies (upgrades, staged reboots, node removal) are
  described in :mod:`components.talos_day2`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

import pulumi
import pulumiverse_talos as talos
import yaml

from components import talos_day2, talos_patches, talos_steps
from stacks.config.base import Patch
from stacks.config.cluster import ClusterConfig, NodeConfig
from stacks.config.day2 import Day2Config, seconds

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
    day2: Day2Config = field(default_factory=Day2Config)
    rook_namespace: str | None = None
    """The CephCluster's namespace when Rook runs: day-2 steps on OSD nodes then wait for Ceph."""


class TalosCluster(pulumi.ComponentResource):
    """A Talos cluster on existing machines (booted into maintenance mode or already running Talos)."""

    kubeconfig: pulumi.Output[str]
    """Admin kubeconfig (secret); resolves only once the API server answers ``/readyz`` at the VIP."""
    talosconfig: pulumi.Output[str]
    """talosconfig for all nodes, control-plane IPs as endpoints (secret)."""
    step_talosconfig: pulumi.Output[str]
    """talosconfig of the day-2 steps: control planes as endpoints, no node list (secret)."""
    machine_secrets: pulumi.Output[Any]
    client_configuration: pulumi.Output[Any]
    applies: dict[str, talos.machine.ConfigurationApply]
    upgrades: dict[str, pulumi.Resource]
    """Talos upgrade step per node."""
    kubernetes_upgrade: pulumi.Resource
    reboots: dict[str, pulumi.Resource]
    """Reboot step per node, for applies Talos staged."""
    bootstrap: talos.machine.Bootstrap
    api_ready: pulumi.Resource
    installer_image: pulumi.Output[str]
    resolved_apply_modes: dict[str, pulumi.Output[str]]
    """How Talos applied each node's config (``reboot``, ``no_reboot``, ``staged``…)."""

    def __init__(self, name: str, args: TalosClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:TalosCluster", name, None, opts)
        cluster = args.cluster
        cps = [n for n in args.nodes if n.role == "controlplane"]
        workers = [n for n in args.nodes if n.role == "worker"]
        first = cps[0]
        waits = talos_day2.timeouts(args.day2)
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

        cp_ips = [str(n.address) for n in cps]
        talosconfig = talos.client.get_configuration_output(
            cluster_name=cluster.name,
            client_configuration=invoke_client,
            endpoints=cp_ips,
            nodes=[str(n.address) for n in args.nodes],
        )
        self.talosconfig = pulumi.Output.secret(talosconfig.talos_config)
        # The steps name their nodes themselves: without a node list, adding or removing a
        # node does not change every step's input (pulumi-command reruns on any change).
        step_config = talos.client.get_configuration_output(
            cluster_name=cluster.name, client_configuration=invoke_client, endpoints=cp_ips
        )
        self.step_talosconfig = pulumi.Output.secret(step_config.talos_config)

        # Talos upgrades, rolling, then the Kubernetes upgrade: before any config is applied.
        self.upgrades = self._rolling(
            name,
            "upgrade",
            args,
            talos_steps.upgrade_node(),
            lambda node: {"TALOS_IMAGE": image, "UPGRADE_TIMEOUT": waits["UPGRADE_TIMEOUT"]},
            after=[],
        )
        self.kubernetes_upgrade = talos_day2.command(
            f"{name}-kubernetes-upgrade",
            talos_steps.upgrade_k8s(),
            {
                **self._cluster_env(args),
                "KUBERNETES_VERSION": cluster.kubernetes_version,
                "HEALTH_TIMEOUT": waits["HEALTH_TIMEOUT"],
            },
            pulumi.ResourceOptions(parent=self, depends_on=list(self.upgrades.values())),
        )

        # Patches shared by a role are rendered once, not once per node.
        shared = {
            role: [talos_patches.to_yaml(p) for p in talos_patches.shared_patches(cluster, role, args.layer_patches)]
            for role in {n.role for n in args.nodes}
        }
        self.applies = {}
        self.resolved_apply_modes = {}
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
            # Removing the node from the inventory deletes the apply (a graceful reset:
            # cordon, drain, leave etcd, wipe) and then this step (its Kubernetes Node):
            # the apply depends on it, so Pulumi deletes the apply first.
            cleanup = talos_day2.command(
                f"{name}-cleanup-{node.name}",
                talos_steps.remove_node(),
                {**self._node_env(args, node), "NODE_ROLE": node.role},
                child,
            )
            # Each control plane waits for the one before it (and for it to be back, when
            # the apply mode reboots): etcd keeps quorum. Every apply waits for the upgrades.
            depends: list[pulumi.Resource] = [self.kubernetes_upgrade, cleanup]
            if node.role == "controlplane" and previous_cp is not None:
                depends.append(previous_cp)
            apply = talos.machine.ConfigurationApply(
                f"{name}-apply-{node.name}",
                node=str(node.address),
                endpoint=str(apply_endpoint(node)),
                client_configuration=client,
                machine_configuration_input=config.machine_configuration,
                apply_mode=cluster.apply_mode,
                # The reset must be in state before the destroy that uses it: it is set from
                # the first apply on (the provider's on_destroy docs).
                on_destroy=talos.machine.ConfigurationApplyOnDestroyArgs(reset=True, graceful=True, reboot=False),
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
            # Deleted before the apply: refuses a removal that would cost etcd quorum or Ceph data.
            talos_day2.command(
                f"{name}-guard-{node.name}",
                talos_steps.remove_guard(),
                {**self._node_env(args, node), "NODE_ROLE": node.role, **self._ceph_env(args, node)},
                pulumi.ResourceOptions(parent=self, depends_on=[apply]),
            )
            self.applies[node.name] = apply
            self.resolved_apply_modes[node.name] = apply.resolved_apply_mode
            if node.role == "controlplane":
                previous_cp = apply
                if cluster.apply_mode in ("auto", "reboot"):
                    # The provider returns before Talos reboots: wait until the node is back
                    # and the cluster healthy before the next control plane's apply.
                    previous_cp = talos_day2.command(
                        f"{name}-settle-{node.name}",
                        talos_steps.settle_node(),
                        {
                            **self._node_env(args, node),
                            "CONFIG_HASH": apply.machine_configuration_hash,
                            "APPLY_MODE": apply.resolved_apply_mode,
                            "HEALTH_TIMEOUT": waits["HEALTH_TIMEOUT"],
                        },
                        pulumi.ResourceOptions(parent=self, depends_on=[apply]),
                    )

        # Bootstrap once: its ``node`` is the first control plane's, and a later change of
        # it (that node removed) only writes state (terraform-provider-talos v0.11.0,
        # talos_machine_bootstrap_resource.go: no RequiresReplace on node, Update keeps state).
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
        # The kubeconfig can come back before the API server answers (terraform-provider-talos
        # #290), and a Kubernetes provider configured then marks the cluster unreachable for
        # the whole run: the provider's kubeconfig resolves only after /readyz at the VIP.
        self.api_ready = talos_day2.command(
            f"{name}-api-ready",
            talos_steps.api_ready(),
            {
                "API_URL": cluster.endpoint,
                "KUBECONFIG_DATA": kubeconfig.kubeconfig_raw,
                "READY_TIMEOUT": str(seconds(args.day2.api_timeout)),
            },
            pulumi.ResourceOptions(parent=self, depends_on=[kubeconfig]),
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.api_ready.id, kubeconfig.kubeconfig_raw).apply(lambda v: str(v[1]))
        )

        # Nodes whose apply Talos staged are rebooted, rolling and health-gated.
        self.reboots = self._rolling(
            name,
            "reboot",
            args,
            talos_steps.reboot_node(),
            lambda node: {
                "CONFIG_HASH": self.applies[node.name].machine_configuration_hash,
                "APPLY_MODE": self.applies[node.name].resolved_apply_mode,
            },
            after=[self.bootstrap, *self.applies.values()],
        )
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "talosconfig": self.talosconfig,
                "resolvedApplyModes": self.resolved_apply_modes,
            }
        )

    def _cluster_env(self, args: TalosClusterArgs) -> dict[str, pulumi.Input[str]]:
        """What every step needs: the steps' talosconfig and the control planes (the first one runs checks)."""
        return {
            "TALOSCONFIG_DATA": self.step_talosconfig,
            "CONTROL_PLANES": ",".join(str(n.address) for n in args.nodes if n.role == "controlplane"),
        }

    def _node_env(self, args: TalosClusterArgs, node: NodeConfig) -> dict[str, pulumi.Input[str]]:
        """What every step about one node needs: :meth:`_cluster_env` and the node."""
        return {**self._cluster_env(args), "NODE_NAME": node.name, "NODE_ADDRESS": str(node.address)}

    @staticmethod
    def _ceph_env(args: TalosClusterArgs, node: NodeConfig) -> dict[str, pulumi.Input[str]]:
        """On a node with OSD disks, while Rook runs: the steps look after Ceph (HEALTH_OK, noout)."""
        if not node.osd_disks or args.rook_namespace is None:
            return {}
        return {"OSD_NODE": "true", "ROOK_NAMESPACE": args.rook_namespace}

    def _rolling(  # noqa: PLR0917 - one call per step kind, each argument named at the call
        self,
        name: str,
        role: str,
        args: TalosClusterArgs,
        step: talos_steps.Step,
        env: Callable[[NodeConfig], Mapping[str, pulumi.Input[str]]],
        after: Sequence[pulumi.Resource],
    ) -> dict[str, pulumi.Resource]:
        """One ``<name>-<role>-<node>`` step per node, wave after wave: a failure stops every later wave."""
        waits = talos_day2.timeouts(args.day2)
        out: dict[str, pulumi.Resource] = {}
        previous: list[pulumi.Resource] = list(after)
        for wave in talos_day2.rolling_waves(args.nodes, args.day2.worker_batch):
            current: list[pulumi.Resource] = []
            for node in wave:
                ceph = self._ceph_env(args, node)
                if ceph:
                    ceph["CEPH_TIMEOUT"] = waits["CEPH_TIMEOUT"]
                cmd = talos_day2.command(
                    f"{name}-{role}-{node.name}",
                    step,
                    {**self._node_env(args, node), "HEALTH_TIMEOUT": waits["HEALTH_TIMEOUT"], **env(node), **ceph},
                    pulumi.ResourceOptions(parent=self, depends_on=previous),
                )
                out[node.name] = cmd
                current.append(cmd)
            previous = current
        return out

    @staticmethod
    def _patch_texts(cluster: ClusterConfig, node: NodeConfig, shared: list[str], image: str) -> list[str]:
        return [*shared, *(talos_patches.to_yaml(p) for p in talos_patches.own_patches(cluster, node, image))]
