"""Rook-Ceph layer: operator → protected CephCluster on the OSD disks → pool → StorageClass; config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from plan import offline
from tests.conftest import config_errors as parse_errors
from tests.conftest import generated_nodes, home_config, run_config
from tests.conftest import parse_config as parse

CLUSTER = "kubernetes:ceph.rook.io/v1:CephCluster"
POOL = "kubernetes:ceph.rook.io/v1:CephBlockPool"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"


def names(capture: offline.Capture, urns: list[str]) -> set[str]:
    by_urn = capture.by_urn()
    return {by_urn[u].name for u in urns}


def expected_storage_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the CephCluster must list: each node with OSD disks, its disks by path, in inventory order."""
    return [{"name": n["name"], "devices": [{"name": d} for d in n["osdDisks"]]} for n in nodes if n.get("osdDisks")]


def test_namespace_is_privileged(home: offline.Capture) -> None:
    ns = home.by_name("rook-namespace")
    assert ns.inputs["metadata"]["name"] == "rook-ceph"
    labels = ns.inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_operator_chart_from_config_after_cilium(home: offline.Capture) -> None:
    section = home_config()["homelab:rook"]
    chart = home.by_name("rook-operator")
    assert (chart.inputs["chart"], chart.inputs["version"]) == (section["chart"]["chart"], section["chart"]["version"])
    assert chart.inputs["repositoryOpts"]["repo"] == section["chart"]["repository"]
    assert chart.inputs["values"]["crds"] == {"enabled": True}
    assert chart.inputs["namespace"] == "rook-ceph"
    assert names(home, chart.dependencies) == {"cilium-chart", "rook-namespace"}


def test_cluster_is_protected_and_waits_for_the_operator(home: offline.Capture) -> None:
    (cluster,) = home.of_type(CLUSTER)
    assert cluster.protect is True
    assert "rook-operator" in names(home, cluster.dependencies)
    assert cluster.inputs["metadata"] == {"name": "rook-ceph", "namespace": "rook-ceph"}


def test_storage_nodes_match_the_inventory(home: offline.Capture) -> None:
    config = home_config()
    spec = home.by_name("rook-cluster").inputs["spec"]
    storage = spec["storage"]
    assert storage["useAllNodes"] is False
    assert storage["useAllDevices"] is False
    assert storage["nodes"] == expected_storage_nodes(config["homelab:nodes"])
    assert [n["name"] for n in storage["nodes"]] == ["k8s-0", "k8s-1", "k8s-2"]
    for node in storage["nodes"]:
        for device in node["devices"]:
            assert device["name"].startswith("/dev/disk/by-id/")
    assert spec["mon"] == {"count": 3, "allowMultiplePerNode": False}
    assert spec["cephVersion"]["image"] == config["homelab:rook"]["cephImage"]
    # OSD disks sit on control planes in the home lab: the daemons must tolerate their taint.
    tolerations = spec["placement"]["all"]["tolerations"]
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} in tolerations


