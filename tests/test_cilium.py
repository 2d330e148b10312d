"""Cilium layer: chart values, LoadBalancer pool and L2 policy, order after the Talos health gate, config errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from plan import offline
from stacks.loader import ConfigError
from tests.conftest import config_errors as errors
from tests.conftest import home_config, run_config

CHART = "kubernetes:helm.sh/v4:Chart"
POOL = "kubernetes:cilium.io/v2:CiliumLoadBalancerIPPool"
L2 = "kubernetes:cilium.io/v2alpha1:CiliumL2AnnouncementPolicy"
# Custom resources are registered as kubernetes:<group>/<version>:<Kind>; their groups
# have dots but are not Kubernetes' own (*.k8s.io) nor the Helm chart component.
CR_TYPE = re.compile(r"^kubernetes:(?P<group>[a-z0-9-]+(\.[a-z0-9-]+)+)/(?P<version>v[0-9a-z]+):(?P<kind>\w+)$")
NOT_CRS = ("helm.sh",)


def custom_resource_type(type_: str) -> re.Match[str] | None:
    """The type token's group, version and kind when it is a custom resource."""
    match = CR_TYPE.match(type_)
    if match is None or match["group"] in NOT_CRS or match["group"].endswith("k8s.io"):
        return None
    return match


def cilium_values(capture: offline.Capture) -> dict[str, Any]:
    values: dict[str, Any] = capture.by_name("cilium-chart").inputs["values"]
    return values


def with_cilium(**changes: Any) -> dict[str, Any]:
    config = home_config()
    config["homelab:cilium"].update(changes)
    return config


