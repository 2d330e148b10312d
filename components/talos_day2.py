"""Day-2 Talos: what ``pulumi up`` does to running nodes besides applying their config.

The steps are ``pulumi_command`` ``local.Command`` resources running the scripts of
:mod:`components.talos_steps` (``talosctl``/``kubectl`` on the machine that runs
``pulumi up``). :class:`components.talos.TalosCluster` wires them around its
applies; :class:`ClusterHealth` is the full health check that runs after the CNI.

Order of one ``up`` (each arrow a dependency; a step's ``create`` touches no node,
so nothing below runs at the first bootstrap or for a node being added):

    Talos upgrades, rolling (control planes one at a time, then workers: OSD nodes
    one at a time, the others ``homelab:day2.workerBatch`` at a time)
    → Kubernetes upgrade (``talosctl upgrade-k8s``)
    → config applies (control planes one after another, workers in parallel)
    → bootstrap → kubeconfig → API readiness gate → Kubernetes provider
    and, after the applies, reboots of nodes whose apply was staged, rolling as above.

Upgrades come before the applies: ``talosctl upgrade-k8s`` moves the control plane
first and the kubelets last, so no kubelet ever runs ahead of the API server, and
a new Talos version's config never reaches a node still on the old one. The
provider itself never upgrades Talos (siderolabs/terraform-provider-talos #134, #140).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import local

from components import talos_steps
from stacks.config.base import Patch
from stacks.config.cluster import NodeConfig
from stacks.config.day2 import ETCD_BACKUP_ROLE, Day2Config, seconds


def talos_patches(config: Day2Config) -> list[Patch]:
    """Talos API access for the etcd snapshot job: one role, one namespace.

    ``machine.features.kubernetesTalosAPIAccess`` lets a ``talos.dev/v1alpha1``
    ServiceAccount in an allowed namespace obtain a Talos client certificate with the
    allowed roles (Talos docs, "Talos API access from Kubernetes"). Only control
    planes serve it; the setting is ignored on workers, so every node gets the same patch.
    """
    if config.etcd_backup is None:
        return []
    access = {
        "enabled": True,
        "allowedRoles": [ETCD_BACKUP_ROLE],
        "allowedKubernetesNamespaces": [config.etcd_backup.namespace],
    }
    return [{"machine": {"features": {"kubernetesTalosAPIAccess": access}}}]


def rolling_waves(nodes: Sequence[NodeConfig], worker_batch: int) -> list[list[NodeConfig]]:
    """The order day-2 steps touch nodes in: each wave waits for the one before.

    Control planes one at a time (etcd keeps quorum), then the workers in config
    order: a node with OSD disks alone (Ceph keeps its replicas), the others
    ``worker_batch`` at a time.
    """
    waves: list[list[NodeConfig]] = [[n] for n in nodes if n.role == "controlplane"]
    batch: list[NodeConfig] = []
    for node in (n for n in nodes if n.role == "worker"):
        if node.osd_disks:
            if batch:
                waves.append(batch)
                batch = []
            waves.append([node])
            continue
        batch.append(node)
        if len(batch) == worker_batch:
            waves.append(batch)
            batch = []
    if batch:
        waves.append(batch)
    return waves


def timeouts(config: Day2Config) -> dict[str, str]:
    """The bounded waits of ``homelab:day2`` as the scripts read them (whole seconds)."""
    return {
        "HEALTH_TIMEOUT": str(seconds(config.health_timeout)),
        "UPGRADE_TIMEOUT": str(seconds(config.upgrade_timeout)),
        "CEPH_TIMEOUT": str(seconds(config.ceph_timeout)),
    }


def command(
    name: str,
    step: talos_steps.Step,
    env: Mapping[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> local.Command:
    """One step as a ``local.Command``: its scripts, its interpreter, and the environment it documents.

    The environment is checked against the step's keys (a wiring mistake fails the
    plan, not a node). The one credential a step gets goes to ``stdin`` as a Pulumi
    secret (``STDIN_SECRET`` names it), so the environment stays plain: a preview
    shows the target a step moves to (``TALOS_IMAGE``, ``KUBERNETES_VERSION``,
    ``CONFIG_HASH``) changing. No ``triggers``: pulumi-command marks them
    replaceOnChanges (pulumi-command v1.2.1 provider/pkg/provider/common/inputs.go),
    and a replaced step runs its ``create``, which touches no node. Any other input
    change runs ``update``, whose script compares its target with the one it recorded.
    """
    step.check_env(env)
    secrets = {k: v for k, v in env.items() if k in step.secret_keys}
    if len(secrets) > 1:
        raise ValueError(f"{name}: one credential per step, got {', '.join(sorted(secrets))}")
    environment = {k: v for k, v in env.items() if k not in secrets}
    stdin: pulumi.Input[str] | None = None
    for key, value in secrets.items():
        environment["STDIN_SECRET"] = key
        stdin = pulumi.Output.secret(value)
    return local.Command(
        name,
        create=step.create,
        update=step.update,
        delete=step.delete,
        interpreter=list(step.interpreter),
        environment=environment,
        stdin=stdin,
        opts=opts,
    )


@dataclass(frozen=True)
class ClusterHealthArgs:
    """Inputs of :class:`ClusterHealth`."""

    talosconfig: pulumi.Input[str]
    """A talosconfig with the control planes as endpoints (secret)."""
    control_planes: Sequence[str]
    """The first one runs the check, over every member Talos reports."""
    day2: Day2Config
    follows: Sequence[pulumi.Input[str]]
    """What the check follows: it runs again when one of these changes (the applied configs, bootstrap)."""
    depends_on: Sequence[pulumi.Resource]
    """What must run first: the CNI, without which no node is Ready, and the staged reboots."""


class ClusterHealth(pulumi.ComponentResource):
    """``talosctl health`` over every member of the cluster, with the Kubernetes checks, after the CNI.

    A resource, not the provider's ``get_health`` invoke: an invoke runs on every
    preview and ``up``, hangs ten minutes and fails while a node is down, and fails
    for good while a removed control plane is still an etcd member (DESIGN.md, "Facts
    of the real engine"). This runs only when what it follows changes.
    """

    check: local.Command

    def __init__(self, name: str, args: ClusterHealthArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:ClusterHealth", name, None, opts)
        env: dict[str, pulumi.Input[str]] = {
            "TALOSCONFIG_DATA": args.talosconfig,
            "CONTROL_PLANES": ",".join(args.control_planes),
            "HEALTH_TIMEOUT": timeouts(args.day2)["HEALTH_TIMEOUT"],
            "FOLLOWS": pulumi.Output.all(*args.follows).apply(lambda values: ",".join(map(str, values))),
        }
        self.check = command(
            f"{name}-check",
            talos_steps.health(),
            env,
            # What the check follows reaches it as plain inputs: a change runs it again.
            pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({})
