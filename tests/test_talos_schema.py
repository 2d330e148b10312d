"""Every Talos patch the program sends validates against the Talos v1.13 schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components import talos_patches
from plan import offline, report, yaml12
from stacks.config import talos_schema
from tests.conftest import home_config, run_config
from tests.talos_schema import validate_patch


def sent_patches(capture: offline.Capture) -> list[tuple[str, dict[str, Any]]]:
    """(host, patch document) for every patch the program sent to the provider."""
    return [(host, doc) for host, docs in report.sent_patches(capture).items() for doc in docs]


def test_every_home_patch_is_schema_valid(home: offline.Capture, schemas: Path) -> None:
    patches = sent_patches(home)
    assert len(patches) > 6 * 5
    problems = [f"{host}: {line}" for host, doc in patches for line in validate_patch(doc)]
    assert problems == []


def test_required_documents_are_there(home: offline.Capture) -> None:
    by_host: dict[str, list[dict[str, Any]]] = {}
    for host, doc in sent_patches(home):
        by_host.setdefault(host, []).append(doc)
    for host, docs in by_host.items():
        kinds = [d.get("kind") for d in docs]
        assert "LinkConfig" in kinds and "HostnameConfig" in kinds
        vip = [d for d in docs if d.get("kind") == "Layer2VIPConfig"]
        is_cp = host in {"k8s-0", "k8s-1", "k8s-2"}
        assert len(vip) == (1 if is_cp else 0), host
        merged = offline_merged(docs)
        assert merged["cluster"]["network"]["cni"] == {"name": "none"}
        assert merged["cluster"]["proxy"] == {"disabled": True}
        assert merged["machine"]["features"]["kubePrism"] == {"enabled": True, "port": 7445}


def offline_merged(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return talos_patches.merged(docs)[0]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"machine": {"instal": {"disk": "/dev/sda"}}},
            "machine: Additional properties are not allowed ('instal' was unexpected)",
        ),
        (
            {"cluster": {"network": {"cni": {"name": "calico"}}}},
            "cluster.network.cni.name: 'calico' is not one of ['flannel', 'custom', 'none']",
        ),
        (
            {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostnme": "x"},
            "<root>: Additional properties are not allowed ('hostnme' was unexpected)",
        ),
        ({"apiVersion": "v1alpha1", "kind": "NoSuchConfig"}, "kind: unknown document kind 'NoSuchConfig'"),
    ],
)
def test_validator_catches_mistakes(doc: dict[str, Any], expected: str, schemas: Path) -> None:
    assert validate_patch(doc) == [expected]


def test_octal_permissions_read_as_talos_does(schemas: Path) -> None:
    """Talos reads YAML 1.2: 0o644 is a number, valid for machine.files[].permissions."""
    doc = yaml12.load(
        "machine:\n  files:\n    - path: /var/x\n      op: create\n      content: x\n      permissions: 0o644\n"
    )
    assert doc["machine"]["files"][0]["permissions"] == 0o644
    assert validate_patch(doc) == []


def test_vip_sits_on_the_control_plane_own_link() -> None:
    """A control plane whose NIC differs from cluster.link gets the VIP on its own link."""
    config = home_config()
    config["homelab:nodes"][1]["link"] = "eno1"
    by_host: dict[str, list[dict[str, Any]]] = {}
    for host, doc in sent_patches(run_config(config)):
        by_host.setdefault(host, []).append(doc)
    for host, link in (("k8s-0", "enp1s0"), ("k8s-1", "eno1")):
        (vip,) = [d for d in by_host[host] if d.get("kind") == "Layer2VIPConfig"]
        (nic,) = [d for d in by_host[host] if d.get("kind") == "LinkConfig"]
        assert vip["link"] == nic["name"] == link


def test_nic_selected_by_mac_gets_an_alias_that_the_address_and_vip_name() -> None:
    """nodes[].mac: a LinkAliasConfig picks the NIC by hardware address; LinkConfig and the VIP name the alias."""
    config = home_config()
    del config["homelab:cluster"]["link"]
    for i, node in enumerate(config["homelab:nodes"]):
        node["mac"] = f"00:1A:2B:3C:4D:{i:02X}"
    by_host: dict[str, list[dict[str, Any]]] = {}
    for host, doc in sent_patches(run_config(config)):
        by_host.setdefault(host, []).append(doc)
    (alias,) = [d for d in by_host["k8s-1"] if d.get("kind") == "LinkAliasConfig"]
    # Lower case: Talos's CEL mac() prints addresses that way (link_alias.go's example selector).
    assert alias["selector"] == {"match": 'mac(link.permanent_addr) == "00:1a:2b:3c:4d:01"'}
    (nic,) = [d for d in by_host["k8s-1"] if d.get("kind") == "LinkConfig"]
    (vip,) = [d for d in by_host["k8s-1"] if d.get("kind") == "Layer2VIPConfig"]
    assert alias["name"] == nic["name"] == vip["link"] == talos_patches.LINK_ALIAS
    assert talos_patches.LINK_ALIAS not in {"eth0", "enp1s0"}  # not a system interface name


def test_alias_documents_are_schema_valid(schemas: Path) -> None:
    config = home_config()
    config["homelab:nodes"][0]["mac"] = "00:1a:2b:3c:4d:5e"
    patches = [(h, d) for h, d in sent_patches(run_config(config)) if h == "k8s-0"]
    assert any(d.get("kind") == "LinkAliasConfig" for _, d in patches)
    assert [line for _, doc in patches for line in validate_patch(doc)] == []


def test_carried_schema_is_the_published_one(schemas: Path) -> None:
    """The program validates user patches with its own copy; it must be Talos's v1.13 schema, unmodified."""
    carried = talos_schema.SCHEMA_PATH.read_bytes()
    assert carried == (schemas / "talos-v1.13" / "config.schema.json").read_bytes()
    licence = talos_schema.SCHEMA_PATH.with_name(talos_schema.SCHEMA_PATH.name + ".license").read_text()
    assert "SPDX-License-Identifier: MPL-2.0" in licence
    assert "siderolabs/talos/v1.13." in licence and "pkg/machinery/config/schemas/config.schema.json" in licence


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"machine": {"instal": {"disk": "/dev/sda"}}},
            "p.machine.instal: unknown key in Talos v1.13 machine config (did you mean install?)",
        ),
        (
            {"cluster": {"network": {"cni": {"name": "calico"}}}},
            "p.cluster.network.cni.name: 'calico' is not one of ['flannel', 'custom', 'none'] (Talos v1.13 schema)",
        ),
        (
            {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostnme": "x"},
            "p.hostnme: unknown key in Talos v1.13 HostnameConfig (did you mean hostname?)",
        ),
        (
            {"apiVersion": "v1alpha1", "kind": "NoSuchConfig"},
            "p.kind: 'NoSuchConfig' is not a Talos v1.13 document kind",
        ),
        (
            {"machine": {"network": {"hostname": "x"}}},
            "p.machine.network: deprecated, left out of the Talos v1.13 schema; "
            "use the network documents (LinkConfig, ResolverConfig, StaticHostConfig, …)",
        ),
    ],
)
def test_program_validator_agrees_with_the_schema(doc: dict[str, Any], expected: str, schemas: Path) -> None:
    """The program's check finds what the tests' independent check finds, and names the key."""
    assert len(validate_patch(doc)) == 1
    assert talos_schema.patch_problems("p", doc) == [expected]


def test_every_generated_patch_passes_the_program_validator(home: offline.Capture) -> None:
    """The program's own patches are valid by its own check too (no false alarms on what it sends)."""
    problems = [line for host, doc in sent_patches(home) for line in talos_schema.patch_problems(host, doc)]
    assert problems == []
