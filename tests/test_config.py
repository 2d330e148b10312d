"""Stack config validation: each bad input gives one clear line naming the field, and nothing is registered."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from plan import offline
from stacks.loader import ConfigError
from tests.conftest import ROOT, home_config, run_config
from tests.conftest import config_errors as errors
from tests.conftest import parse_config as parse


def test_home_config_parses() -> None:
    cfg = parse(home_config())
    assert cfg.cluster.name == "home"
    assert [n.name for n in cfg.control_planes] == ["k8s-0", "k8s-1", "k8s-2"]
    assert len(cfg.workers) >= 2


def test_models_are_frozen() -> None:
    cfg = parse(home_config())
    with pytest.raises(ValueError, match="frozen"):
        cfg.cluster.name = "other"  # type: ignore[misc]  # the point: frozen models refuse it


def mutate(path: str, value: Any) -> dict[str, Any]:
    """home config with one value replaced; path like 'homelab:nodes/1/address'."""
    config = home_config()
    key, *parts = path.split("/")
    target: Any = config
    keys: list[Any] = [key, *[int(p) if p.isdigit() else p for p in parts]]
    for k in keys[:-1]:
        target = target[k]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return config


_DELETE = object()

BAD_INPUTS = [
    # (what, path, value, the one expected line)
    (
        "duplicate address",
        "homelab:nodes/1/address",
        "10.0.10.11",
        "homelab:nodes[1].address: 10.0.10.11 is already used by node k8s-0",
    ),
    (
        "duplicate name",
        "homelab:nodes/2/name",
        "k8s-0",
        "homelab:nodes[2].name: k8s-0 is already the name of nodes[0]",
    ),
    (
        "typo in a node key",
        "homelab:nodes/0/adress",
        "10.0.10.11",
        "homelab:nodes[0].adress: unknown key (check the spelling)",
    ),
    (
        "typo in a cluster key",
        "homelab:cluster/talosVerison",
        "v1.13.9",
        "homelab:cluster.talosVerison: unknown key (check the spelling)",
    ),
    (
        "invalid IP",
        "homelab:nodes/3/address",
        "10.0.10.300",
        "homelab:nodes[3].address: Input is not a valid IPv4 address (got '10.0.10.300')",
    ),
    (
        "invalid CIDR",
        "homelab:cluster/nodeNetwork",
        "10.0.10.0/33",
        "homelab:cluster.nodeNetwork: Input is not a valid IPv4 network (got '10.0.10.0/33')",
    ),
    (
        "host bits in CIDR",
        "homelab:cluster/podSubnet",
        "10.244.0.1/16",
        "homelab:cluster.podSubnet: Input is not a valid IPv4 network (got '10.244.0.1/16')",
    ),
    (
        "invalid host name",
        "homelab:nodes/0/name",
        "K8s_0",
        "homelab:nodes[0].name: 'K8s_0' is not an RFC 1123 host name (lower-case letters, digits, '-', '.')",
    ),
    (
        "address outside the node network",
        "homelab:nodes/4/address",
        "10.0.20.15",
        "homelab:nodes[4].address: 10.0.20.15 is outside cluster.nodeNetwork 10.0.10.0/24",
    ),
    (
        "VIP equal to a node address",
        "homelab:cluster/vip",
        "10.0.10.12",
        "homelab:nodes[1].address: 10.0.10.12 is the cluster VIP",
    ),
    (
        "VIP outside the network",
        "homelab:cluster/vip",
        "192.168.1.10",
        "homelab:cluster.vip: 192.168.1.10 is outside nodeNetwork 10.0.10.0/24",
    ),
    (
        "pod CIDR overlapping the node network",
        "homelab:cluster/podSubnet",
        "10.0.0.0/16",
        "homelab:cluster.podSubnet: 10.0.0.0/16 overlaps nodeNetwork 10.0.10.0/24",
    ),
    (
        "service CIDR overlapping the pod CIDR",
        "homelab:cluster/serviceSubnet",
        "10.244.128.0/20",
        "homelab:cluster.serviceSubnet: 10.244.128.0/20 overlaps podSubnet 10.244.0.0/16",
    ),
    (
        "version without v",
        "homelab:cluster/talosVersion",
        "1.13.9",
        "homelab:cluster.talosVersion: '1.13.9' is not a Talos v1.13.x version "
        "(what this provider and these patches target)",
    ),
    (
        "Talos older than the provider's machinery",
        "homelab:cluster/talosVersion",
        "v1.12.5",
        "homelab:cluster.talosVersion: 'v1.12.5' is not a Talos v1.13.x version "
        "(what this provider and these patches target)",
    ),
    (
        "version not X.Y.Z",
        "homelab:cluster/kubernetesVersion",
        "v1.35",
        "homelab:cluster.kubernetesVersion: 'v1.35' is not a version of the form vX.Y.Z",
    ),
    (
        "unknown role",
        "homelab:nodes/0/role",
        "master",
        "homelab:nodes[0].role: Input should be 'controlplane' or 'worker' (got 'master')",
    ),
    (
        "install disk given twice",
        "homelab:nodes/3/installDisk",
        {"path": "/dev/sda", "serial": "X1"},
        "homelab:nodes[3].installDisk: give either path or selectors, not both (path and serial)",
    ),
    (
        "OSD disk equal to the install disk",
        "homelab:nodes/3/osdDisks",
        ["/dev/disk/by-id/ata-CT500MX500SSD1_2301E6A00001"],
        "homelab:nodes[3].osdDisks: /dev/disk/by-id/ata-CT500MX500SSD1_2301E6A00001 is the install disk of node k8s-3",
    ),
    (
        "OSD disk not by-id",
        "homelab:nodes/0/osdDisks",
        ["/dev/nvme0n1"],
        "homelab:nodes[0].osdDisks: '/dev/nvme0n1' is not a stable /dev/disk/by-id/… path",
    ),
    (
        "missing address",
        "homelab:nodes/0/address",
        _DELETE,
        "homelab:nodes[0].address: is required",
    ),
]


@pytest.mark.parametrize(("what", "path", "value", "line"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gives_one_line(what: str, path: str, value: Any, line: str) -> None:
    assert errors(mutate(path, value)) == [line]


def test_no_control_plane() -> None:
    config = home_config()
    for node in config["homelab:nodes"]:
        node["role"] = "worker"
    assert errors(config) == ["homelab:nodes: no node has role controlplane (at least one is needed)"]


def test_unknown_section() -> None:
    config = home_config()
    config["homelab:clustre"] = {"name": "x"}
    (line,) = errors(config)
    assert line.startswith("homelab:clustre: unknown key (known: ")
    assert "cluster" in line


def test_other_namespaces_are_not_ours() -> None:
    config = home_config()
    config["cloudflare:apiToken"] = "not read by homelab"
    assert parse(config).cluster.name == "home"


def test_several_problems_are_all_reported() -> None:
    config = mutate("homelab:nodes/1/address", "10.0.10.11")
    config["homelab:nodes"][4]["address"] = "10.0.20.15"
    lines = errors(config)
    assert lines == [
        "homelab:nodes[1].address: 10.0.10.11 is already used by node k8s-0",
        "homelab:nodes[4].address: 10.0.20.15 is outside cluster.nodeNetwork 10.0.10.0/24",
    ]


def test_bad_config_registers_nothing() -> None:
    seen: list[offline.Capture] = []
    original = offline.Capture.__init__

    def spy(self: offline.Capture, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        seen.append(self)

    offline.Capture.__init__ = spy  # type: ignore[method-assign]
    try:
        with pytest.raises(ConfigError):
            run_config(mutate("homelab:nodes/1/address", "10.0.10.11"))
    finally:
        offline.Capture.__init__ = original  # type: ignore[method-assign]
    (capture,) = seen
    assert capture.resources == []


def test_plan_cli_prints_only_the_lines(tmp_path: Any) -> None:
    """`make plan` on a bad stack: exit 2, the error lines on stderr, no traceback, no artifacts."""
    stack = tmp_path / "Pulumi.badtest.yaml"
    config = mutate("homelab:nodes/3/address", "10.0.10.300")
    config["homelab:cluster"]["vip"] = "192.168.1.10"
    stack.write_text(yaml.safe_dump({"config": config}))
    out = tmp_path / "plan"
    proc = subprocess.run(
        [sys.executable, "-m", "plan", "--file", str(stack), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "homelab:cluster.vip: 192.168.1.10 is outside nodeNetwork 10.0.10.0/24",
        "homelab:nodes[3].address: Input is not a valid IPv4 address (got '10.0.10.300')",
    ]
    assert not out.exists()
