"""``make diff``: real changes made in a small temporary git repository, planned on both sides.

The repository holds only what a plan needs (the program, the stack file, the
offline tooling and the Flux tree); its first commit is the base, each scenario
edits the working tree and is diffed against ``HEAD``. Each scenario runs once
(module scope) and several tests read its result.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc

from bench import plan_bench
from plan import diff, flux_diff, graph_diff, offline, snapshot, yaml12
from plan.diff import Result

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("__main__.py", "Pulumi.yaml", "Pulumi.home.yaml", "stacks", "components", "plan", "policy", "kubernetes")
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]
STACK = ROOT / "Pulumi.home.yaml"


def bumped(version: str) -> str:
    """A later version than ``version`` that is no pin of this repository (its last number + 1000)."""
    head, number = re.fullmatch(r"(.*?)(\d+)", version).groups()  # type: ignore[union-attr]
    return f"{head}{int(number) + 1000}"


def cilium_version() -> str:
    return str(yaml12.load(STACK.read_text())["config"]["homelab:cilium"]["chart"]["version"])


ARC_SOURCE = "kubernetes/apps/actions-runner-system/controller/app/ocirepository.yaml"


def arc_tag(root: Path = ROOT) -> str:
    found = re.search(r"^    tag: (\S+)$", (root / ARC_SOURCE).read_text(), re.M)
    assert found, ARC_SOURCE
    return found[1]


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with one commit: what the plan needs, copied from this one."""
    return plan_bench.scratch_repo(tmp_path_factory.mktemp("repo") / "repo", COPIED)