def test_pool_and_default_storage_class(home: offline.Capture) -> None:
    pool = home.by_name("rook-pool")
    assert pool.type == POOL
    assert pool.inputs["spec"] == {"failureDomain": "host", "replicated": {"size": 3, "requireSafeReplicaSize": True}}
    assert names(home, pool.dependencies) >= {"rook-operator", "rook-cluster"}
    sc = home.by_name("rook-storageclass")
    assert sc.type == STORAGE_CLASS
    assert sc.inputs["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert sc.inputs["provisioner"] == "rook-ceph.rbd.csi.ceph.com"
    assert names(home, sc.dependencies) == {"rook-pool"}
    params = sc.inputs["parameters"]
    assert params["clusterID"] == "rook-ceph"
    assert params["pool"] == pool.inputs["metadata"]["name"]
    assert params["csi.storage.k8s.io/provisioner-secret-name"] == "rook-csi-rbd-provisioner"
    assert params["csi.storage.k8s.io/controller-expand-secret-name"] == "rook-csi-rbd-provisioner"
    assert params["csi.storage.k8s.io/node-stage-secret-name"] == "rook-csi-rbd-node"
    for key, value in params.items():
        if key.endswith("-secret-namespace"):
            assert value == "rook-ceph", key
    assert "mounter" not in params, "krbd, not rbd-nbd: the nodes need no nbd module"
    assert sc.inputs["allowVolumeExpansion"] is True


def test_children_use_the_cluster_provider_and_the_component(home: offline.Capture) -> None:
    provider = home.by_name("kubernetes")
    component = home.by_name("rook")
    assert component.type == "homelab:index:Rook"
    kids = [r for r in home.resources if r.parent == component.urn]
    assert len(kids) == 5
    for res in kids:
        assert res.provider.startswith(provider.urn + "::"), res.name


def test_custom_resources_match_their_crds(home: offline.Capture, schemas: Path) -> None:
    for type_, schema_file in ((CLUSTER, "cephcluster_v1.json"), (POOL, "cephblockpool_v1.json")):
        schema = json.loads((schemas / "crds/ceph.rook.io" / schema_file).read_text())
        (res,) = home.of_type(type_)
        body = offline.plain(res.inputs)
        jsonschema.validate(body, schema)
        body["spec"]["storage" if type_ == CLUSTER else "replicated"]["sise"] = 3
        with pytest.raises(jsonschema.ValidationError, match="sise"):
            jsonschema.validate(body, schema)


def test_disabled_layer_registers_nothing() -> None:
    config = home_config()
    config["homelab:rook"]["enabled"] = False
    capture = run_config(config)
    assert not [r for r in capture.resources if r.name.startswith("rook")]
    assert not capture.of_type(STORAGE_CLASS)
    assert capture.by_name("cert-manager-chart"), "the other layers stay"


def test_single_node_lab_without_rook_plans() -> None:
    config = home_config()
    del config["homelab:rook"]
    node = generated_nodes(1, 0)[0]
    del node["osdDisks"]
    config["homelab:nodes"] = [node]
    config["homelab:cluster"]["allowSchedulingOnControlPlanes"] = True  # the one node runs everything
    capture = run_config(config)
    assert not capture.of_type(CLUSTER)


def test_larger_inventory_and_two_replicas() -> None:
    """Every node with osdDisks is an OSD host; a smaller pool is fine when asked for explicitly."""
    nodes = generated_nodes(3, 4)
    nodes[4]["osdDisks"].append("/dev/disk/by-id/nvme-osd-4b")
    for node in nodes[5:]:
        del node["osdDisks"]
    config = home_config()
    config["homelab:nodes"] = nodes
    config["homelab:rook"]["pool"] = {"replicas": 2, "name": "fast"}
    config["homelab:rook"]["monCount"] = 5
    capture = run_config(config)
    spec = capture.by_name("rook-cluster").inputs["spec"]
    assert spec["storage"]["nodes"] == expected_storage_nodes(nodes)
    assert len(spec["storage"]["nodes"]) == 5
    assert spec["mon"]["count"] == 5
    assert capture.by_name("rook-pool").inputs["spec"]["replicated"]["size"] == 2
    assert capture.by_name("rook-storageclass").inputs["parameters"]["pool"] == "fast"


def with_osd_hosts(count: int) -> dict[str, Any]:
    """home config with OSD disks on the first ``count`` nodes only."""
    config = home_config()
    for i, node in enumerate(config["homelab:nodes"]):
        if i >= count:
            node.pop("osdDisks", None)
    return config


def test_fewer_than_three_osd_hosts_need_explicit_replicas() -> None:
    config = with_osd_hosts(2)
    del config["homelab:rook"]["pool"]
    assert parse_errors(config) == [
        "homelab:rook.pool.replicas: 3 replicas need at least 3 nodes with osdDisks, found 2 (k8s-0, k8s-1); "
        "lower replicas explicitly for a smaller lab"
    ]
    config["homelab:rook"]["pool"] = {"replicas": 2}
    rook = parse(config).rook
    assert rook is not None and rook.pool.replicas == 2


def test_single_replica_disables_the_safety_check() -> None:
    config = with_osd_hosts(1)
    config["homelab:rook"].update(pool={"replicas": 1}, monCount=1, mgrCount=1)
    spec = run_config(config).by_name("rook-pool").inputs["spec"]
    assert spec["replicated"] == {"size": 1, "requireSafeReplicaSize": False}


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            {"pool": {"replicas": 4}},
            "homelab:rook.pool.replicas: 4 replicas need at least 4 nodes with osdDisks, found 3 "
            "(k8s-0, k8s-1, k8s-2); lower replicas or add OSD disks",
        ),
        ({"monCount": 4}, "homelab:rook.monCount: 4 is even; use 1, 3 or 5 (an even count adds no fault tolerance)"),
        ({"monCount": 7}, "homelab:rook.monCount: 7 mons need 7 nodes (one each), found 6"),
        ({"pool": {"replicas": 0}}, "homelab:rook.pool.replicas: Input should be greater than or equal to 1 (got 0)"),
        ({"cephImagee": "x"}, "homelab:rook.cephImagee: unknown key (check the spelling)"),
        ({"storageClass": {"reclaimPolicy": "Keep"}}, None),
    ],
)
def test_bad_rook_config(change: dict[str, Any], line: str | None) -> None:
    config = home_config()
    config["homelab:rook"].update(change)
    lines = parse_errors(config)
    assert len(lines) == 1
    if line is not None:
        assert lines == [line]
    assert lines[0].startswith("homelab:rook.")


