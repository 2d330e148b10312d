"""The contract between what Pulumi builds (the home stack) and what the Flux tree expects of it.

The tree names objects that only exist because a Pulumi layer creates them; a
rename on one side without the other breaks the cluster after deploy, so it
fails here instead.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from plan import offline, report, yaml12
from tests.conftest import ROOT, home_config

SETTINGS = ROOT / "kubernetes" / "flux" / "cluster" / "cluster-settings.yaml"


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    data: dict[str, str] = yaml12.load(SETTINGS.read_text())["data"]
    return data


def created(capture: offline.Capture, kind: str) -> dict[str, dict[str, Any]]:
    """Objects of a Kubernetes kind the program creates, by metadata.name."""
    out = {}
    for r in capture.resources:
        if r.type.startswith("kubernetes:") and r.type.endswith(f":{kind}"):
            out[r.inputs["metadata"]["name"]] = r.inputs
    return out


def test_gateway_addresses_are_in_the_load_balancer_pool(settings: dict[str, str]) -> None:
    blocks = home_config()["homelab:cilium"]["loadBalancer"]["blocks"]
    pools = [ipaddress.IPv4Network(b["cidr"]) for b in blocks if "cidr" in b]
    ranges = [(ipaddress.IPv4Address(b["start"]), ipaddress.IPv4Address(b["stop"])) for b in blocks if "start" in b]
    for key in ("GATEWAY_INTERNAL_IP", "GATEWAY_EXTERNAL_IP"):
        address = ipaddress.IPv4Address(settings[key])
        inside = any(address in p for p in pools) or any(lo <= address <= hi for lo, hi in ranges)
        assert inside, f"{key} {address} is outside homelab:cilium.loadBalancer of Pulumi.home.yaml"


def test_storage_class_exists(home: offline.Capture, settings: dict[str, str]) -> None:
    classes = created(home, "StorageClass")
    assert settings["STORAGE_CLASS"] in classes
    sc = classes[settings["STORAGE_CLASS"]]
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


def test_cluster_issuer_exists(home: offline.Capture, settings: dict[str, str]) -> None:
    assert settings["CLUSTER_ISSUER"] in created(home, "ClusterIssuer")


def test_public_gateway_record_matches_the_tree(settings: dict[str, str]) -> None:
    """external-dns points public routes at external.<domain>; Pulumi's DNS layer owns that record."""
    dns = home_config()["homelab:dns"]
    assert dns["zoneName"] == settings["PUBLIC_DOMAIN"]
    hostnames = {g["hostname"] for g in dns["gatewayRecords"]}
    assert f"external.{settings['PUBLIC_DOMAIN']}" in hostnames


def test_flux_syncs_a_path_that_exists(home: offline.Capture) -> None:
    (instance,) = [r for r in home.resources if r.type.endswith(":FluxInstance")]
    path = instance.inputs["spec"]["sync"]["path"]
    assert (ROOT / path / "kustomization.yaml").is_file()


def test_tree_does_not_own_pulumi_namespaces(home: offline.Capture) -> None:
    """A namespace created by Pulumi and declared in the tree would be owned twice (and pruned by Flux)."""
    pulumi_namespaces = set(created(home, "Namespace"))
    declared = set()
    for path in Path(ROOT / "kubernetes").rglob("*.yaml"):
        for doc in path.read_text().split("\n---"):
            obj = yaml12.load(doc) if doc.strip() else None
            if isinstance(obj, dict) and obj.get("kind") == "Namespace":
                declared.add(obj["metadata"]["name"])
    assert pulumi_namespaces, "the home stack creates namespaces"
    assert pulumi_namespaces & declared == set()


def test_talos_api_access_allows_what_the_backup_job_asks_for(home: offline.Capture) -> None:
    # The tree's talos-backup app holds a talos.dev ServiceAccount; Talos issues its certificate only
    # for a namespace and roles machine.features.kubernetesTalosAPIAccess allows, on the control planes.
    apps = ROOT / "kubernetes" / "apps"
    namespace, account = next(
        # The tree's convention (checked by make validate): apps/<namespace>/<app>/, ks.yaml's targetNamespace.
        (path.relative_to(apps).parts[0], doc)
        for path in apps.rglob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("apiVersion") == "talos.dev/v1alpha1"
    )
    for node, patches in report.sent_patches(home).items():
        access = [
            p["machine"]["features"]["kubernetesTalosAPIAccess"]
            for p in patches
            if "kubernetesTalosAPIAccess" in p.get("machine", {}).get("features", {})
        ]
        assert access == [
            {
                "enabled": True,
                "allowedRoles": account["spec"]["roles"],
                "allowedKubernetesNamespaces": [namespace],
            }
        ], node