def edit_stack(repo: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the working tree's Pulumi.home.yaml after ``change`` edits its config mapping."""
    data = yaml12.load((repo / "Pulumi.home.yaml").read_text())
    change(data["config"])
    (repo / "Pulumi.home.yaml").write_text(json.dumps(data, indent=1))  # JSON is YAML


@pytest.fixture(scope="module")
def scenario(repo: Path) -> Iterator[Callable[..., Result]]:
    """Apply an edit to the working tree, diff it against HEAD, restore the tree; results cached by name."""
    cache: dict[str, Result] = {}

    def run(name: str, edit: Callable[[Path], None]) -> Result:
        if name not in cache:
            try:
                edit(repo)
                cache[name] = diff.run_diff("home", "HEAD", cwd=repo)
            finally:
                git(repo, "checkout", "-q", "--", ".")
                git(repo, "clean", "-q", "-fd")
        return cache[name]

    yield run


def by_name(result: Result, name: str) -> graph_diff.ResourceChange:
    found = [r for r in result.graph.resources if r.name == name]
    assert len(found) == 1, f"{name}: {[r.name for r in result.graph.resources]}"
    return found[0]


def node(result: Result, name: str) -> graph_diff.NodeChange:
    found = [n for n in result.graph.nodes if n.node == name]
    assert len(found) == 1, f"{name}: {[n.node for n in result.graph.nodes]}"
    return found[0]


# --- scenarios -----------------------------------------------------------------------------------


def add_node(repo: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["homelab:nodes"].append(
            {"name": "k8s-6", "address": "10.0.10.17", "role": "worker", "installDisk": {"type": "nvme"}}
        )

    edit_stack(repo, change)


def remove_node(repo: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["homelab:nodes"] = [n for n in config["homelab:nodes"] if n["name"] != "k8s-5"]

    edit_stack(repo, change)


def several(repo: Path) -> None:
    """Independent changes at once: a chart bump, a Talos patch of all nodes, a secret input."""

    def change(config: dict[str, Any]) -> None:
        config["homelab:cilium"]["chart"]["version"] = bumped(config["homelab:cilium"]["chart"]["version"])
        sysctls = config["homelab:cluster"]["patches"]["all"][0]["machine"]["sysctls"]
        sysctls["fs.inotify.max_user_instances"] = "16384"
        # Another 1Password item: the sops age key Flux decrypts with changes value.
        config["homelab:onepassword"]["items"]["sopsAgeKey"]["title"] = "sops-rotated"

    edit_stack(repo, change)


def helm_value(repo: Path) -> None:
    """A HelmRelease value, and a chart bumped in the OCIRepository another release's chartRef names."""
    release = repo / "kubernetes/apps/ai/ollama/app/helmrelease.yaml"
    text = release.read_text()
    assert "value: 24h" in text
    release.write_text(text.replace("value: 24h", "value: 12h"))
    source = repo / ARC_SOURCE
    tag = arc_tag(repo)
    source.write_text(source.read_text().replace(f"tag: {tag}", f"tag: {bumped(tag)}"))


def unchanged(repo: Path) -> None:
    """No edit at all."""


# --- tests ---------------------------------------------------------------------------------------


def test_unchanged_tree_says_no_changes(scenario: Callable[..., Result]) -> None:
    result = scenario("unchanged", unchanged)
    assert result.unchanged
    assert result.graph.resources == [] and result.graph.nodes == [] and result.flux.objects == []
    assert result.graph.head_count == result.graph.base_count > 40
    text = diff.markdown(result)
    assert "**No changes**" in text
    assert "Pulumi resources" not in text and "### Nodes" not in text
    # kubernetes/ was not touched, so it is not rendered (the note says so).
    assert not result.flux.rendered and any("not rendered" in n for n in result.notes)


def test_added_node_is_created_and_joins(scenario: Callable[..., Result]) -> None:
    result = scenario("add", add_node)
    apply = by_name(result, "home-apply-k8s-6")
    assert apply.type == graph_diff.APPLY
    created = result.graph.of("create")
    assert apply in created and all(r.name.endswith("-k8s-6") for r in created), [r.name for r in created]
    joined = node(result, "k8s-6")
    assert joined.reboot == graph_diff.REBOOTS
    assert joined.steps == [next(s for s in graph_diff.NODE_STEPS if s.type == graph_diff.APPLY).actions["create"][0]]
    # Its whole machine config is new: every line added, its address in it.
    assert all(line.startswith(("+", "@@")) for line in joined.config_diff[2:])
    assert "+- address: 10.0.10.17/24" in joined.config_diff
    # The other nodes are not touched.
    assert [n.node for n in result.graph.nodes] == ["k8s-6"]
    assert result.graph.of("delete") == []
    # Nothing replaced: the health check follows the inventory through its plain environment.
    assert result.graph.of("replace") == []
    assert by_name(result, "cluster-health-check").action == "update"
    assert not [w for w in diff.warnings(result) if "k8s-6" not in w]
    text = diff.markdown(result)
    assert "- **Nodes that reboot**: k8s-6" in text
    assert f"{len(created)} to create" in text


def test_removed_node_is_deleted_and_said_what_happens_to_it(scenario: Callable[..., Result]) -> None:
    result = scenario("remove", remove_node)
    apply = by_name(result, "home-apply-k8s-5")
    assert apply.action == "delete"
    gone = node(result, "k8s-5")
    # The applies carry on_destroy.reset (graceful): deleting one resets the machine.
    assert graph_diff.RESET in gone.steps and gone.reboot == graph_diff.RESET
    assert all(line.startswith(("-", "@@")) for line in gone.config_diff[2:])
    deleted = result.graph.of("delete")
    assert apply in deleted and all(r.name.endswith("-k8s-5") for r in deleted)
    text = diff.markdown(result)
    assert "- **Pulumi**: " in text and f"{len(deleted)} to delete" in text
    assert "- **Nodes reset**: k8s-5" in text
    assert "> - node `k8s-5`: reset" in text


def test_chart_bump_is_an_update_of_its_version(scenario: Callable[..., Result]) -> None:
    result = scenario("several", several)
    chart = by_name(result, "cilium-chart")
    assert chart.action == "update"
    old = cilium_version()
    assert [(c.path, c.old, c.new) for c in chart.changes] == [("version", old, bumped(old))]
    assert f'`version: "{old}" → "{bumped(old)}"`' in diff.markdown(result)


def test_talos_patch_change_is_applied_in_place_on_every_node(scenario: Callable[..., Result]) -> None:
    result = scenario("several", several)
    names = sorted(n["name"] for n in yaml12.load(STACK.read_text())["config"]["homelab:nodes"])
    assert sorted(n.node for n in result.graph.nodes) == names
    for n in result.graph.nodes:
        assert n.reboot == graph_diff.MAY_REBOOT
        assert "config applied in place (apply mode staged_if_needing_reboot)" in n.steps
        assert "-    fs.inotify.max_user_instances: '8192'" in n.config_diff
        assert "+    fs.inotify.max_user_instances: '16384'" in n.config_diff
        apply = by_name(result, f"home-apply-{n.node}")
        # The machine config is a secret input: only that it changed.
        assert [c.text() for c in apply.changes] == [f"machineConfigurationInput: {graph_diff.SECRET_CHANGED}"]


def test_secret_input_change_is_shown_only_as_changed(scenario: Callable[..., Result]) -> None:
    result = scenario("several", several)
    secret = by_name(result, "flux-sops-age")
    # pulumi-kubernetes replaces a Secret whose data changes (no enableSecretMutable).
    assert secret.action == "replace"
    assert [c.text() for c in secret.changes] == [f"data: {graph_diff.SECRET_CHANGED}"]
    assert any("enableSecretMutable" in r for r in secret.replace_reasons)
    # No value of a secret anywhere in the report or its data, plain or base64.
    text = diff.markdown(result) + json.dumps(diff.as_json(result))
    prefix = offline.FAKE_ONEPASSWORD_PREFIX
    assert prefix not in text
    assert base64.b64encode(prefix.encode()).decode()[:12] not in text
    assert "[secret changed]" in text


def test_helm_release_value_change_is_a_flux_diff(scenario: Callable[..., Result]) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the Flux tree cannot be built")
    result = scenario("helm", helm_value)
    assert result.graph.resources == []
    assert result.flux.rendered and result.flux.problems == []
    changes = {o.ref: o for o in result.flux.objects}
    assert sorted(changes) == [
        "HelmRelease actions-runner-system/actions-runner-controller",
        "HelmRelease ai/ollama",
        "OCIRepository actions-runner-system/gha-runner-scale-set-controller",
    ]
    assert {o.action for o in result.flux.objects} == {"changed"}
    tag = arc_tag()
    release = changes["HelmRelease actions-runner-system/actions-runner-controller"]
    assert release.chart == f"gha-runner-scale-set-controller {tag} → {bumped(tag)}" and release.diff == []
    assert f"-    tag: {tag}" in changes["OCIRepository actions-runner-system/gha-runner-scale-set-controller"].diff
    change = changes["HelmRelease ai/ollama"]
    assert change.file == "kubernetes/apps/ai/ollama/app/helmrelease.yaml"
    assert change.chart == "", "the chart version did not change"
    assert "-      value: 24h" in change.diff and "+      value: 12h" in change.diff
    text = diff.markdown(result)
    assert "- **Flux**: 3 changed" in text
    assert "- **Charts**: HelmRelease actions-runner-system/actions-runner-controller: " in text


def test_cli_writes_the_report_and_prints_it(repo: Path) -> None:
    out = repo / "build" / "diff" / "home"
    result = subprocess.run(
        [sys.executable, "-m", "plan.diff", "--base", "HEAD"], cwd=repo, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (out / "diff.md").read_text()
    assert result.stdout.startswith(diff.COMMENT_MARKER)
    assert json.loads((out / "diff.json").read_text())["unchanged"] is True


def test_unplannable_base_fails_with_one_line(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "broken")
    try:
        edit_stack(repo, lambda config: config["homelab:cluster"].update(vip="10.0.99.10"))
        git(repo, "commit", "-q", "-am", "broken")
    finally:
        git(repo, "checkout", "-q", "main")
    with pytest.raises(diff.DiffError) as info:
        diff.run_diff("home", "broken", cwd=repo)
    assert info.value.code == 1
    (line,) = info.value.lines
    assert line.startswith("base broken cannot be planned: invalid stack config: homelab:cluster.vip")


def test_invalid_working_tree_prints_its_config_errors(repo: Path) -> None:
    try:
        edit_stack(repo, lambda config: config["homelab:nodes"][1].update(address="10.0.10.11"))
        with pytest.raises(diff.DiffError) as info:
            diff.run_diff("home", "HEAD", cwd=repo)
    finally:
        git(repo, "checkout", "-q", "--", ".")
    assert info.value.code == 2
    assert info.value.lines == ["homelab:nodes[1].address: 10.0.10.11 is already used by node k8s-0"]


def test_unknown_base_ref_fails_with_one_line(repo: Path) -> None:
    with pytest.raises(diff.DiffError) as info:
        diff.run_diff("home", "no-such-ref", cwd=repo)
    assert info.value.lines == ["base 'no-such-ref' is not a commit in this repository"]


def test_default_base_is_the_merge_base_with_origin_main(repo: Path) -> None:
    assert diff.resolve_base(None, repo)[0] == "HEAD"  # no origin/main: the last commit
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "update-ref", "refs/remotes/origin/main", head)
    try:
        assert diff.resolve_base(None, repo) == ("merge base with origin/main", head)
    finally:
        git(repo, "update-ref", "-d", "refs/remotes/origin/main")


# --- the comparison on made-up snapshots (no plan) -----------------------------------------------


def res(name: str, type_: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:home::homelab::{type_}::{name}",
        "type": type_,
        "name": name,
        "parent": None,
        "protect": False,
        "inputs": inputs,
        "secrets": {},
        **extra,
    }


def snap(*resources: dict[str, Any]) -> dict[str, Any]:
    return {**diff.empty_snapshot("home"), "resources": list(resources), "outputSecrets": {"x": "0"}}


def test_talos_secrets_replaced_only_on_a_downgrade() -> None:
    secrets = "talos:machine/secrets:Secrets"
    base = snap(res("home-secrets", secrets, {"talosVersion": "v1.12.7"}, protect=True))
    for version, action in (("v1.12.3", "replace"), ("v1.14.0", "update")):
        head = snap(res("home-secrets", secrets, {"talosVersion": version}, protect=True))
        (change,) = graph_diff.compare(base, head).resources
        assert change.action == action, version
    head = snap(res("home-secrets", secrets, {"talosVersion": "v1.12.3"}, protect=True))
    result = Result("home", "HEAD", "0" * 40, graph_diff.compare(base, head), flux_diff.FluxDiff([], 0, 0, []), [], 0)
    (warning,) = diff.warnings(result)
    assert "replace Secrets `home-secrets`: **protected**" in warning and "new Talos machine secrets" in warning


def test_kubernetes_rename_is_a_replace_and_a_label_an_update() -> None:
    ns = "kubernetes:core/v1:Namespace"
    base = snap(res("rook-namespace", ns, {"metadata": {"name": "rook-ceph", "labels": {"a": "1"}}}))
    renamed = snap(res("rook-namespace", ns, {"metadata": {"name": "rook", "labels": {"a": "1"}}}))
    relabelled = snap(res("rook-namespace", ns, {"metadata": {"name": "rook-ceph", "labels": {"a": "2"}}}))
    (change,) = graph_diff.compare(base, renamed).resources
    assert change.action == "replace" and change.replace_reasons[0].startswith("metadata.name:")
    assert change.destroys == graph_diff.DESTRUCTIVE[ns]
    (change,) = graph_diff.compare(base, relabelled).resources
    assert change.action == "update" and change.destroys == ""


def test_kubernetes_provider_replaced_only_when_its_cluster_identifier_changes() -> None:
    provider = "pulumi:providers:kubernetes"
    unset = snap(res("kubernetes", provider, {"kubeconfig": snapshot.REDACTED}))
    home = snap(res("kubernetes", provider, {"kubeconfig": snapshot.REDACTED, "clusterIdentifier": "home"}))
    lab = snap(res("kubernetes", provider, {"kubeconfig": snapshot.REDACTED, "clusterIdentifier": "lab"}))
    (change,) = graph_diff.compare(unset, home).resources
    assert change.action == "update", "setting it is on-boarding, not a replacement"
    (change,) = graph_diff.compare(home, lab).resources
    assert change.action == "replace" and change.destroys == graph_diff.DESTRUCTIVE[provider]


def test_secret_compared_by_fingerprint_only() -> None:
    sec = "kubernetes:core/v1:Secret"
    base = snap(res("s", sec, {"data": snapshot.REDACTED}, secrets={"data": "aa"}))
    same = snap(res("s", sec, {"data": snapshot.REDACTED}, secrets={"data": "aa"}))
    other = snap(res("s", sec, {"data": snapshot.REDACTED}, secrets={"data": "bb"}))
    assert graph_diff.compare(base, same).resources == []
    (change,) = graph_diff.compare(base, other).resources
    assert [c.as_json() for c in change.changes] == [{"path": "data", "change": graph_diff.SECRET_CHANGED}]


def test_day2_steps_are_read_from_the_resource_names() -> None:
    apply, command = graph_diff.APPLY, graph_diff.COMMAND
    reset = {"node": "10.0.10.14", "onDestroy": {"reset": True, "graceful": True}}

    def step(name: str, key: str, target: str, planes: str = "10.0.10.11") -> dict[str, Any]:
        # The environment is plain (the credential comes on stdin): the target shows.
        return res(name, command, {"environment": {key: target, "CONTROL_PLANES": planes}})

    base = snap(
        res("home-apply-k8s-0", apply, {"node": "10.0.10.11"}),
        res("home-apply-k8s-1", apply, {"node": "10.0.10.12"}),
        res("home-apply-k8s-3", apply, reset),
        step("home-upgrade-k8s-0", "TALOS_IMAGE", "image-a"),
        step("home-upgrade-k8s-1", "TALOS_IMAGE", "image-a"),
        step("home-reboot-k8s-0", "CONFIG_HASH", "hash-a"),
        step("home-kubernetes-upgrade", "KUBERNETES_VERSION", "k8s-a"),
        res("home-guard-k8s-3", command, {"environment": {"NODE_NAME": "k8s-3"}}),
        res("home-cleanup-k8s-3", command, {"environment": {"NODE_NAME": "k8s-3"}}),
    )
    head = snap(
        res("home-apply-k8s-0", apply, {"node": "10.0.10.11"}),
        res("home-apply-k8s-1", apply, {"node": "10.0.10.12"}),
        step("home-upgrade-k8s-0", "TALOS_IMAGE", "image-b"),
        # Only the control planes changed: update runs, its script sees its target reached.
        step("home-upgrade-k8s-1", "TALOS_IMAGE", "image-a", planes="10.0.10.11,10.0.10.12"),
        step("home-reboot-k8s-0", "CONFIG_HASH", "hash-a", planes="10.0.10.11,10.0.10.12"),
        step("home-kubernetes-upgrade", "KUBERNETES_VERSION", "k8s-b"),
    )
    result = graph_diff.compare(base, head)
    nodes = {n.node: n for n in result.nodes}
    assert nodes["k8s-0"].steps == ["Talos upgrade (talosctl upgrade: drains, reboots into the new image)"]
    assert nodes["k8s-0"].reboot == graph_diff.REBOOTS
    assert by_name_in(result, "home-upgrade-k8s-0").action == "update"
    assert "k8s-1" not in nodes
    for name in ("home-upgrade-k8s-1", "home-reboot-k8s-0"):
        assert (by_name_in(result, name).action, by_name_in(result, name).note) == ("update", graph_diff.SAME_TARGET)
    # In the order they act: the guard's delete, the reset, the Node's deletion.
    assert nodes["k8s-3"].steps == [
        "removal guard: refused when it would cost etcd quorum or Ceph data",
        graph_diff.RESET,
        "its Kubernetes Node is deleted after the reset",
    ]
    assert nodes["k8s-3"].reboot == graph_diff.RESET
    assert result.cluster_steps == [
        "Kubernetes upgrade (talosctl upgrade-k8s: control planes one by one, then kubelets)"
    ]
    report = Result("home", "HEAD", "0" * 40, result, flux_diff.FluxDiff([], 0, 0, []), [], 0)
    warnings = diff.warnings(report)
    assert any("node `k8s-3`: reset" in w for w in warnings)
    assert not any("replaced" in w for w in warnings)
    text = diff.markdown(report)
    assert "- **Nodes reset**: k8s-3" in text
    assert f"  - {graph_diff.SAME_TARGET}" in text


def test_a_day2_step_with_triggers_would_be_replaced_and_act_on_nothing() -> None:
    # pulumi-command marks triggers replaceOnChanges (v1.2.1 common/inputs.go): a replaced step
    # runs create, which only records its target. The program sets none; the diff says so if one did.
    command = graph_diff.COMMAND
    node = res("home-apply-k8s-0", graph_diff.APPLY, {"node": "10.0.10.11"})
    base = snap(node, res("home-upgrade-k8s-0", command, {"environment": {"TALOS_IMAGE": "a"}, "triggers": ["a"]}))
    head = snap(node, res("home-upgrade-k8s-0", command, {"environment": {"TALOS_IMAGE": "b"}, "triggers": ["b"]}))
    result = graph_diff.compare(base, head)
    assert by_name_in(result, "home-upgrade-k8s-0").action == "replace"
    report = Result("home", "HEAD", "0" * 40, result, flux_diff.FluxDiff([], 0, 0, []), [], 0)
    warnings = diff.warnings(report)
    assert "- home-upgrade-k8s-0: Talos upgrade step replaced, so only its create runs: not upgraded" in warnings
    assert f"- why: {graph_diff.REPLACED_WHY}" in warnings


def test_day2_update_acts_only_when_its_target_changes() -> None:
    command = graph_diff.COMMAND
    base = snap(
        res("home-apply-k8s-0", graph_diff.APPLY, {"node": "10.0.10.11"}),
        res("home-reboot-k8s-0", command, {"environment": {"CONFIG_HASH": "a", "APPLY_MODE": "staged"}}),
    )
    moved = snap(
        res("home-apply-k8s-0", graph_diff.APPLY, {"node": "10.0.10.11"}),
        res("home-reboot-k8s-0", command, {"environment": {"CONFIG_HASH": "b", "APPLY_MODE": "staged"}}),
    )
    (change,) = graph_diff.compare(base, moved).resources
    assert change.action == "update" and change.note != graph_diff.SAME_TARGET
    same = snap(
        res("home-apply-k8s-0", graph_diff.APPLY, {"node": "10.0.10.11"}),
        res("home-reboot-k8s-0", command, {"environment": {"CONFIG_HASH": "a", "APPLY_MODE": "no_reboot"}}),
    )
    (change,) = graph_diff.compare(base, same).resources
    assert change.action == "update" and change.note == graph_diff.SAME_TARGET


def by_name_in(result: graph_diff.GraphDiff, name: str) -> graph_diff.ResourceChange:
    (found,) = [r for r in result.resources if r.name == name]
    return found


def test_snapshot_fingerprints_need_the_key() -> None:
    wrapped = {rpc._special_sig_key: rpc._special_secret_sig, "value": {"k": "v"}}
    value = {"a": [1, wrapped], "b": wrapped}
    key = bytes.fromhex("00" * 32)
    prints = snapshot.secret_fingerprints(value, key, rpc.is_rpc_secret, offline.plain)
    assert set(prints) == {"a[1]", "b"} and prints["a[1]"] == prints["b"]
    other = snapshot.secret_fingerprints(value, bytes.fromhex("01" * 32), rpc.is_rpc_secret, offline.plain)
    assert other["b"] != prints["b"], "another run's key gives another fingerprint"
    assert "v" not in json.dumps(prints)


def test_chart_change_reads_as_chart_and_versions() -> None:
    assert flux_diff.chart_change(("ollama", "1.34.0"), ("ollama", "1.35.0")) == "ollama 1.34.0 → 1.35.0"
    assert flux_diff.chart_change(("volsync", "0.13.1"), ("volsync-fork", "0.90.1")) == (
        "volsync 0.13.1 → volsync-fork 0.90.1"
    )
    assert flux_diff.chart_change(None, ("ollama", "1.35.0")) == "? → ollama 1.35.0"
