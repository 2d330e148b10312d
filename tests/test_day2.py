"""Day 2 through `pulumi up`: the homelab:day2 section, and the rolling, health-gated steps in the graph."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi.runtime import rpc

from components import talos_steps
from plan import offline
from stacks.config.day2 import seconds
from tests.conftest import config_errors, home_config, parse_config, reveal, run_config


def with_day2(**section: Any) -> dict[str, Any]:
    config = home_config()
    config["homelab:day2"] = section
    return config


def test_defaults_without_the_section() -> None:
    config = home_config()
    del config["homelab:day2"]
    day2 = parse_config(config).day2
    assert (day2.worker_batch, day2.health_timeout, day2.upgrade_timeout) == (1, "10m", "30m")
    assert day2.etcd_backup is None


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ({"workerBatch": 0}, "homelab:day2.workerBatch: Input should be greater than or equal to 1 (got 0)"),
        (
            {"healthTimeout": "ten minutes"},
            "homelab:day2.healthTimeout: 'ten minutes' is not a duration such as 90s, 10m or 1h30m",
        ),
        (
            {"etcdBackup": {"namespace": ""}},
            "homelab:day2.etcdBackup.namespace: String should have at least 1 character (got '')",
        ),
        ({"rollout": 2}, "homelab:day2.rollout: unknown key (check the spelling)"),
    ],
)
def test_bad_day2_config_is_one_line(section: dict[str, Any], line: str) -> None:
    assert config_errors(with_day2(**section)) == [line]


@pytest.mark.parametrize(("text", "value"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1500ms", 2), ("1ms", 1)])
def test_durations_in_seconds_round_up(text: str, value: int) -> None:
    assert seconds(text) == value


# --- the steps in the graph --------------------------------------------------------------------

COMMAND = "command:local:Command"
APPLY = "talos:machine/configurationApply:ConfigurationApply"


def names(capture: offline.Capture, urns: list[str]) -> set[str]:
    known = capture.by_urn()
    return {known[u].name for u in urns if u in known}


def waits_for(capture: offline.Capture, name: str) -> set[str]:
    """What a resource waits for by ``depends_on`` (its dependencies less those its inputs bring)."""
    r = capture.by_name(name)
    from_inputs = {u for urns in r.property_dependencies.values() for u in urns}
    return names(capture, [u for u in r.dependencies if u not in from_inputs])


def env(capture: offline.Capture, name: str) -> dict[str, Any]:
    """A command's environment: plain, so a preview shows what changes in it."""
    environment = capture.by_name(name).inputs["environment"]
    assert not rpc.is_rpc_secret(environment), name
    values: dict[str, Any] = environment
    return values


def credential(capture: offline.Capture, name: str) -> tuple[str, Any]:
    """The credential a command gets on stdin (a Pulumi secret) and the variable it fills."""
    r = capture.by_name(name)
    assert rpc.is_rpc_secret(r.inputs["stdin"]), name
    return r.inputs["environment"]["STDIN_SECRET"], reveal(r.inputs["stdin"])


def inputs_by_name(capture: offline.Capture) -> dict[str, str]:
    return {r.name: json.dumps(reveal(r.inputs), sort_keys=True, default=str) for r in capture.resources}


def changed(before: offline.Capture, after: offline.Capture) -> set[str]:
    """Resources present in both runs whose inputs differ."""
    a, b = inputs_by_name(before), inputs_by_name(after)
    return {n for n in a.keys() & b.keys() if a[n] != b[n]}


def bumped(version: str) -> str:
    """The next patch version, as a Renovate patch PR would bump it."""
    head, _, patch = version.rpartition(".")
    return f"{head}.{int(patch) + 1}"