def test_talos_values(home: offline.Capture) -> None:
    values = cilium_values(home)
    assert values["ipam"] == {"mode": "kubernetes"}
    assert values["kubeProxyReplacement"] is True
    assert (values["k8sServiceHost"], values["k8sServicePort"]) == ("127.0.0.1", 7445)
    assert values["cgroup"] == {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"}
    assert values["bpf"]["hostLegacyRouting"] is True
    assert values["l2announcements"] == {"enabled": True}
    assert values["gatewayAPI"] == {"enabled": False}
    # Flat LAN: direct routes between nodes for the pod CIDR.
    assert values["routingMode"] == "native"
    assert values["ipv4NativeRoutingCIDR"] == "10.244.0.0/16"
    assert values["autoDirectNodeRoutes"] is True
    assert values["operator"]["replicas"] == 2


def test_hubble_certificates_are_not_made_by_the_chart(home: offline.Capture) -> None:
    # The chart's "helm" method makes new Hubble certificates on every render, so every `pulumi up`
    # would change the Secrets (cilium/cilium#36012); the CronJob method makes them once, in the cluster.
    assert cilium_values(home)["hubble"]["tls"]["auto"] == {"enabled": True, "method": "cronJob"}


def test_l2_announcements_raise_the_client_rate_limit(home: offline.Capture) -> None:
    # Every announced address is a Lease renewed every 5 s (Cilium's L2 announcements guide, "Sizing
    # client rate limit"): the home pool is a /27, 32 addresses, so 7 more requests a second than the 10.
    assert cilium_values(home)["k8sClientRateLimit"] == {"qps": 17, "burst": 34}
    bigger = with_cilium(
        loadBalancer={"blocks": [{"cidr": "10.0.10.64/26"}, {"start": "10.0.10.200", "stop": "10.0.10.203"}]}
    )
    assert cilium_values(run_config(bigger))["k8sClientRateLimit"] == {"qps": 24, "burst": 48}


def test_capabilities_are_talos_safe(home: offline.Capture) -> None:
    caps = cilium_values(home)["securityContext"]["capabilities"]
    assert set(caps) == {"ciliumAgent", "cleanCiliumState"}
    assert "SYS_MODULE" not in caps["ciliumAgent"] + caps["cleanCiliumState"]
    # What the agent still needs to program the datapath.
    assert {"NET_ADMIN", "SYS_ADMIN", "NET_RAW", "IPC_LOCK"} <= set(caps["ciliumAgent"])
    assert set(caps["cleanCiliumState"]) == {"NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"}


def test_chart_pinned_from_config_through_the_provider(home: offline.Capture) -> None:
    chart = home.by_name("cilium-chart")
    assert chart.remote
    assert chart.inputs["chart"] == "cilium"
    assert chart.inputs["version"] == home_config()["homelab:cilium"]["chart"]["version"]
    assert chart.inputs["repositoryOpts"] == {"repo": "https://helm.cilium.io"}
    assert chart.inputs["namespace"] == "kube-system"
    provider = home.by_name("kubernetes")
    for name in ("cilium-chart", "cilium-lb-pool", "cilium-l2-policy"):
        assert home.by_name(name).provider.startswith(provider.urn + "::"), name
    # kube-system exists already (and Talos exempts it from pod security): not created.
    assert not [
        r for r in home.of_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "kube-system"
    ]


def test_cilium_comes_right_after_the_api_readiness_gate(home: offline.Capture) -> None:
    """The chart's provider resolves only once the API server answers; nothing that changes with the nodes."""
    provider = home.by_name("kubernetes")
    gate = {home.by_name("home-kubeconfig").urn, home.by_name("home-api-ready").urn}
    assert set(provider.property_dependencies["kubeconfig"]) == gate
    # And nothing else sits between the gate and Cilium.
    assert home.by_name("cilium-chart").dependencies == []


APPLY = "talos:machine/configurationApply:ConfigurationApply"


def test_pool_and_l2_policy_wait_for_the_chart(home: offline.Capture) -> None:
    chart = home.by_name("cilium-chart")
    pool, policy = home.by_name("cilium-lb-pool"), home.by_name("cilium-l2-policy")
    assert pool.type == POOL and policy.type == L2
    assert pool.dependencies == [chart.urn]
    assert policy.dependencies == [chart.urn]
    assert pool.inputs["spec"] == {"blocks": [{"cidr": "10.0.10.64/27"}]}
    assert policy.inputs["spec"] == {"loadBalancerIPs": True, "externalIPs": False, "interfaces": ["^enp1s0$"]}
    component = home.by_name("cilium")
    assert {chart.parent, pool.parent, policy.parent} == {component.urn}
    assert component.type == "homelab:index:Cilium"


def test_custom_resources_match_their_crds(home: offline.Capture, schemas: Path) -> None:
    """Every custom resource the program creates validates against its CRD's schema."""
    checked = []
    for res in home.resources:
        match = custom_resource_type(res.type)
        if not match:
            continue
        schema_file = schemas / "crds" / match["group"] / f"{match['kind'].lower()}_{match['version']}.json"
        assert schema_file.is_file(), f"{res.name}: no CRD schema {schema_file.name} for {res.type}"
        body = offline.plain(res.inputs)
        jsonschema.validate(body, json.loads(schema_file.read_text()))
        checked.append(res.name)
    assert {"cilium-lb-pool", "cilium-l2-policy"} <= set(checked)


def test_crd_schema_check_catches_a_bad_block(schemas: Path) -> None:
    schema = json.loads((schemas / "crds/cilium.io/ciliumloadbalancerippool_v2.json").read_text())
    bad = {"apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool", "spec": {"blocks": [{"cdir": "x"}]}}
    with pytest.raises(jsonschema.ValidationError, match="cdir"):
        jsonschema.validate(bad, schema)


def test_variants_tunnel_range_no_l2_values_override() -> None:
    config = with_cilium(
        routingMode="tunnel",
        devices=["enp+"],
        gatewayApi=True,
        loadBalancer={"blocks": [{"start": "10.0.10.200", "stop": "10.0.10.210"}]},
        values={"bpf": {"masquerade": True}, "hubble": {"enabled": False}},
    )
    del config["homelab:cilium"]["l2Announcements"]
    capture = run_config(config)
    values = cilium_values(capture)
    assert values["routingMode"] == "tunnel" and "ipv4NativeRoutingCIDR" not in values
    assert values["devices"] == ["enp+"]
    assert values["gatewayAPI"] == {"enabled": True}
    assert values["l2announcements"] == {"enabled": False}
    # The override merges into the generated values instead of replacing them.
    assert values["bpf"] == {"hostLegacyRouting": True, "masquerade": True}
    assert values["hubble"] == {"enabled": False, "tls": {"auto": {"enabled": True, "method": "cronJob"}}}
    # Without L2 announcements there are no Leases to renew: the client keeps Cilium's default limit.
    assert "k8sClientRateLimit" not in values
    assert capture.by_name("cilium-lb-pool").inputs["spec"] == {
        "blocks": [{"start": "10.0.10.200", "stop": "10.0.10.210"}]
    }
    assert capture.of_type(L2) == []


def test_single_node_gets_one_operator() -> None:
    home = home_config()
    # Only the sections this layer needs: other layers have their own rules for a one-node lab.
    config = {key: home[key] for key in ("homelab:cluster", "homelab:cilium")}
    config["homelab:nodes"] = home["homelab:nodes"][:1]
    config["homelab:cluster"]["allowSchedulingOnControlPlanes"] = True  # the one node runs everything
    assert cilium_values(run_config(config))["operator"]["replicas"] == 1


def test_disabled_cilium_registers_nothing_and_nothing_waits_for_it() -> None:
    config = with_cilium(enabled=False)
    capture = run_config(config)
    assert [r.name for r in capture.resources if r.name.startswith("cilium")] == []
    assert capture.of_type(POOL) == [] and capture.of_type(L2) == []
    for name in ("coredns-chart", "spegel-chart"):
        assert [d for d in capture.by_name(name).dependencies if "cilium" in d] == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"loadBalancer": {"blocks": [{"cidr": "10.0.10.0/28"}]}},
            [
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.0/28 contains node k8s-0 (10.0.10.11)",
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.0/28 contains node k8s-1 (10.0.10.12)",
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.0/28 contains node k8s-2 (10.0.10.13)",
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.0/28 contains node k8s-3 (10.0.10.14)",
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.0/28 contains node k8s-4 (10.0.10.15)",
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.0/28 contains the cluster VIP (10.0.10.10)",
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.0/28 contains the gateway (10.0.10.1)",
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.0/28 contains the network address (10.0.10.0)",
            ],
        ),
        (
            {"loadBalancer": {"blocks": [{"cidr": "10.0.10.64/27"}, {"start": "10.0.10.15", "stop": "10.0.10.15"}]}},
            ["homelab:cilium.loadBalancer.blocks[1]: 10.0.10.15-10.0.10.15 contains node k8s-4 (10.0.10.15)"],
        ),
        (
            {"loadBalancer": {"blocks": [{"cidr": "192.168.1.0/28"}]}},
            ["homelab:cilium.loadBalancer.blocks[0]: 192.168.1.0/28 is outside cluster.nodeNetwork 10.0.10.0/24"],
        ),
        (
            {"loadBalancer": {"blocks": [{"start": "10.0.10.250", "stop": "10.0.11.5"}]}},
            [
                "homelab:cilium.loadBalancer.blocks[0]: 10.0.10.250-10.0.11.5 "
                "is outside cluster.nodeNetwork 10.0.10.0/24"
            ],
        ),
        (
            {"loadBalancer": {"blocks": [{"cidr": "10.0.10.64/27"}, {"cidr": "10.0.10.80/28"}]}},
            ["homelab:cilium.loadBalancer.blocks[1]: 10.0.10.80/28 overlaps blocks[0] (10.0.10.64/27)"],
        ),
        (
            {"loadBalancer": {"blocks": [{"start": "10.0.10.90", "stop": "10.0.10.80"}]}},
            ["homelab:cilium.loadBalancer.blocks[0]: stop 10.0.10.80 comes before start 10.0.10.90"],
        ),
        (
            {"loadBalancer": {"blocks": [{"cidr": "10.0.10.64/27", "start": "10.0.10.70", "stop": "10.0.10.71"}]}},
            ["homelab:cilium.loadBalancer.blocks[0]: give either cidr or start and stop, not both"],
        ),
        (
            {"loadBalancer": None},
            ["homelab:cilium.l2Announcements: needs loadBalancer.blocks (addresses to announce)"],
        ),
        (
            {"chart": {"chart": "cilium", "repository": "https://helm.cilium.io", "version": "1.19"}},
            ["homelab:cilium.chart.version: '1.19' is not an exact chart version (X.Y.Z, no ranges)"],
        ),
        (
            {"chart": {"chart": "cilium", "repository": "https://helm.cilium.io", "version": "~1.19.1"}},
            ["homelab:cilium.chart.version: '~1.19.1' is not an exact chart version (X.Y.Z, no ranges)"],
        ),
        (
            {"operatorReplicas": 7},
            ["homelab:cilium.operatorReplicas: 7 replicas need as many nodes (one per node), this stack has 6"],
        ),
        ({"routingMode": "bgp"}, None),
        ({"loadBalancr": {}}, ["homelab:cilium.loadBalancr: unknown key (check the spelling)"]),
    ],
    ids=[
        "pool-over-nodes",
        "range-on-a-node",
        "pool-outside-network",
        "range-leaves-network",
        "blocks-overlap",
        "range-reversed",
        "cidr-and-range",
        "l2-without-pool",
        "version-not-exact",
        "version-range",
        "operator-replicas",
        "routing-mode",
        "typo",
    ],
)
def test_bad_config_gives_one_line_per_problem(changes: dict[str, Any], expected: list[str] | None) -> None:
    config = with_cilium(**changes)
    if changes.get("loadBalancer", "") is None:
        del config["homelab:cilium"]["loadBalancer"]
    lines = errors(config)
    if expected is None:
        assert len(lines) == 1 and lines[0].startswith("homelab:cilium.routingMode: ")
    else:
        assert lines == expected


def test_bad_config_registers_nothing() -> None:
    with pytest.raises(ConfigError):
        run_config(with_cilium(loadBalancer={"blocks": [{"cidr": "10.0.10.8/29"}]}))