def test_enabled_without_osd_disks() -> None:
    assert parse_errors(with_osd_hosts(0)) == [
        "homelab:rook.enabled: true but no node lists osdDisks; add /dev/disk/by-id/… paths to "
        "homelab:nodes[].osdDisks or set enabled: false"
    ]


def test_osd_disk_equal_to_the_install_disk() -> None:
    config = home_config()
    node = config["homelab:nodes"][3]
    node["osdDisks"] = [node["installDisk"]["path"]]
    lines = parse_errors(config)
    assert lines == [
        "homelab:nodes[3].osdDisks: /dev/disk/by-id/ata-CT500MX500SSD1_2301E6A00001 is the install disk of node k8s-3"
    ]


def test_install_serial_naming_an_osd_disk() -> None:
    config = home_config()
    config["homelab:nodes"][0]["installDisk"] = {"serial": "S7KHNJ0W000001"}
    assert parse_errors(config) == [
        "homelab:nodes[0].osdDisks[0]: /dev/disk/by-id/nvme-Samsung_SSD_990_PRO_2TB_S7KHNJ0W000001 "
        "contains the install disk's serial S7KHNJ0W000001; select the install disk so it cannot match an OSD disk"
    ]


@pytest.mark.parametrize(
    "install_disk",
    [{"type": "nvme"}, {"model": "Samsung SSD 990*"}, {"size": ">= 100GB"}, {"type": "ssd", "size": "<= 600GB"}],
)
def test_install_selector_without_identity_on_an_osd_node(install_disk: dict[str, str]) -> None:
    """Talos installs to the first disk matching every field; type/model/size could all match the OSD disk."""
    config = home_config()
    config["homelab:nodes"][0]["installDisk"] = install_disk
    assert parse_errors(config) == [
        "homelab:nodes[0].installDisk: select it by path, serial or wwid on a node with osdDisks "
        "(type, model or size alone could also match an OSD disk)"
    ]


def test_install_selectors_that_cannot_match_pass() -> None:
    config = home_config()
    config["homelab:nodes"][0]["installDisk"] = {"serial": "S6PNNS0W100001", "type": "ssd"}
    config["homelab:nodes"][1]["installDisk"] = {"wwid": "eui.0025385b21000001", "model": "CT500MX500*"}
    # A selector by type alone is fine where there is no OSD disk to hit (k8s-5).
    assert config["homelab:nodes"][5]["installDisk"] == {"type": "nvme"}
    assert parse(config).rook is not None