def test_upgrades_roll_control_planes_one_at_a_time_then_workers_in_batches(home: offline.Capture) -> None:
    # home: three control planes, then workers k8s-3, k8s-4 (no OSDs, workerBatch 2) and k8s-5.
    deps = {r.name: waits_for(home, r.name) for r in home.of_type(COMMAND)}
    assert deps["home-upgrade-k8s-0"] == set()
    assert deps["home-upgrade-k8s-1"] == {"home-upgrade-k8s-0"}
    assert deps["home-upgrade-k8s-2"] == {"home-upgrade-k8s-1"}
    assert deps["home-upgrade-k8s-3"] == deps["home-upgrade-k8s-4"] == {"home-upgrade-k8s-2"}
    assert deps["home-upgrade-k8s-5"] == {"home-upgrade-k8s-3", "home-upgrade-k8s-4"}
    # Then Kubernetes, then every apply: no kubelet runs ahead of the API server.
    assert deps["home-kubernetes-upgrade"] == {f"home-upgrade-k8s-{i}" for i in range(6)}
    for apply in home.of_type(APPLY):
        assert "home-kubernetes-upgrade" in names(home, apply.dependencies), apply.name


def test_osd_nodes_go_alone_and_look_after_ceph() -> None:
    config = home_config()
    nodes = config["homelab:nodes"]
    nodes[4]["osdDisks"] = ["/dev/disk/by-id/nvme-osd-k8s-4"]  # between two plain workers
    capture = run_config(config)
    deps = {r.name: waits_for(capture, r.name) for r in capture.of_type(COMMAND)}
    assert deps["home-upgrade-k8s-3"] == {"home-upgrade-k8s-2"}
    assert deps["home-upgrade-k8s-4"] == {"home-upgrade-k8s-3"}
    assert deps["home-upgrade-k8s-5"] == {"home-upgrade-k8s-4"}
    osd = env(capture, "home-upgrade-k8s-4")
    assert (osd["OSD_NODE"], osd["ROOK_NAMESPACE"], osd["CEPH_TIMEOUT"]) == ("true", "rook-ceph", "1800")
    assert "OSD_NODE" not in env(capture, "home-upgrade-k8s-3")


def test_first_bootstrap_upgrades_and_reboots_nothing(home: offline.Capture) -> None:
    # A command's create runs when it is created: at the first up, and for a node being added.
    for r in home.of_type(COMMAND):
        kind = r.name.removeprefix("home-").split("-")[0]
        if kind in ("upgrade", "reboot", "settle", "kubernetes", "cleanup", "guard"):
            assert "talosctl" not in r.inputs["create"] and "kubectl" not in r.inputs["create"], r.name
    upgrade = home.by_name("home-upgrade-k8s-0").inputs
    assert upgrade["create"] == talos_steps.upgrade_node().create
    assert upgrade["update"] == talos_steps.upgrade_node().update
    assert upgrade["interpreter"] == ["bash", "-c"]


def test_steps_get_their_values_from_the_environment_and_credentials_as_secrets(home: offline.Capture) -> None:
    for r in home.of_type(COMMAND):
        key, value = credential(home, r.name)  # asserts stdin is a Pulumi secret
        assert key in ("TALOSCONFIG_DATA", "KUBECONFIG_DATA"), r.name
        assert value and key not in env(home, r.name), r.name
        # No triggers: pulumi-command replaces a command whose triggers change (pulumi-command v1.2.1,
        # common/inputs.go: replaceOnChanges), and a replaced step runs create, which touches no node.
        assert "triggers" not in r.inputs, r.name
    assert credential(home, "home-upgrade-k8s-1") == (
        "TALOSCONFIG_DATA",
        reveal(credential(home, "home-guard-k8s-1")[1]),
    )
    upgrade = env(home, "home-upgrade-k8s-1")
    assert upgrade["NODE_ADDRESS"] == "10.0.10.12"
    assert upgrade["CONTROL_PLANES"] == "10.0.10.11,10.0.10.12,10.0.10.13"
    config = str(reveal(home.by_name("home-apply-k8s-1").inputs["machineConfigurationInput"]))
    assert f"image: {upgrade['TALOS_IMAGE']}" in config
    k8s = env(home, "home-kubernetes-upgrade")
    assert k8s["KUBERNETES_VERSION"] == home_config()["homelab:cluster"]["kubernetesVersion"]
    assert (upgrade["HEALTH_TIMEOUT"], upgrade["UPGRADE_TIMEOUT"]) == ("600", "1800")


