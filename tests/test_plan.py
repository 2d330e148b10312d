"""The offline plan's report and artifacts."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plan import offline, report
from tests.conftest import ROOT, home_config, run_config

# Values the mocks hand out for credentials: none may leak into the artifacts.
FAKE_SECRETS = ["offline-cert", "offline-key", "offline.token", "offline-cluster-secret", "offline-ca", "offline-crt"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("plan") / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "plan", "--stack", "home", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc, out


def test_plan_succeeds_and_prints_the_tree(artifacts: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = artifacts
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("homelab:index:TalosCluster home (") for line in lines)
    assert any("ConfigurationApply home-apply-k8s-0" in line for line in lines)
    assert any("Secrets home-secrets [protect]" in line for line in lines)
    summary = next(line for line in lines if " resources, " in line)
    assert "6 ConfigurationApply" in summary
    assert "outputs: " in proc.stdout and "kubeconfig (secret)" in proc.stdout


def test_artifacts_written(artifacts: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = artifacts
    graph = json.loads((out / "graph.json").read_text())
    names = {r["name"] for r in graph["resources"]}
    assert {f"home-apply-k8s-{i}" for i in range(6)} <= names
    assert sorted(p.name for p in (out / "talos").iterdir()) == [f"k8s-{i}.yaml" for i in range(6)]
    assert (out / "graph.dot").read_text().startswith("digraph homelab {")
    assert (out / "graph.mmd").read_text().startswith("flowchart LR")
    if shutil.which("dot"):
        assert (out / "graph.svg").read_text().lstrip().startswith("<?xml")
    apply1 = next(r for r in graph["resources"] if r["name"] == "home-apply-k8s-1")
    assert "home-apply-k8s-0" in apply1["dependencies"]
    assert apply1["parent"] == "home"


def test_secrets_are_redacted(artifacts: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = artifacts
    text = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    leaked = [s for s in FAKE_SECRETS if s in text]
    assert leaked == []
    graph = json.loads((out / "graph.json").read_text())
    assert graph["outputs"]["kubeconfig"] == offline.REDACTED
    apply0 = next(r for r in graph["resources"] if r["name"] == "home-apply-k8s-0")
    assert apply0["inputs"]["machineConfigurationInput"] == offline.REDACTED


def test_numbers_show_as_written(artifacts: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = artifacts
    graph = json.loads((out / "graph.json").read_text())
    cilium = next(r for r in graph["resources"] if r["name"] == "cilium-chart")
    port = cilium["inputs"]["values"]["k8sServicePort"]
    assert port == 7445 and isinstance(port, int)


def test_node_patches_are_merged_per_node(home: offline.Capture) -> None:
    merged = report.node_patches(home)
    main, *docs = merged["k8s-4"]
    assert main["machine"]["nodeLabels"] == {"intel.feature.node.kubernetes.io/gpu": "true"}
    assert main["machine"]["install"]["disk"] == "/dev/disk/by-id/ata-CT500MX500SSD1_2301E6A00002"
    assert {d["kind"] for d in docs} >= {"HostnameConfig", "LinkConfig"}
    assert "Layer2VIPConfig" not in {d["kind"] for d in docs}


def test_pictures_show_charts_and_their_edges(home: offline.Capture) -> None:
    mmd = report.mermaid(home)
    ids = {line.split("[", 1)[0].strip(): line for line in mmd.splitlines() if "<br/>" in line}
    cilium = next(i for i, line in ids.items() if '"cilium-chart<br/>' in line)
    coredns = next(i for i, line in ids.items() if '"coredns-chart<br/>' in line)
    assert f"  {coredns} --> {cilium}" in mmd.splitlines()
    assert not any('"cilium<br/>' in line for line in ids.values()), "components are groups, not nodes"
    provider = next(i for i, line in ids.items() if '"kubernetes<br/>' in line)
    # The CNI's chart waits on nothing else drawn: its dashed edge shows it hangs off the cluster's provider.
    assert f"  {cilium} -.-> {provider}" in mmd.splitlines()
    assert f"  {coredns} -.-> {provider}" not in mmd.splitlines()


def test_tree_and_pictures_show_the_day2_steps_in_their_order(home: offline.Capture) -> None:
    tree = "\n".join(report.tree_lines(home))
    for step in ("home-upgrade-k8s-0", "home-kubernetes-upgrade", "home-reboot-k8s-5", "home-api-ready"):
        assert f"command:local:Command {step}" in tree
    mmd = report.mermaid(home).splitlines()
    ids = {line.split('"', 2)[1].split("<br/>")[0]: line.split("[", 1)[0].strip() for line in mmd if "<br/>" in line}
    chain = ["home-upgrade-k8s-0", "home-upgrade-k8s-1", "home-upgrade-k8s-2"]
    for before, after in itertools.pairwise(chain):
        assert f"  {ids[after]} --> {ids[before]}" in mmd
    assert f"  {ids['home-kubernetes-upgrade']} --> {ids['home-upgrade-k8s-5']}" in mmd
    assert f"  {ids['home-reboot-k8s-1']} --> {ids['home-reboot-k8s-0']}" in mmd


def test_edges_follow_dependencies(home: offline.Capture) -> None:
    edges = set(report.edges(home))
    assert ("home-apply-k8s-1", "home-apply-k8s-0") in edges
    assert ("home-bootstrap", "home-apply-k8s-0") in edges
    assert ("home-apply-k8s-0", "home-apply-k8s-1") not in edges


def test_plan_of_another_stack(tmp_path: Path) -> None:
    config = home_config()
    config["homelab:nodes"] = config["homelab:nodes"][:1]
    config["homelab:cluster"]["allowSchedulingOnControlPlanes"] = True  # the one node runs everything
    config.pop("homelab:rook")  # Ceph needs three OSD hosts at the default replica count
    capture = run_config(config, stack="single")
    assert len(capture.of_type("talos:machine/configurationApply:ConfigurationApply")) == 1
    written = report.write(capture, tmp_path / "single")
    assert (tmp_path / "single" / "talos" / "k8s-0.yaml") in written


def test_unknown_stack_file() -> None:
    assert report.main(["--stack", "does-not-exist"]) == 2


def test_duplicate_urns_fail_the_plan_as_they_fail_the_engine(tmp_path: Path) -> None:
    # In a process of its own: a run that fails mid-registration leaves the runtime's loop unusable.
    program = tmp_path / "dup.py"
    program.write_text(
        "import pulumi\n"
        "class Thing(pulumi.CustomResource):\n"
        "    def __init__(self, name):\n"
        "        super().__init__('test:index:Thing', name, {})\n"
        "Thing('same')\n"
        "Thing('same')\n"
    )
    code = (
        "from pathlib import Path\nfrom plan import offline\n"
        f"offline.run('dup', {{}}, [], program=Path({str(program)!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "Duplicate resource URN 'urn:pulumi:dup::homelab::pulumi:pulumi:Stack$test:index:Thing::same'" in proc.stderr


def test_plan_of_a_stack_file_elsewhere(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.elsewhere.yaml"
    stack.write_text((ROOT / "Pulumi.minimal.yaml").read_text())
    assert report.main(["--file", str(stack), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "graph.json").is_file()


def test_graph_json_is_the_same_on_every_run(artifacts: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    # Invokes run concurrently and arrive in a different order each run; a diff of two plans needs a stable file.
    again = report.graph_json(offline.run_stack_file(ROOT / "Pulumi.home.yaml"))
    first = (artifacts[1] / "graph.json").read_text()
    assert json.dumps(again, indent=2) + "\n" == first
