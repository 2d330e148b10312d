"""Every Talos patch the program sends validates against the Talos v1.13 schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components import talos_patches
from plan import offline, report, yaml12
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