def test_changing_only_talos_version_changes_only_upgrades_and_install_image(home: offline.Capture) -> None:
    config = home_config()
    config["homelab:cluster"]["talosVersion"] = bumped(config["homelab:cluster"]["talosVersion"])
    after = run_config(config, stack="home")
    diff = changed(home, after)
    talos = {n for n in diff if n.startswith("home-")}
    assert {f"home-upgrade-k8s-{i}" for i in range(6)} <= talos
    assert "home-kubernetes-upgrade" not in diff
    # The install image is in every node's config; reboots and the health check follow the configs.
    assert not {n for n in diff if not n.startswith(("home-", "cluster-health"))}
    kinds = {n.removeprefix("home-").rsplit("-k8s-", 1)[0] for n in talos}
    assert kinds == {"upgrade", "apply", "reboot", "secrets"}


def test_changing_only_kubernetes_version_changes_only_the_kubernetes_upgrade(home: offline.Capture) -> None:
    config = home_config()
    config["homelab:cluster"]["kubernetesVersion"] = bumped(config["homelab:cluster"]["kubernetesVersion"])
    after = run_config(config, stack="home")
    diff = changed(home, after)
    assert "home-kubernetes-upgrade" in diff
    assert not {n for n in diff if n.startswith("home-upgrade-")}
    # The configs carry the new images (applied after the upgrade, which already moved them).
    assert not {n for n in diff if not n.startswith(("home-", "cluster-health"))}
    kinds = {n.removeprefix("home-").rsplit("-k8s-", 1)[0] for n in diff if n.startswith("home-")}
    assert kinds == {"kubernetes-upgrade", "apply", "reboot"}


def test_removing_a_worker_leaves_the_rest_untouched(home: offline.Capture) -> None:
    config = home_config()
    config["homelab:nodes"] = [n for n in config["homelab:nodes"] if n["name"] != "k8s-5"]
    after = run_config(config, stack="home")
    gone = {r.name for r in home.resources} - {r.name for r in after.resources}
    assert gone == {f"home-{kind}-k8s-5" for kind in ("apply", "cleanup", "guard", "upgrade", "reboot")}
    # The health check follows one config fewer; the talosconfig (and its 1Password backup) lists the nodes.
    assert changed(home, after) == {"cluster-health-check", "onepassword-backup-talosconfig"}
    assert env(after, "cluster-health-check")["CONTROL_PLANES"] == env(home, "cluster-health-check")["CONTROL_PLANES"]
    assert {i.args.get("nodes") is None for i in after.invokes if "client/getConfiguration" in i.token} == {
        True,
        False,
    }


def test_a_removed_node_is_reset_gracefully_then_its_node_deleted(home: offline.Capture) -> None:
    apply = home.by_name("home-apply-k8s-4")
    assert apply.inputs["onDestroy"] == {"reset": True, "graceful": True, "reboot": False}
    # Pulumi deletes dependents first: the guard (refuses to break quorum or Ceph), then the
    # apply (graceful reset), then the cleanup (kubectl delete node).
    assert "home-cleanup-k8s-4" in names(home, apply.dependencies)
    assert waits_for(home, "home-guard-k8s-4") == {"home-apply-k8s-4"}
    cleanup = home.by_name("home-cleanup-k8s-4").inputs
    assert cleanup["delete"] == talos_steps.remove_node().delete
    assert env(home, "home-cleanup-k8s-4")["NODE_ROLE"] == "worker"


def test_control_planes_apply_one_after_another(home: offline.Capture) -> None:
    assert "home-apply-k8s-0" in names(home, home.by_name("home-apply-k8s-1").dependencies)
    assert "home-apply-k8s-1" in names(home, home.by_name("home-apply-k8s-2").dependencies)
    assert not [r for r in home.of_type(COMMAND) if "settle" in r.name]  # staged: Talos reboots nothing itself


