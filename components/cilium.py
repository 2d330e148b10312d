"""Cilium: the CNI and kube-proxy replacement, plus LoadBalancer addresses for a flat home LAN.

Talos facts this follows (https://www.talos.dev/v1.13/kubernetes-guides/network/deploying-cilium/):
- Talos runs no CNI (``cni.name: none``) and no kube-proxy; Cilium reaches the API
  server through KubePrism on every node (127.0.0.1:7445), not through the VIP.
- Talos mounts cgroup v2 and bpffs itself (``cgroup.autoMount.enabled: false``) and
  does not let workloads load kernel modules, so SYS_MODULE is dropped from the
  agent's capabilities.
- From Talos 1.8 on, ``bpf.hostLegacyRouting: true`` is needed, or DNS to the host
  resolver breaks.
- Nodes stay NotReady until Cilium runs, and Talos reboots a node that has had no
  CNI for about ten minutes: this layer is the first thing after the API readiness gate
  (the Kubernetes provider's kubeconfig only resolves after it).

Cilium's CRDs are not chart templates: the operator registers them when it starts,
and every agent waits until all of them exist before it reports ready
(cilium/cilium, "Waiting until all Cilium CRDs are available"). The chart's
children are awaited (helm.v4 waits for the DaemonSet and Deployment), so the
custom resources here, which depend on the chart, are created once the CRDs exist.
If awaiting is ever skipped, pulumi-kubernetes still retries a create that fails
with "no matches for kind" a few times before failing (pulumi/pulumi-kubernetes
#262, #1446); a second ``pulumi up`` then finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as k8s_helpers
from components.talos_patches import KUBEPRISM_PORT
from stacks.config.network import CiliumConfig

# The agent's default capabilities minus SYS_MODULE (Talos forbids loading modules
# from workloads); the lists the Talos Cilium guide passes to the chart.
AGENT_CAPABILITIES = (
    "CHOWN",
    "KILL",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "SYS_ADMIN",
    "SYS_RESOURCE",
    "DAC_OVERRIDE",
    "FOWNER",
    "SETGID",
    "SETUID",
)
CLEAN_STATE_CAPABILITIES = ("NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE")

# Cilium's client-side limit towards the API server (chart k8sClientRateLimit;
# defaults 10 QPS, burst 20). With L2 announcements every announced address is a
# Lease the elected node renews every leaseRenewDeadline (5 s by default): Cilium's
# L2 announcements guide ("Sizing client rate limit", added with cilium/cilium#26711)
# says to raise the limit by that many requests per second, or leases expire and the
# addresses flap between nodes.
DEFAULT_CLIENT_QPS = 10
LEASE_RENEW_SECONDS = 5

LB_POOL_NAME = "lan"
L2_POLICY_NAME = "lan"


def chart_values(config: CiliumConfig, pod_subnet: IPv4Network, node_count: int) -> dict[str, Any]:
    """Chart values from the typed config, with the section's ``values`` merged over them."""
    values: dict[str, Any] = {
        "ipam": {"mode": "kubernetes"},
        "kubeProxyReplacement": True,
        "k8sServiceHost": "127.0.0.1",
        "k8sServicePort": KUBEPRISM_PORT,
        "cgroup": {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"},
        "securityContext": {
            "capabilities": {
                "ciliumAgent": list(AGENT_CAPABILITIES),
                "cleanCiliumState": list(CLEAN_STATE_CAPABILITIES),
            }
        },
        "bpf": {"hostLegacyRouting": True},
        "operator": {"replicas": config.operator_replicas_for(node_count), "rollOutPods": True},
        # Restart agents when their ConfigMap changes, so a values change takes effect.
        "rollOutCiliumPods": True,
        "l2announcements": {"enabled": config.l2_announcements is not None},
        "gatewayAPI": {"enabled": config.gateway_api},
        # Hubble's TLS certificates made by the chart ("helm" method) are new on every
        # render, so every `pulumi up` would roll them (cilium/cilium#36012): a CronJob
        # in the cluster makes and renews them instead.
        "hubble": {"tls": {"auto": {"enabled": True, "method": "cronJob"}}},
    }
    if config.l2_announcements is not None:
        values["k8sClientRateLimit"] = client_rate_limit(config)
    if config.routing_mode == "native":
        # All nodes share one L2 segment: each installs direct routes to the others' pod CIDRs.
        values |= {
            "routingMode": "native",
            "autoDirectNodeRoutes": True,
            "ipv4NativeRoutingCIDR": str(pod_subnet),
        }
    else:
        values |= {"routingMode": "tunnel", "tunnelProtocol": "vxlan"}
    if config.devices:
        values["devices"] = list(config.devices)
    return k8s_helpers.deep_merge(values, config.values)


def client_rate_limit(config: CiliumConfig) -> dict[str, int]:
    """``k8sClientRateLimit`` for L2 announcements: the default plus one Lease renewal per pool address."""
    blocks = config.load_balancer.blocks if config.load_balancer is not None else ()
    addresses = sum(int(b.last) - int(b.first) + 1 for b in blocks)
    qps = DEFAULT_CLIENT_QPS + -(-addresses // LEASE_RENEW_SECONDS)
    return {"qps": qps, "burst": 2 * qps}


def lb_pool_spec(config: CiliumConfig) -> dict[str, Any] | None:
    """``CiliumLoadBalancerIPPool.spec`` for the configured blocks, or None without a pool."""
    if config.load_balancer is None:
        return None
    return {"blocks": [block.spec() for block in config.load_balancer.blocks]}


def l2_policy_spec(config: CiliumConfig) -> dict[str, Any] | None:
    """``CiliumL2AnnouncementPolicy.spec``: answer ARP for LoadBalancer addresses, or None."""
    if config.l2_announcements is None:
        return None
    spec: dict[str, Any] = {"loadBalancerIPs": True, "externalIPs": False}
    if config.l2_announcements.interfaces:
        spec["interfaces"] = list(config.l2_announcements.interfaces)
    return spec


@dataclass(frozen=True)
class CiliumArgs:
    """Inputs of :class:`Cilium`: its config section, the pod CIDR (native routing) and the node count."""

    config: CiliumConfig
    pod_subnet: IPv4Network
    node_count: int


class Cilium(pulumi.ComponentResource):
    """Cilium from its chart; LB IPAM pool and L2 announcement policy when configured.

    ``opts.provider`` (the cluster's Kubernetes provider) is passed to every child.
    Layers that need a working pod network depend on :attr:`ready`.
    """

    chart: k8s.helm.v4.Chart
    """The Cilium chart (agents, operator); ready once every agent runs and the CRDs exist."""
    ready: list[pulumi.Resource]
    """What later layers wait for: the chart (not the pool or policy, which nothing else needs)."""
    lb_pool: k8s.apiextensions.CustomResource | None
    l2_policy: k8s.apiextensions.CustomResource | None

    def __init__(self, name: str, args: CiliumArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:Cilium", name, None, opts)
        config = args.config
        provider = opts.provider if opts else None

        ns = k8s_helpers.layer_namespace(
            f"{name}-namespace",
            config.namespace,
            "privileged",
            pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.chart = k8s_helpers.chart(
            f"{name}-chart",
            config.chart,
            config.namespace,
            chart_values(config, args.pod_subnet, args.node_count),
            pulumi.ResourceOptions(parent=self, provider=provider),
            namespace=ns,
        )
        self.ready = [self.chart]

        # CRs need Cilium's CRDs, which exist once the chart's agents are ready (module docstring).
        after_crds = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.chart])
        self.lb_pool = None
        pool = lb_pool_spec(config)
        if pool is not None:
            self.lb_pool = k8s.apiextensions.CustomResource(
                f"{name}-lb-pool",
                api_version="cilium.io/v2",
                kind="CiliumLoadBalancerIPPool",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=LB_POOL_NAME),
                spec=pool,
                opts=after_crds,
            )
        self.l2_policy = None
        policy = l2_policy_spec(config)
        if policy is not None:
            # v2alpha1 is the only version of this CRD (Cilium 1.19).
            self.l2_policy = k8s.apiextensions.CustomResource(
                f"{name}-l2-policy",
                api_version="cilium.io/v2alpha1",
                kind="CiliumL2AnnouncementPolicy",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=L2_POLICY_NAME),
                spec=policy,
                opts=after_crds,
            )
        self.register_outputs({})
