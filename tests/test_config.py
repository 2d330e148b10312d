"""Stack config validation: each bad input gives one clear line naming the field, and nothing is registered."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from plan import offline
from stacks.loader import ConfigError
from tests.conftest import ROOT, config_problems, generated_nodes, home_config, run_config
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
        "v1.13.0",
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
        "Kubernetes newer than Talos v1.13 runs",
        "homelab:cluster/kubernetesVersion",
        "v1.37.0",
        "homelab:cluster.kubernetesVersion: v1.37.0 is too new for Talos v1.13, "
        "which supports Kubernetes v1.31.0 to v1.36.x",
    ),
    (
        "Kubernetes older than Talos v1.13 runs",
        "homelab:cluster/kubernetesVersion",
        "v1.30.14",
        "homelab:cluster.kubernetesVersion: v1.30.14 is too old for Talos v1.13, "
        "which supports Kubernetes v1.31.0 to v1.36.x",
    ),
    (
        "malformed MAC",
        "homelab:nodes/2/mac",
        "00:1a:2b:3c:4d",
        "homelab:nodes[2].mac: '00:1a:2b:3c:4d' is not a MAC address "
        "(six hex pairs separated by ':', e.g. 00:1a:2b:3c:4d:5e)",
    ),
    (
        "maintenance address of another node",
        "homelab:nodes/4/maintenanceAddress",
        "10.0.10.12",
        "homelab:nodes[4].maintenanceAddress: 10.0.10.12 is the address of node k8s-1",
    ),
    (
        "maintenance address on the VIP",
        "homelab:nodes/4/maintenanceAddress",
        "10.0.10.10",
        "homelab:nodes[4].maintenanceAddress: 10.0.10.10 is the cluster VIP",
    ),
    (
        "misspelled key in a cluster patch",
        "homelab:cluster/patches/all/0/machine/sysctl",
        {"vm.max_map_count": "262144"},
        "homelab:cluster.patches.all[0].machine.sysctl: unknown key in Talos v1.13 machine config "
        "(did you mean sysctls?)",
    ),
    (
        "misspelled document kind in a node patch",
        "homelab:nodes/4/patches/0",
        {"apiVersion": "v1alpha1", "kind": "TimeSyncConfg", "ntp": {"servers": ["pool.ntp.org"]}},
        "homelab:nodes[4].patches[0].kind: 'TimeSyncConfg' is not a Talos v1.13 document kind "
        "(did you mean TimeSyncConfig?)",
    ),
    (
        "wrong type in a node patch",
        "homelab:nodes/4/patches/0/machine/nodeLabels",
        ["gpu"],
        "homelab:nodes[4].patches[0].machine.nodeLabels: ['gpu'] is not of type 'object' (Talos v1.13 schema)",
    ),
    (
        "deprecated v1alpha1 network block in a role patch",
        "homelab:cluster/patches/worker",
        [{"machine": {"network": {"nameservers": ["1.1.1.1"]}}}],
        "homelab:cluster.patches.worker[0].machine.network: deprecated, left out of the Talos v1.13 schema; "
        "use the network documents (LinkConfig, ResolverConfig, StaticHostConfig, …)",
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


@pytest.mark.parametrize("version", ["v1.31.0", "v1.35.0", "v1.36.0", "v1.36.9"])
def test_kubernetes_versions_talos_supports(version: str) -> None:
    """Talos v1.13 runs Kubernetes 1.31.0 up to 1.36.x (siderolabs/talos compatibility/talos113)."""
    assert parse(mutate("homelab:cluster/kubernetesVersion", version)).cluster.kubernetes_version == version


def test_link_has_no_default() -> None:
    """No eth0: Talos names links predictably (enp1s0), and a wrong name leaves the node without its address."""
    config = mutate("homelab:cluster/link", _DELETE)
    assert errors(config) == [
        "homelab:cluster.link: is required unless every node sets link or mac: the name of the nodes' LAN link "
        "(e.g. enp1s0; Talos names links predictably since v1.5, so eth0 usually does not exist)"
    ]


def test_link_per_node_or_by_mac_instead_of_cluster_link() -> None:
    config = mutate("homelab:cluster/link", _DELETE)
    for i, node in enumerate(config["homelab:nodes"][:5]):
        if i % 2:
            node["link"] = "eno1"
        else:
            node["mac"] = f"00:1A:2B:3C:4D:{i:02x}"
    assert errors(config) == [
        "homelab:nodes[5].link: node k8s-5 has no link: set its link or mac, or cluster.link",
    ]
    config["homelab:nodes"][5]["link"] = "enp2s0"
    cfg = parse(config)
    assert cfg.nodes[0].mac == "00:1a:2b:3c:4d:00"  # lower case, as Talos prints it
    assert cfg.nodes[1].link == "eno1" and cfg.cluster.link is None


def test_link_and_mac_on_one_node() -> None:
    config = mutate("homelab:nodes/1/link", "eno1")
    config["homelab:nodes"][1]["mac"] = "00:1a:2b:3c:4d:5e"
    assert errors(config) == [
        "homelab:nodes[1].mac: give link or mac, not both (link eno1, mac 00:1a:2b:3c:4d:5e)",
    ]


def test_mac_given_twice() -> None:
    config = mutate("homelab:nodes/1/mac", "00:1a:2b:3c:4d:5e")
    config["homelab:nodes"][3]["mac"] = "00:1A:2B:3C:4D:5E"
    assert errors(config) == ["homelab:nodes[3].mac: 00:1a:2b:3c:4d:5e is already the mac of node k8s-1"]


def test_maintenance_address_is_optional_and_may_equal_the_address() -> None:
    config = mutate("homelab:nodes/0/maintenanceAddress", "10.0.10.201")
    config["homelab:nodes"][1]["maintenanceAddress"] = "10.0.10.12"  # a DHCP reservation: the same address
    cfg = parse(config)
    assert str(cfg.nodes[0].maintenance_address) == "10.0.10.201"
    assert cfg.nodes[2].maintenance_address is None


def test_maintenance_address_given_twice() -> None:
    config = mutate("homelab:nodes/3/maintenanceAddress", "10.0.10.200")
    config["homelab:nodes"][4]["maintenanceAddress"] = "10.0.10.200"
    assert errors(config) == [
        "homelab:nodes[4].maintenanceAddress: 10.0.10.200 is already the maintenanceAddress of node k8s-3"
    ]


def test_every_patch_problem_is_reported() -> None:
    """Several typos in several patches: one line each, naming the patch and the key."""
    config = home_config()
    config["homelab:cluster"]["patches"]["all"][0]["machine"]["kubelt"] = {}
    config["homelab:cluster"]["patches"]["controlplane"] = [{"cluster": {"apiServer": {"extraArg": {}}}}]
    config["homelab:nodes"][4]["patches"][0]["machine"]["nodeLabel"] = {"a": "b"}
    assert errors(config) == [
        "homelab:cluster.patches.all[0].machine.kubelt: unknown key in Talos v1.13 machine config "
        "(did you mean kubelet?)",
        "homelab:cluster.patches.controlplane[0].cluster.apiServer.extraArg: unknown key in Talos v1.13 "
        "machine config (did you mean extraArgs?)",
        "homelab:nodes[4].patches[0].machine.nodeLabel: unknown key in Talos v1.13 machine config "
        "(did you mean nodeLabels?)",
    ]


def test_a_valid_named_document_patch_passes() -> None:
    config = home_config()
    config["homelab:nodes"][3]["patches"] = [
        {"apiVersion": "v1alpha1", "kind": "UserVolumeConfig", "name": "local", "provisioning": {"maxSize": "50GiB"}},
        {"machine": {"files": [{"path": "/var/x", "op": "create", "content": "x", "permissions": 0o644}]}},
    ]
    assert parse(config).nodes[3].patches[0]["kind"] == "UserVolumeConfig"


# Inventory shapes a homelab uses: (what, control planes, workers, allowSchedulingOnControlPlanes,
# OSD hosts (indices), rook overrides or None for no Rook, the expected error lines).
SHAPES: list[tuple[str, int, int, bool, list[int], dict[str, Any] | None, list[str]]] = [
    ("one node running everything", 1, 0, True, [0], {"monCount": 1, "mgrCount": 1, "pool": {"replicas": 1}}, []),
    (
        "one node that refuses workloads",
        1,
        0,
        False,
        [],
        None,
        [
            "homelab:cluster.allowSchedulingOnControlPlanes: false, but every node is a control plane, so "
            "nothing could run workloads (control planes are tainted NoSchedule); set it to true or add a worker"
        ],
    ),
    ("one control plane and workers carrying Ceph", 1, 3, False, [1, 2, 3], {}, []),
    (
        "two control planes (no etcd fault tolerance, but it runs)",
        2,
        0,
        True,
        [0, 1],
        {"monCount": 1, "pool": {"replicas": 2}},
        [],
    ),
    ("three control planes running everything", 3, 0, True, [0, 1, 2], {}, []),
    (
        "three control planes that refuse workloads",
        3,
        0,
        False,
        [0, 1, 2],
        {},
        [
            "homelab:cluster.allowSchedulingOnControlPlanes: false, but every node is a control plane, so "
            "nothing could run workloads (control planes are tainted NoSchedule); set it to true or add a worker"
        ],
    ),
    # Rook tolerates the control-plane taint (components/rook.py placement.all), so OSDs on
    # tainted control planes work while workloads run on the workers.
    ("OSDs only on tainted control planes, workloads on workers", 3, 2, False, [0, 1, 2], {}, []),
    (
        "three replicas on two OSD hosts",
        3,
        2,
        False,
        [3, 4],
        {},
        [
            "homelab:rook.pool.replicas: 3 replicas need at least 3 nodes with osdDisks, found 2 (node-3, node-4); "
            "lower replicas explicitly for a smaller lab"
        ],
    ),
    (
        "three mons on two nodes",
        2,
        0,
        True,
        [0, 1],
        {"pool": {"replicas": 2}},
        ["homelab:rook.monCount: 3 mons need 3 nodes (one each), found 2"],
    ),
]


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_inventory_shapes(shape: tuple[str, int, int, bool, list[int], dict[str, Any] | None, list[str]]) -> None:
    """A shape that can run workloads and storage parses; one that cannot says why, in one line."""
    _, cps, workers, schedule, osd_hosts, rook, lines = shape
    config = home_config()
    config["homelab:cluster"]["allowSchedulingOnControlPlanes"] = schedule
    nodes = generated_nodes(cps, workers)
    for i, node in enumerate(nodes):
        if i not in osd_hosts:
            del node["osdDisks"]
    config["homelab:nodes"] = nodes
    config.pop("homelab:cilium")  # operator replicas have their own rule (test_cilium)
    if rook is None:
        config.pop("homelab:rook")
    else:
        config["homelab:rook"].update(rook)
    assert config_problems(config) == lines


def test_yaml_syntax_error_is_one_line(tmp_path: Any) -> None:
    """A broken stack file: file, line and column in one line, exit 2, no traceback."""
    stack = tmp_path / "Pulumi.broken.yaml"
    stack.write_text("config:\n  homelab:cluster:\n    name: home\n   vip: 10.0.10.10\n")
    proc = subprocess.run(
        [sys.executable, "-m", "plan", "--file", str(stack), "--out", str(tmp_path / "plan")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"{stack}:4:4: while parsing a block mapping: did not find expected key"]


def test_key_given_twice_is_an_error_as_in_the_cli(tmp_path: Any) -> None:
    """Go's yaml.v3 (the Pulumi CLI) refuses a duplicate key; the plan must not silently take the last one."""
    stack = tmp_path / "Pulumi.twice.yaml"
    stack.write_text("config:\n  homelab:cluster:\n    name: home\n    name: other\n")
    with pytest.raises(ConfigError) as info:
        offline.stack_config(stack)
    assert info.value.lines == [f"{stack}:4:5: mapping key 'name' already defined at line 3"]
