"""CoreDNS and Spegel: chart values, their Talos patches, order after Cilium, switching them off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components import talos_patches
from plan import offline, report
from stacks import loader
from tests.conftest import config_errors as errors
from tests.conftest import home_config, run_config
from tests.talos_schema import validate_patch

CRI_PART = "/etc/cri/conf.d/20-customization.part"


def node_docs(capture: offline.Capture) -> dict[str, list[dict[str, Any]]]:
    """Patch documents the program sent to Talos, per host name."""
    return report.sent_patches(capture)


def merged(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return talos_patches.merged(docs)[0]


def cri_files(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in config.get("machine", {}).get("files", []) if f["path"] == CRI_PART]


def test_coredns_takes_the_kubelet_cluster_dns_address(home: offline.Capture) -> None:
    chart = home.by_name("coredns-chart")
    values = chart.inputs["values"]
    # Talos points every kubelet at the 10th address of the service subnet (10.96.0.0/12).
    assert values["service"] == {"name": "kube-dns", "clusterIP": "10.96.0.10"}
    assert values["k8sAppLabelOverride"] == "kube-dns"
    assert values["replicaCount"] == 2
    assert chart.inputs["namespace"] == "kube-system"
    assert chart.inputs["repositoryOpts"] == {"repo": "https://coredns.github.io/helm"}
    assert chart.inputs["version"] == home_config()["homelab:coredns"]["chart"]["version"]
    kubernetes = next(p for p in values["servers"][0]["plugins"] if p["name"] == "kubernetes")
    assert kubernetes["parameters"].startswith("cluster.local ")


def test_coredns_address_follows_the_service_subnet() -> None:
    config = home_config()
    config["homelab:cluster"]["serviceSubnet"] = "172.16.0.0/16"
    config["homelab:coredns"]["replicas"] = 3
    config["homelab:coredns"]["values"] = {"service": {"annotations": {"a": "b"}}}
    values = run_config(config).by_name("coredns-chart").inputs["values"]
    assert values["service"] == {"name": "kube-dns", "clusterIP": "172.16.0.10", "annotations": {"a": "b"}}
    assert values["replicaCount"] == 3


def test_spegel_values_namespace_and_oci_chart(home: offline.Capture) -> None:
    chart = home.by_name("spegel-chart")
    assert chart.inputs["values"]["spegel"]["containerdRegistryConfigPath"] == "/etc/cri/conf.d/hosts"
    assert "mirroredRegistries" not in chart.inputs["values"]["spegel"]  # empty: all registries
    assert chart.inputs["chart"] == "oci://ghcr.io/spegel-org/helm-charts/spegel"
    assert "repositoryOpts" not in chart.inputs
    ns = home.by_name("spegel-namespace")
    assert ns.inputs["metadata"]["name"] == "spegel" == chart.inputs["namespace"]
    # hostPath mounts and the containerd socket: baseline would reject the pods.
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    # A plain string, so preview renders the chart's objects; the chart still waits for the Namespace.
    assert not chart.property_dependencies.get("namespace")
    assert ns.urn in chart.dependencies


def test_both_wait_for_cilium_not_for_each_other(home: offline.Capture) -> None:
    cilium = home.by_name("cilium-chart").urn
    coredns, spegel = home.by_name("coredns-chart"), home.by_name("spegel-chart")
    assert cilium in coredns.dependencies and cilium in spegel.dependencies
    coredns_family = {r.urn for r in home.resources if r.name.startswith("coredns")}
    spegel_family = {r.urn for r in home.resources if r.name.startswith("spegel")}
    assert not coredns_family & set(spegel.dependencies)
    assert not spegel_family & set(coredns.dependencies)
    # The namespace needs only the API server, not the CNI.
    assert home.by_name("spegel-namespace").dependencies == []
    provider = home.by_name("kubernetes").urn
    for res in (coredns, spegel, home.by_name("spegel-namespace")):
        assert res.provider.startswith(provider + "::"), res.name
    assert home.by_name("coredns").type == "homelab:index:CoreDNS"
    assert home.by_name("spegel").type == "homelab:index:Spegel"


def test_every_node_gets_both_talos_patches(home: offline.Capture) -> None:
    by_host = node_docs(home)
    assert len(by_host) == 6
    for host, docs in by_host.items():
        config = merged(docs)
        assert config["cluster"]["coreDNS"] == {"disabled": True}, host
        (part,) = cri_files(config)
        assert part["op"] == "create"
        assert part["content"].splitlines() == [
            '[plugins."io.containerd.cri.v1.images"]',
            "  discard_unpacked_layers = false",
        ]


def test_layer_patches_are_schema_valid(home: offline.Capture, schemas: Path) -> None:
    docs = next(iter(node_docs(home).values()))
    layer_docs = [d for d in docs if "coreDNS" in d.get("cluster", {}) or cri_files(d)]
    assert len(layer_docs) == 2
    assert [line for doc in layer_docs for line in validate_patch(doc)] == []
    # The check would notice a misspelled key in the same place.
    assert validate_patch({"cluster": {"coreDNS": {"disable": True}}}) != []


@pytest.mark.parametrize("how", ["disabled", "absent"])
def test_switched_off_layers_leave_no_resources_and_no_patches(how: str) -> None:
    config = home_config()
    if how == "disabled":
        config["homelab:coredns"]["enabled"] = False
        config["homelab:spegel"]["enabled"] = False
    else:
        del config["homelab:coredns"], config["homelab:spegel"]
    capture = run_config(config)
    names = {r.name for r in capture.resources}
    assert not {n for n in names if n.startswith(("coredns", "spegel"))}
    assert "cilium-chart" in names
    for host, docs in node_docs(capture).items():
        config_doc = merged(docs)
        assert "coreDNS" not in config_doc.get("cluster", {}), host
        assert cri_files(config_doc) == [], host


def test_one_off_the_other_on() -> None:
    config = home_config()
    config["homelab:coredns"]["enabled"] = False
    config["homelab:spegel"]["mirroredRegistries"] = ["https://ghcr.io", "https://docker.io"]
    capture = run_config(config)
    assert capture.of_type("homelab:index:CoreDNS") == []
    values = capture.by_name("spegel-chart").inputs["values"]
    assert values["spegel"]["mirroredRegistries"] == ["https://ghcr.io", "https://docker.io"]
    for docs in node_docs(capture).values():
        config_doc = merged(docs)
        assert "coreDNS" not in config_doc["cluster"] and len(cri_files(config_doc)) == 1


def test_service_subnet_without_a_tenth_address() -> None:
    config = home_config()
    config["homelab:cluster"]["serviceSubnet"] = "10.96.0.0/29"
    assert errors(config) == [
        "homelab:coredns: cluster.serviceSubnet 10.96.0.0/29 has no 10th address for the DNS Service"
    ]
    config["homelab:coredns"]["enabled"] = False
    assert loader.parse({k: json.dumps(v) for k, v in config.items()}).coredns is not None


@pytest.mark.parametrize(
    ("section", "change", "expected"),
    [
        (
            "homelab:spegel",
            {"chart": {"chart": "oci://ghcr.io/spegel-org/helm-charts/spegel", "version": "latest"}},
            "homelab:spegel.chart.version: 'latest' is not an exact chart version (X.Y.Z, no ranges)",
        ),
        ("homelab:spegel", {"mirroredRegistries": [""]}, "homelab:spegel.mirroredRegistries[0]: "),
        ("homelab:coredns", {"replicas": 0}, "homelab:coredns.replicas: "),
        ("homelab:coredns", {"serviceIp": "10.96.0.53"}, "homelab:coredns.serviceIp: unknown key (check the spelling)"),
    ],
)
def test_bad_sections(section: str, change: dict[str, Any], expected: str) -> None:
    config = home_config()
    config[section].update(change)
    (line,) = errors(config)
    assert line.startswith(expected)


def test_replicas_spread_over_the_pods_the_chart_labels(home: offline.Capture) -> None:
    values = home.by_name("coredns-chart").inputs["values"]
    (spread,) = values["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == {"k8s-app": values["k8sAppLabelOverride"]}


def test_releases_are_named_after_their_charts(home: offline.Capture) -> None:
    """helm.v4 would otherwise name the release after the resource (cilium-chart) in labels and object names."""
    releases = {r.name: r.inputs["name"] for r in home.of_type("kubernetes:helm.sh/v4:Chart")}
    assert releases == {
        "cilium-chart": "cilium",
        "coredns-chart": "coredns",
        "spegel-chart": "spegel",
        "cert-manager-chart": "cert-manager",
        "rook-operator": "rook-ceph",
        "flux-operator": "flux-operator",
    }