def test_rebooting_apply_modes_wait_for_each_control_plane() -> None:
    config = home_config()
    config["homelab:cluster"]["applyMode"] = "auto"
    capture = run_config(config)
    assert names(capture, capture.by_name("home-settle-k8s-0").dependencies) == {"home-apply-k8s-0", "home-secrets"}
    assert "home-settle-k8s-0" in waits_for(capture, "home-apply-k8s-1")
    assert env(capture, "home-settle-k8s-1")["APPLY_MODE"] == "auto"  # the resolved mode; offline, the one asked
    assert not [r for r in capture.of_type(COMMAND) if r.name.startswith("home-settle-k8s-3")]


def test_staged_configs_are_rebooted_rolling_after_every_apply(home: offline.Capture) -> None:
    first = names(home, home.by_name("home-reboot-k8s-0").dependencies)
    assert {"home-bootstrap", *(f"home-apply-k8s-{i}" for i in range(6))} <= first
    assert waits_for(home, "home-reboot-k8s-1") == {"home-reboot-k8s-0"}
    values = env(home, "home-reboot-k8s-0")
    assert values["APPLY_MODE"] == home.by_name("home-apply-k8s-0").inputs["applyMode"]
    assert len(values["CONFIG_HASH"]) == 64
    assert home.outputs["resolvedApplyModes"]["k8s-3"] == "staged_if_needing_reboot"


def test_removing_the_first_control_plane_bootstraps_nothing_again(home: offline.Capture) -> None:
    config = home_config()
    config["homelab:nodes"] = config["homelab:nodes"][1:]
    config["homelab:rook"]["pool"]["replicas"] = 2  # two OSD hosts left
    after = run_config(config, stack="home")
    before, now = home.by_name("home-bootstrap"), after.by_name("home-bootstrap")
    # The same resource (same URN), updated in place: node has no RequiresReplace and the
    # provider's Update only writes state (terraform-provider-talos v0.11.0, bootstrap resource).
    assert before.urn == now.urn
    assert (before.inputs["node"], now.inputs["node"]) == ("10.0.10.11", "10.0.10.12")
    assert not now.replace_on_changes and not now.delete_before_replace


def test_api_readiness_gate_feeds_the_provider(home: offline.Capture) -> None:
    gate = home.by_name("home-api-ready")
    values = env(home, "home-api-ready")
    assert values["API_URL"] == "https://10.0.10.10:6443"
    assert credential(home, "home-api-ready") == ("KUBECONFIG_DATA", offline.FAKE_KUBECONFIG)
    assert values["READY_TIMEOUT"] == "900"
    assert gate.inputs["interpreter"] == ["python3", "-c"]
    assert gate.inputs["create"] == talos_steps.api_ready().create
    assert names(home, gate.dependencies) == {"home-kubeconfig"}


def test_full_health_check_after_the_cni_follows_the_applies(home: offline.Capture) -> None:
    check = home.by_name("cluster-health-check")
    # After the CNI (no node is Ready before) and after the staged reboots: the check runs
    # through the first control plane, the first node a rolling reboot takes down.
    assert waits_for(home, "cluster-health-check") == {"cilium-chart", *(f"home-reboot-k8s-{i}" for i in range(6))}
    values = env(home, "cluster-health-check")
    assert values["CONTROL_PLANES"] == "10.0.10.11,10.0.10.12,10.0.10.13"
    # No node lists: Pulumi deletes a removed node's resources after the rest of the run, so a check
    # of the new inventory would fail while that node still runs, and the removal would never come.
    assert "WORKERS" not in values
    assert len(values["FOLLOWS"].split(",")) == 7  # bootstrap and the six applied configs
    assert check.inputs["create"] == check.inputs["update"] == talos_steps.health().create
