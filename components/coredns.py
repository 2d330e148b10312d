"""CoreDNS from its chart (coredns/helm), replacing the CoreDNS that Talos deploys.

Talos deploys CoreDNS itself unless ``cluster.coreDNS.disabled: true``; running
both would fight over the ``kube-dns`` Service. When this layer is enabled its
Talos patch disables Talos's copy, and the chart takes over the same contract:
Service ``kube-dns`` in kube-system with label ``k8s-app: kube-dns`` at the
address every kubelet sends queries to (the 10th of the service subnet, see
:func:`stacks.config.network.cluster_dns_ip`).

CoreDNS needs pod networking, so its chart waits for Cilium (``opts.depends_on``).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as k8s_helpers
from stacks.config.base import Patch
from stacks.config.network import CorednsConfig

# Talos's default cluster domain (cluster.network.dnsDomain); this stack does not change it.
CLUSTER_DOMAIN = "cluster.local"


def talos_patches(config: CorednsConfig | None) -> list[Patch]:
    """Talos patches this layer contributes: turn off Talos's own CoreDNS when the chart replaces it."""
    if config is None or not config.enabled:
        return []
    return [{"cluster": {"coreDNS": {"disabled": True}}}]


def chart_values(config: CorednsConfig, dns_ip: IPv4Address) -> dict[str, Any]:
    """Chart values from the typed config, with the section's ``values`` merged over them."""
    values: dict[str, Any] = {
        "fullnameOverride": "coredns",
        # The names and label the rest of the cluster expects of cluster DNS.
        "k8sAppLabelOverride": "kube-dns",
        "service": {"name": "kube-dns", "clusterIP": str(dns_ip)},
        "serviceAccount": {"create": True},
        "replicaCount": config.replicas,
        "priorityClassName": "system-cluster-critical",
        # Control planes are tainted unless they run workloads; DNS must run on a
        # cluster of control planes only too.
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                # The chart labels its pods k8s-app=<k8sAppLabelOverride>.
                "labelSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "servers": [
            {
                "zones": [{"zone": "."}],
                "port": 53,
                "plugins": [
                    {"name": "errors"},
                    {"name": "health", "configBlock": "lameduck 5s"},
                    {"name": "ready"},
                    {
                        "name": "kubernetes",
                        "parameters": f"{CLUSTER_DOMAIN} in-addr.arpa ip6.arpa",
                        "configBlock": "pods insecure\nfallthrough in-addr.arpa ip6.arpa\nttl 30",
                    },
                    {"name": "prometheus", "parameters": "0.0.0.0:9153"},
                    # The node's resolver (Talos host DNS), which forwards to homelab:cluster.nameservers.
                    {"name": "forward", "parameters": ". /etc/resolv.conf"},
                    {"name": "cache", "parameters": 30},
                    {"name": "loop"},
                    {"name": "reload"},
                    {"name": "loadbalance"},
                ],
            }
        ],
    }
    return k8s_helpers.deep_merge(values, config.values)


@dataclass(frozen=True)
class CoreDNSArgs:
    """Inputs of :class:`CoreDNS`: its config section and the cluster DNS address."""

    config: CorednsConfig
    dns_ip: IPv4Address


class CoreDNS(pulumi.ComponentResource):
    """CoreDNS from its chart at the kubelets' clusterDNS address.

    ``opts.provider`` goes to every child; ``opts.depends_on`` (Cilium) goes to the chart.
    """

    chart: k8s.helm.v4.Chart
    dns_ip: str
    """The DNS Service's cluster IP."""

    def __init__(self, name: str, args: CoreDNSArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:CoreDNS", name, None, opts)
        config = args.config
        provider = opts.provider if opts else None
        depends_on = opts.depends_on if opts else None
        self.dns_ip = str(args.dns_ip)

        ns = k8s_helpers.layer_namespace(
            f"{name}-namespace", config.namespace, "baseline", pulumi.ResourceOptions(parent=self, provider=provider)
        )
        self.chart = k8s_helpers.chart(
            f"{name}-chart",
            config.chart,
            config.namespace,
            chart_values(config, args.dns_ip),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=depends_on),
            namespace=ns,
        )
        self.register_outputs({"dnsIp": self.dns_ip})
