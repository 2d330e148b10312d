"""Day-2 step scripts, run for real with bash/python3 and stub ``talosctl``/``kubectl`` first on PATH.

The stubs record every call (argv as a JSON list, one line per call) and what the
script handed them (credential files: path, mode, content; leaked ``*_DATA``
variables), and answer from per-test rules: a glob over the command line and a
list of answers (stdout, exit code, delay), the last one repeating. The flags the
scripts send are those of talosctl v1.13 (siderolabs/talos cmd/talosctl/cmd/talos/
upgrade.go, health.go, reboot.go, upgrade-k8s.go, etcd.go), named in
``components/talos_steps.py``.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components import talos_steps
from components.talos_steps import Step

STUB = """#!{python} -IS
import fnmatch, json, os, sys, time
d = os.environ["STUB_DIR"]
argv = [os.path.basename(sys.argv[0]), *sys.argv[1:]]
rec = {{"argv": argv, "leaked": [k for k in ("TALOSCONFIG_DATA", "KUBECONFIG_DATA") if k in os.environ]}}
for var in ("TALOSCONFIG", "KUBECONFIG"):
    p = os.environ.get(var)
    if p:
        rec[var] = {{
            "path": p,
            "mode": os.stat(p).st_mode & 0o777,
            "dir_mode": os.stat(os.path.dirname(p)).st_mode & 0o777,
            "content": open(p).read(),
        }}
with open(os.path.join(d, "calls.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\\n")
line = " ".join(argv)
for i, rule in enumerate(json.load(open(os.path.join(d, "rules.json")))):
    if fnmatch.fnmatchcase(line, rule["match"]):
        counter = os.path.join(d, "count-%d" % i)
        n = int(open(counter).read()) if os.path.exists(counter) else 0
        open(counter, "w").write(str(n + 1))
        answer = rule["answers"][min(n, len(rule["answers"]) - 1)]
        time.sleep(answer.get("sleep", 0))
        sys.stdout.write(answer.get("out", ""))
        sys.stderr.write(answer.get("err", ""))
        sys.exit(answer.get("rc", 0))
"""

TALOSCONFIG = "context: home\ncontexts:\n  home:\n    ca: Q0E=\n"
KUBECONFIG = "apiVersion: v1\nkind: Config\n"
CPS = "10.0.10.11,10.0.10.12,10.0.10.13"
WORKERS = "10.0.10.21,10.0.10.22"
FAST = {"CALL_TIMEOUT": "5", "CEPH_INTERVAL": "0", "POLL_INTERVAL": "0", "HEALTH_TIMEOUT": "5"}
TARGET = talos_steps.TARGET_PREFIX


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]
    tmpdir: Path
    seconds: float

    @property
    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls]


class Runner:
    """Runs a script with the stubs first on PATH and a private TMPDIR."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.stub_dir = root / "stub"
        self.stub_dir.mkdir()
        self.tmpdir = root / "tmp"
        self.tmpdir.mkdir()
        for name in ("talosctl", "kubectl"):
            path = self.bin / name
            path.write_text(STUB.format(python=sys.executable))
            path.chmod(0o755)

    def __call__(
        self,
        script: str,
        env: Mapping[str, str],
        rules: Sequence[tuple[str, Sequence[Mapping[str, Any]]]] = (),
        interpreter: Sequence[str] = talos_steps.BASH,
        timeout: float = 30,
        *,
        stdin: str | None = None,
    ) -> Result:
        (self.stub_dir / "rules.json").write_text(json.dumps([{"match": m, "answers": list(a)} for m, a in rules]))
        for old in self.stub_dir.glob("count-*"):
            old.unlink()
        calls_file = self.stub_dir / "calls.jsonl"
        calls_file.unlink(missing_ok=True)
        full_env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root),
            "TMPDIR": str(self.tmpdir),
            "STUB_DIR": str(self.stub_dir),
            "LC_ALL": "C",
            **env,
        }
        start = time.monotonic()
        proc = subprocess.run(
            [*interpreter, script],
            env=full_env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - start
        calls = [json.loads(x) for x in calls_file.read_text().splitlines()] if calls_file.exists() else []
        return Result(proc.returncode, proc.stdout, proc.stderr, calls, self.tmpdir, seconds)


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def node_env(**extra: str) -> dict[str, str]:
    env = {
        "TALOSCONFIG_DATA": TALOSCONFIG,
        "NODE_NAME": "k8s-1",
        "NODE_ADDRESS": "10.0.10.12",
        "CONTROL_PLANES": CPS,
        **FAST,
    }
    env.update(extra)
    return env


def health_argv(first: str = "10.0.10.11", wait: str = "5") -> list[str]:
    """The gate of a rolling step: the members Talos reports (no node listed)."""
    return ["talosctl", "--nodes", first, "health", "--wait-timeout", f"{wait}s"]


def ceph(*args: str, ns: str = "rook-ceph") -> list[str]:
    conf = f"--conf=/var/lib/rook/{ns}/{ns}.config"
    return ["kubectl", "--namespace", ns, "exec", "deploy/rook-ceph-operator", "--", "ceph", conf, *args]


def previous(value: str) -> str:
    """What pulumi-command hands the update script: the stdout of the previous run."""
    return f"some talosctl output\n{TARGET}{value}\n"


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- the interface -------------------------------------------------------------------------


def test_every_step_is_pure_text_identical_for_every_node() -> None:
    """No value reaches a script through its text: the functions take none, so two calls agree."""
    for name, make in talos_steps.STEPS.items():
        first, second = make(), make()
        assert first == second, name
        assert isinstance(first, Step)
        assert set(first.secret_keys) <= {"TALOSCONFIG_DATA", "KUBECONFIG_DATA"}, name
        assert not set(first.env_keys) & set(first.optional_keys), name
        for key in first.optional_keys:
            assert key in talos_steps.DEFAULTS or key.endswith("_DATA") or key == "CONTROL_PLANES", (name, key)


@pytest.mark.parametrize("name", [n for n in talos_steps.STEPS if n != "api_ready"])
def test_bash_scripts_parse_and_keep_strict_mode(name: str) -> None:
    step = talos_steps.STEPS[name]()
    for script in (step.create, step.update, step.delete):
        if script is None or script == "true":
            continue
        assert script.startswith("set -euo pipefail\n"), name
        assert "eval" not in script.split(), name
        subprocess.run(["bash", "-n", "-c", script], check=True)


def test_check_env_names_missing_and_unknown_keys() -> None:
    step = talos_steps.upgrade_node()
    env = {k: v for k, v in node_env().items() if k != "POLL_INTERVAL"}
    step.check_env({**env, "TALOS_IMAGE": "x", "OSD_NODE": "true", "KUBECONFIG_DATA": "k"})
    with pytest.raises(ValueError, match=r"missing TALOS_IMAGE; unknown NODE_IP, POLL_INTERVAL"):
        step.check_env({**env, "NODE_IP": "x", "POLL_INTERVAL": "1"})


def test_missing_variable_is_one_clear_line(run: Runner) -> None:
    env = node_env()
    del env["NODE_ADDRESS"]
    result = run(talos_steps.upgrade_node().update or "", {**env, "TALOS_IMAGE": "img:v1"})
    assert result.rc == 1
    assert result.stderr.strip() == "homelab: k8s-1 (?): environment variable NODE_ADDRESS is not set"
    assert result.calls == []


def test_a_timeout_that_is_not_a_number_is_refused(run: Runner) -> None:
    result = run(talos_steps.upgrade_node().update or "", node_env(TALOS_IMAGE="img:v1", UPGRADE_TIMEOUT="30m"))
    assert result.rc == 1
    assert "UPGRADE_TIMEOUT must be a whole number of seconds, not '30m'" in result.stderr
    assert result.calls == []
    env = node_env(TALOS_IMAGE="img:v1", OSD_NODE="true", CEPH_INTERVAL="1s")
    interval = run(talos_steps.upgrade_node().update or "", env)
    assert "CEPH_INTERVAL must be a number of seconds, not '1s'" in interval.stderr


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("upgrade_node", "TALOS_IMAGE"),
        ("reboot_node", "CONFIG_HASH"),
        ("settle_node", "CONFIG_HASH"),
        ("upgrade_k8s", "KUBERNETES_VERSION"),
    ],
)
def test_create_touches_no_node_and_records_its_target(run: Runner, name: str, target: str) -> None:
    """First bootstrap and an added node: nothing upgrades or reboots."""
    step = talos_steps.STEPS[name]()
    value = "factory.talos.dev/installer/abc:v1.13.2"
    result = run(step.create, {**node_env(APPLY_MODE="staged", OSD_NODE="true"), target: value})
    assert result.rc == 0, result.stderr
    assert result.calls == []
    assert result.stdout == f"{TARGET}{value}\n"
    assert target in step.env_keys


# --- Talos upgrade -------------------------------------------------------------------------


def test_upgrade_of_a_node_without_osds(run: Runner) -> None:
    image = "factory.talos.dev/installer/376567988ad3:v1.13.2"
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE=image, UPGRADE_TIMEOUT="900", PULUMI_COMMAND_STDOUT=previous("old:v1.13.1")),
    )
    assert result.rc == 0, result.stderr
    upgrade = ["talosctl", "--nodes", "10.0.10.12", "upgrade", "--image", image, "--wait", "--timeout", "900s"]
    assert result.argvs == [health_argv(), [*upgrade, "--drain-timeout", "300s"], health_argv()]
    assert "--preserve" not in result.argvs[1]  # deprecated in v1.13 and skips the etcd check on the legacy path
    assert last_line(result.stdout) == f"{TARGET}{image}"


def test_rolling_gates_check_the_members_talos_reports(run: Runner) -> None:
    # No node list: talosctl health reads the members from the Talos API (health.go, buildClusterInfo),
    # so adding or removing another node does not change this step's inputs.
    env = node_env(TALOS_IMAGE="img:v2", CONTROL_PLANES="10.0.10.11")
    result = run(talos_steps.upgrade_node().update or "", env)
    assert result.rc == 0, result.stderr
    assert result.argvs[0] == health_argv("10.0.10.11")
    assert "WORKERS" not in talos_steps.upgrade_node().optional_keys


def test_upgrade_to_the_recorded_image_does_nothing(run: Runner) -> None:
    """An update run by another input's change (e.g. the talosconfig after adding a node) reboots nothing."""
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE="img:v1.13.2", OSD_NODE="true", PULUMI_COMMAND_STDOUT=previous("img:v1.13.2")),
    )
    assert result.rc == 0, result.stderr
    assert result.calls == []
    assert last_line(result.stdout) == f"{TARGET}img:v1.13.2"


def test_upgrade_of_an_osd_node_waits_for_ceph_and_sets_noout_around_it(run: Runner) -> None:
    image = "img:v1.13.2"
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE=image, OSD_NODE="true", KUBECONFIG_DATA=KUBECONFIG, ROOK_NAMESPACE="ceph"),
        rules=[
            (
                "kubectl * ceph --conf=* health",
                [
                    {"out": "HEALTH_WARN 1 pgs degraded\n"},
                    {"out": "HEALTH_OK\n"},
                    {"out": "HEALTH_WARN noout\n"},
                    {"out": "HEALTH_OK\n"},
                ],
            )
        ],
    )
    assert result.rc == 0, result.stderr
    assert result.argvs == [
        health_argv(),
        ceph("health", ns="ceph"),
        ceph("health", ns="ceph"),
        ceph("osd", "set", "noout", ns="ceph"),
        result.argvs[4],
        health_argv(),
        ceph("osd", "unset", "noout", ns="ceph"),
        ceph("health", ns="ceph"),
        ceph("health", ns="ceph"),
    ]
    assert result.argvs[4][:4] == ["talosctl", "--nodes", "10.0.10.12", "upgrade"]


def test_failed_upgrade_unsets_noout_and_stops_the_chain(run: Runner) -> None:
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE="img:v2", OSD_NODE="true", KUBECONFIG_DATA=KUBECONFIG),
        rules=[("kubectl * ceph --conf=* health", [{"out": "HEALTH_OK\n"}]), ("talosctl * upgrade *", [{"rc": 1}])],
    )
    assert result.rc == 1
    argvs = result.argvs
    assert argvs[-2][:4] == ["talosctl", "--nodes", "10.0.10.12", "upgrade"]
    assert argvs[-1] == ceph("osd", "unset", "noout")
    assert ceph("osd", "set", "noout") in argvs
    assert "homelab: k8s-1 (10.0.10.12): talosctl upgrade to img:v2 failed" in result.stderr
    assert TARGET not in result.stdout  # not recorded: the next `up` retries


def test_cancelled_upgrade_stops_the_tool_and_unsets_noout(run: Runner) -> None:
    """Pulumi cancelling the step (SIGTERM) ends talosctl too, and noout is not left behind."""
    (run.stub_dir / "rules.json").write_text(
        json.dumps(
            [
                {"match": "kubectl * ceph --conf=* health", "answers": [{"out": "HEALTH_OK\n"}]},
                {"match": "talosctl * upgrade *", "answers": [{"sleep": 30}]},
            ]
        )
    )
    env = {
        "PATH": f"{run.bin}:/usr/bin:/bin",
        "TMPDIR": str(run.tmpdir),
        "STUB_DIR": str(run.stub_dir),
        **node_env(TALOS_IMAGE="img:v2", OSD_NODE="true", KUBECONFIG_DATA=KUBECONFIG),
    }
    calls = run.stub_dir / "calls.jsonl"
    proc = subprocess.Popen([*talos_steps.BASH, talos_steps.upgrade_node().update or ""], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (calls.exists() and '"upgrade"' in calls.read_text()):
        time.sleep(0.05)
    time.sleep(0.2)  # the stub is now sleeping inside its call
    proc.terminate()
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 143, stderr
    argvs = [json.loads(x)["argv"] for x in calls.read_text().splitlines()]
    assert argvs[-1] == ceph("osd", "unset", "noout")
    assert list(run.tmpdir.iterdir()) == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(run.bin / "talosctl") not in ps


def test_ceph_that_never_turns_ok_ends_the_wait(run: Runner) -> None:
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE="img:v2", OSD_NODE="true", KUBECONFIG_DATA=KUBECONFIG, CEPH_TIMEOUT="0"),
        rules=[("kubectl * ceph --conf=* health", [{"out": "HEALTH_WARN mon down\n"}])],
    )
    assert result.rc == 1
    assert "Ceph not HEALTH_OK within 0s before upgrading (last: HEALTH_WARN mon down)" in result.stderr
    assert not any(a[3:4] == ["upgrade"] for a in result.argvs)
    assert ceph("osd", "set", "noout") not in result.argvs
    # Gave up rather than waiting on (unbounded, it would never end): not a speed target.
    assert result.seconds < 15


def test_a_hanging_health_check_is_killed_at_its_bound(run: Runner) -> None:
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE="img:v2", HEALTH_TIMEOUT="0", CALL_TIMEOUT="0"),
        rules=[("talosctl * health *", [{"sleep": 20}])],
    )
    assert result.rc == 1
    assert "homelab: k8s-1 (10.0.10.12): cluster not healthy within 0s before upgrading k8s-1" in result.stderr
    assert len(result.calls) == 1
    # Killed at its bound, well before the stub's 20 s: not a speed target.
    assert result.seconds < 15


def test_values_reach_the_tools_verbatim(run: Runner) -> None:
    """Spaces, quotes, globs and command substitutions are data, never code."""
    nasty = "img:v2 $(touch pwned) `id` 'q' \"d\" *; rm -rf x"
    name = "k8s $(whoami) 'x'"
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE=nasty, NODE_ADDRESS="10.0.10.12 ;x", NODE_NAME=name, CONTROL_PLANES="a b,c"),
    )
    assert result.rc == 0, result.stderr
    upgrade = result.argvs[1]
    assert upgrade[2] == "10.0.10.12 ;x"
    assert upgrade[5] == nasty
    assert result.argvs[0][2] == "a b"  # the first control plane of "a b,c"
    assert not (result.tmpdir / "pwned").exists()
    assert not Path("pwned").exists()
    assert last_line(result.stdout) == f"{TARGET}{nasty}"


def test_the_credential_can_come_on_stdin(run: Runner) -> None:
    # The wiring passes the credential as the command's stdin (a Pulumi secret), so the environment
    # stays plain; pulumi-command feeds stdin to create, update and delete alike (v1.2.1 local/commandOutputs.go).
    env = node_env(TALOS_IMAGE="img:v2", STDIN_SECRET="TALOSCONFIG_DATA")
    del env["TALOSCONFIG_DATA"]
    result = run(talos_steps.upgrade_node().update or "", env, stdin=TALOSCONFIG + "\n")
    assert result.rc == 0, result.stderr
    assert result.calls[0]["TALOSCONFIG"]["content"] == TALOSCONFIG + "\n"
    assert all(c["leaked"] == [] for c in result.calls)
    bad = run(talos_steps.upgrade_node().update or "", {**env, "STDIN_SECRET": "PATH"}, stdin="x")
    assert bad.rc == 1
    assert "STDIN_SECRET must name TALOSCONFIG_DATA or KUBECONFIG_DATA, not 'PATH'" in bad.stderr


def test_private_directories_of_killed_steps_are_removed(run: Runner) -> None:
    # A cancelled up kills a step (SIGKILL from Go's exec.CommandContext): no trap runs. The next
    # step removes the directories whose owning process is gone, and only those.
    dead = run.tmpdir / "homelab-step.999999999.abc"
    alive = run.tmpdir / f"homelab-step.{os.getpid()}.abc"
    for d in (dead, alive):
        d.mkdir()
        (d / "talosconfig.x").write_text("secret")
    result = run(talos_steps.upgrade_node().update or "", node_env(TALOS_IMAGE="img:v2"))
    assert result.rc == 0, result.stderr
    assert not dead.exists()
    assert alive.exists()


HOSTNAME_READ = ["get", "hostname", "-o", "yaml"]


def guarded(result: Result) -> list[list[str]]:
    """The guard's calls after its first one, the host name read at the node's address."""
    assert result.argvs[0][:3] == ["talosctl", "--nodes", result.argvs[0][2]]
    assert result.argvs[0][3:] == HOSTNAME_READ
    return result.argvs[1:]


def test_guard_refuses_the_reset_of_a_renamed_node(run: Runner) -> None:
    # A node renamed in the inventory is a new apply at the same address; Pulumi creates it, then
    # deletes the old one, whose reset would wipe the machine just configured under the new name.
    env = {"TALOSCONFIG_DATA": TALOSCONFIG, "NODE_NAME": "k8s-3", "NODE_ADDRESS": "10.0.10.21", "NODE_ROLE": "worker"}
    answer = 'node: 10.0.10.21\nspec:\n    hostname: storage-3\n    domainname: ""\n'
    step = talos_steps.remove_guard().delete or ""
    renamed = run(step, {**env, **FAST}, [("talosctl * get hostname *", [{"out": answer}])])
    assert renamed.rc == 1
    assert "refusing removal: the machine at 10.0.10.21 is now 'storage-3'" in renamed.stderr
    same = run(step, {**env, **FAST}, [("talosctl * get hostname *", [{"out": answer.replace("storage-3", "k8s-3")}])])
    assert same.rc == 0, same.stderr
    dead = run(step, {**env, **FAST}, [("talosctl * get hostname *", [{"rc": 1}])])
    assert dead.rc == 0, dead.stderr


def test_guard_of_an_osd_node_as_wired(run: Runner) -> None:
    # As the program wires it: the talosconfig on stdin, no kubeconfig (fetched from another control
    # plane), and a TALOSCONFIG of the operator's own in the environment that must not be used.
    env = {
        "STDIN_SECRET": "TALOSCONFIG_DATA",
        "TALOSCONFIG": "/nonexistent/operator-talosconfig",
        "CONTROL_PLANES": CPS,
        "NODE_NAME": "k8s-3",
        "NODE_ADDRESS": "10.0.10.21",
        "NODE_ROLE": "worker",
        "OSD_NODE": "true",
        **FAST,
    }
    result = run(
        talos_steps.remove_guard().delete or "",
        env,
        [("kubectl * ceph --conf=* health", [{"out": "HEALTH_OK\n"}])],
        stdin=TALOSCONFIG,
    )
    assert result.rc == 0, result.stderr
    calls = guarded(result)
    assert calls[0][:2] == ["talosctl", "--nodes"] and "kubeconfig" in calls[0]
    assert all(c["TALOSCONFIG"]["content"] == TALOSCONFIG for c in result.calls if c["argv"][0] == "talosctl")
    assert calls[1:] == [ceph("health"), ceph("osd", "ls-tree", "k8s-3")]


def test_credentials_are_private_files_removed_afterwards(run: Runner) -> None:
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE="img:v2", OSD_NODE="true", KUBECONFIG_DATA=KUBECONFIG),
        rules=[("kubectl * ceph --conf=* health", [{"out": "HEALTH_OK\n"}])],
    )
    assert result.rc == 0, result.stderr
    talos = [c for c in result.calls if c["argv"][0] == "talosctl"]
    kube = [c for c in result.calls if c["argv"][0] == "kubectl"]
    assert talos and kube
    for call, key, content in [(talos[0], "TALOSCONFIG", TALOSCONFIG), (kube[0], "KUBECONFIG", KUBECONFIG)]:
        cred = call[key]
        assert cred["content"] == content
        assert cred["mode"] == 0o600
        assert cred["dir_mode"] == 0o700
        assert Path(cred["path"]).parent.parent == result.tmpdir
        assert not Path(cred["path"]).exists()
    assert all(c["leaked"] == [] for c in result.calls)
    assert list(result.tmpdir.iterdir()) == []
    assert TALOSCONFIG not in result.stdout + result.stderr


def test_credentials_are_removed_when_the_step_fails(run: Runner) -> None:
    result = run(
        talos_steps.upgrade_node().update or "",
        node_env(TALOS_IMAGE="img:v2"),
        rules=[("talosctl * upgrade *", [{"rc": 3}])],
    )
    assert result.rc == 1
    assert list(result.tmpdir.iterdir()) == []


# --- staged reboots and settling --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["no_reboot", "reboot", "auto"])
def test_reboot_does_nothing_unless_the_apply_was_staged(run: Runner, mode: str) -> None:
    result = run(talos_steps.reboot_node().update or "", node_env(APPLY_MODE=mode, CONFIG_HASH="h2"))
    assert result.rc == 0, result.stderr
    assert result.calls == []
    assert last_line(result.stdout) == f"{TARGET}h2"


def test_staged_config_reboots_the_node_between_health_gates(run: Runner) -> None:
    result = run(
        talos_steps.reboot_node().update or "",
        node_env(APPLY_MODE="staged", CONFIG_HASH="h2", REBOOT_TIMEOUT="600", PULUMI_COMMAND_STDOUT=previous("h1")),
    )
    assert result.rc == 0, result.stderr
    reboot = ["talosctl", "--nodes", "10.0.10.12", "reboot", "--wait", "--timeout", "600s", "--drain"]
    assert result.argvs == [health_argv(), [*reboot, "--drain-timeout", "300s"], health_argv()]
    assert last_line(result.stdout) == f"{TARGET}h2"


def test_staged_reboot_already_done_for_this_config_is_not_repeated(run: Runner) -> None:
    result = run(
        talos_steps.reboot_node().update or "",
        node_env(APPLY_MODE="staged", CONFIG_HASH="h2", PULUMI_COMMAND_STDOUT=previous("h2")),
    )
    assert result.rc == 0, result.stderr
    assert result.calls == []


def test_failed_reboot_of_an_osd_node_unsets_noout(run: Runner) -> None:
    result = run(
        talos_steps.reboot_node().update or "",
        node_env(APPLY_MODE="staged", CONFIG_HASH="h2", OSD_NODE="true", KUBECONFIG_DATA=KUBECONFIG),
        rules=[("kubectl * ceph --conf=* health", [{"out": "HEALTH_OK\n"}]), ("talosctl * reboot *", [{"rc": 1}])],
    )
    assert result.rc == 1
    assert result.argvs[-1] == ceph("osd", "unset", "noout")
    assert "talosctl reboot failed or the node was not back within 1200s" in result.stderr


def test_settle_waits_for_the_reboot_then_for_health(run: Runner) -> None:
    result = run(
        talos_steps.settle_node().update or "",
        node_env(APPLY_MODE="reboot", CONFIG_HASH="h2", REBOOT_SLACK="30"),
        rules=[("talosctl * read /proc/uptime", [{"out": "86400.12 170000.00\n"}, {"rc": 1}, {"out": "12.5 20.1\n"}])],
    )
    assert result.rc == 0, result.stderr
    read = ["talosctl", "--nodes", "10.0.10.12", "read", "/proc/uptime"]
    assert result.argvs == [read, read, read, health_argv()]
    assert last_line(result.stdout) == f"{TARGET}h2"


def test_settle_gives_up_when_the_node_never_reboots(run: Runner) -> None:
    result = run(
        talos_steps.settle_node().update or "",
        node_env(APPLY_MODE="reboot", CONFIG_HASH="h2", REBOOT_TIMEOUT="0"),
        rules=[("talosctl * read /proc/uptime", [{"out": "86400.12 170000.00\n"}])],
    )
    assert result.rc == 1
    assert "not back from the reboot of its config apply within 0s (uptime: 86400)" in result.stderr
    assert not any("health" in a for a in result.argvs)


def test_settle_after_an_auto_apply_waits_for_a_reboot_that_comes(run: Runner) -> None:
    # The provider reports "auto", not whether Talos rebooted (terraform-provider-talos v0.11.0): the
    # step watches the uptime, and a reboot right after the apply is waited for as with "reboot".
    uptimes: list[dict[str, Any]] = [{"out": "86400.12 1.0\n"}, {"rc": 1}, {"out": "3.5 1.0\n"}]
    result = run(
        talos_steps.settle_node().update or "",
        node_env(APPLY_MODE="auto", CONFIG_HASH="h2", REBOOT_SLACK="30", HEALTH_TIMEOUT="5"),
        rules=[("talosctl * read /proc/uptime", uptimes)],
    )
    assert result.rc == 0, result.stderr
    assert result.argvs[-1] == health_argv()
    assert "after k8s-1 rebooted" in result.stderr


def test_settle_after_an_auto_apply_that_needed_no_reboot_goes_on(run: Runner) -> None:
    result = run(
        talos_steps.settle_node().update or "",
        node_env(APPLY_MODE="auto", CONFIG_HASH="h2", REBOOT_SLACK="1", REBOOT_TIMEOUT="60"),
        rules=[("talosctl * read /proc/uptime", [{"out": "86400.12 1.0\n"}])],
    )
    assert result.rc == 0, result.stderr
    assert "not rebooted within 1s: the change needed no reboot" in result.stderr
    assert result.argvs[-1] == health_argv()
    assert last_line(result.stdout) == f"{TARGET}h2"


@pytest.mark.parametrize("mode", ["no_reboot", "staged"])
def test_settle_does_nothing_without_a_reboot(run: Runner, mode: str) -> None:
    result = run(talos_steps.settle_node().update or "", node_env(APPLY_MODE=mode, CONFIG_HASH="h2"))
    assert result.rc == 0, result.stderr
    assert result.calls == []


# --- Kubernetes upgrade ---------------------------------------------------------------------


def test_kubernetes_upgrade_runs_once_per_version(run: Runner) -> None:
    step = talos_steps.upgrade_k8s()
    env = {"TALOSCONFIG_DATA": TALOSCONFIG, "CONTROL_PLANES": CPS, **FAST}
    result = run(
        step.update or "", {**env, "KUBERNETES_VERSION": "v1.34.1", "PULUMI_COMMAND_STDOUT": previous("v1.33.4")}
    )
    assert result.rc == 0, result.stderr
    upgrade = ["talosctl", "--nodes", "10.0.10.11", "upgrade-k8s", "--to", "v1.34.1"]
    assert result.argvs == [health_argv(), [*upgrade, "--with-docs=false", "--with-examples=false"], health_argv()]
    assert last_line(result.stdout) == f"{TARGET}v1.34.1"
    again = run(step.update or "", {**env, "KUBERNETES_VERSION": "v1.34.1", "PULUMI_COMMAND_STDOUT": result.stdout})
    assert again.rc == 0
    assert again.calls == []


def test_failed_kubernetes_upgrade_fails_the_step(run: Runner) -> None:
    env = {"TALOSCONFIG_DATA": TALOSCONFIG, "CONTROL_PLANES": CPS, "KUBERNETES_VERSION": "v1.34.1", **FAST}
    result = run(talos_steps.upgrade_k8s().update or "", env, rules=[("talosctl * upgrade-k8s *", [{"rc": 1}])])
    assert result.rc == 1
    assert result.stderr.strip().endswith(
        "homelab: cluster: talosctl upgrade-k8s --to v1.34.1 failed or did not finish within 3600s"
    )
    assert len(result.calls) == 2


# --- health and node removal ----------------------------------------------------------------


def test_health_step_runs_on_create_and_update(run: Runner) -> None:
    # Every member Talos reports, not the inventory's lists: Pulumi deletes a removed node's
    # resources after the rest of the run, so a listed check would fail while it still runs.
    step = talos_steps.health()
    assert step.create == step.update
    assert "WORKERS" not in step.optional_keys
    result = run(step.create, {"TALOSCONFIG_DATA": TALOSCONFIG, "CONTROL_PLANES": CPS, "HEALTH_TIMEOUT": "300"})
    assert result.rc == 0, result.stderr
    assert result.argvs == [health_argv(wait="300")]
    failed = run(step.create, {"TALOSCONFIG_DATA": TALOSCONFIG, "CONTROL_PLANES": CPS}, [("talosctl *", [{"rc": 1}])])
    assert failed.rc == 1
    assert "homelab: cluster: cluster not healthy within 600s cluster check" in failed.stderr


MEMBERS = """NODE         ID                 HOSTNAME   PEER URLS                 CLIENT URLS               LEARNER
10.0.10.12   2d6d4bd4e16a0bc8   k8s-0      https://10.0.10.11:2380   https://10.0.10.11:2379   false
10.0.10.12   5bb2c5f0f5d7a3c1   k8s-1      https://10.0.10.12:2380   https://10.0.10.12:2379   false
10.0.10.12   7e1c0d40a1b1f2e3   k8s-2      https://10.0.10.13:2380   https://10.0.10.13:2379   false
"""


def guard_env(**extra: str) -> dict[str, str]:
    return {**node_env(NODE_ROLE="controlplane"), **extra}


def test_guard_allows_removing_a_control_plane_when_the_others_keep_quorum(run: Runner) -> None:
    step = talos_steps.remove_guard()
    result = run(step.delete or "", guard_env(), rules=[("talosctl * etcd members", [{"out": MEMBERS}])])
    assert result.rc == 0, result.stderr
    members = ["talosctl", "--endpoints", "10.0.10.12", "--nodes", "10.0.10.12", "etcd", "members"]
    status = [["talosctl", "--endpoints", ip, "--nodes", ip, "etcd", "status"] for ip in ("10.0.10.11", "10.0.10.13")]
    assert guarded(result) == [members, *status]
    assert "2 of 2 other etcd members healthy" in result.stderr


def test_guard_refuses_when_another_member_is_down(run: Runner) -> None:
    result = run(
        talos_steps.remove_guard().delete or "",
        guard_env(),
        rules=[("talosctl * etcd members", [{"out": MEMBERS}]), ("talosctl * 10.0.10.13 etcd status", [{"rc": 1}])],
    )
    assert result.rc == 1
    assert "only 1 of the 2 other etcd members answer; etcd needs 2 after it leaves" in result.stderr


def test_guard_refuses_the_last_member(run: Runner) -> None:
    only = MEMBERS.splitlines()[0] + "\n" + MEMBERS.splitlines()[2] + "\n"
    result = run(talos_steps.remove_guard().delete or "", guard_env(), [("talosctl * etcd members", [{"out": only}])])
    assert result.rc == 1
    assert "refusing removal: it is the last etcd member" in result.stderr


def test_guard_reads_members_without_the_node_column(run: Runner) -> None:
    """Without metadata talosctl prints no NODE column; a learner does not count towards quorum."""
    table = "ID   HOSTNAME   PEER URLS   CLIENT URLS   LEARNER\n" + "\n".join(
        f"{i}   {h}   https://{ip}:2380   https://{ip}:2379   {learner}"
        for i, h, ip, learner in [
            ("a1", "k8s-0", "10.0.10.11", "false"),
            ("b2", "k8s-1", "10.0.10.12", "false"),
            ("c3", "k8s-9", "10.0.10.19", "true"),
        ]
    )
    result = run(talos_steps.remove_guard().delete or "", guard_env(), [("talosctl * etcd members", [{"out": table}])])
    assert result.rc == 0, result.stderr
    assert [a[2] for a in guarded(result)[1:]] == ["10.0.10.11"]


def test_guard_lets_a_node_that_already_left_go(run: Runner) -> None:
    others = "\n".join(line for line in MEMBERS.splitlines() if "k8s-1" not in line)
    result = run(talos_steps.remove_guard().delete or "", guard_env(), [("talosctl * etcd members", [{"out": others}])])
    assert result.rc == 0, result.stderr
    assert len(guarded(result)) == 1
    assert "not an etcd member; nothing to guard" in result.stderr


def test_guard_fails_closed_when_etcd_cannot_be_read(run: Runner) -> None:
    result = run(talos_steps.remove_guard().delete or "", guard_env(), [("talosctl * etcd members", [{"rc": 1}])])
    assert result.rc == 1
    assert "cannot list etcd members through this node or another control plane" in result.stderr
    assert [a[2] for a in guarded(result)] == ["10.0.10.12", "10.0.10.11", "10.0.10.13"]


def test_guard_asks_another_control_plane_about_a_dead_node(run: Runner) -> None:
    """A dead control plane removed by hand from etcd (docs/recovery.md) may leave the inventory."""
    others = "\n".join(line for line in MEMBERS.splitlines() if "k8s-1" not in line)
    rules: list[tuple[str, list[dict[str, Any]]]] = [
        ("talosctl * 10.0.10.12 etcd members", [{"rc": 1}]),
        ("talosctl * etcd members", [{"out": others}]),
    ]
    result = run(talos_steps.remove_guard().delete or "", guard_env(), rules)
    assert result.rc == 0, result.stderr
    assert [a[2] for a in guarded(result)] == ["10.0.10.12", "10.0.10.11"]
    assert "not an etcd member; nothing to guard" in result.stderr


def test_guard_refuses_an_osd_node_whose_osds_are_not_purged(run: Runner) -> None:
    env = node_env(NODE_ROLE="worker", OSD_NODE="true", KUBECONFIG_DATA=KUBECONFIG)
    step = talos_steps.remove_guard()
    kept = run(step.delete or "", env, [("kubectl * ceph --conf=* osd ls-tree *", [{"out": "3\n7\n"}])])
    assert kept.rc == 1
    assert "Ceph still has OSDs on this host (3 7); purge them first (docs/recovery.md)" in kept.stderr
    assert guarded(kept) == [ceph("health"), ceph("osd", "ls-tree", "k8s-1")]
    enoent = [("kubectl * ceph --conf=* osd ls-tree *", [{"rc": 2, "err": "Error ENOENT"}])]
    purged = run(step.delete or "", env, enoent)
    assert purged.rc == 0, purged.stderr
    down = run(step.delete or "", env, [("kubectl *", [{"rc": 1}])])
    assert down.rc == 1
    assert "operator (deploy/rook-ceph-operator) does not answer to ceph; cannot check its OSDs" in down.stderr


def test_guard_of_a_plain_worker_checks_nothing_and_create_update_do_nothing(run: Runner) -> None:
    step = talos_steps.remove_guard()
    assert (step.create, step.update) == ("true", "true")
    result = run(step.delete or "", node_env(NODE_ROLE="worker"))
    assert result.rc == 0, result.stderr
    assert guarded(result) == []


def test_remove_node_waits_for_etcd_then_deletes_the_node(run: Runner) -> None:
    left = "\n".join(line for line in MEMBERS.splitlines() if "k8s-1" not in line)
    env = node_env(NODE_ROLE="controlplane", KUBECONFIG_DATA=KUBECONFIG, CONTROL_PLANES="10.0.10.12,10.0.10.13")
    result = run(
        talos_steps.remove_node().delete or "",
        env,
        rules=[("talosctl * etcd members", [{"out": MEMBERS}, {"out": left}])],
    )
    assert result.rc == 0, result.stderr
    members = ["talosctl", "--endpoints", "10.0.10.13", "--nodes", "10.0.10.13", "etcd", "members"]
    delete = ["kubectl", "delete", "node", "k8s-1", "--ignore-not-found", "--wait=true", "--timeout=300s"]
    assert result.argvs == [members, members, [*delete, "--request-timeout=5s"]]


def test_remove_node_gives_up_on_a_member_that_does_not_leave(run: Runner) -> None:
    env = node_env(NODE_ROLE="controlplane", KUBECONFIG_DATA=KUBECONFIG, REMOVE_TIMEOUT="0")
    result = run(talos_steps.remove_node().delete or "", env, [("talosctl * etcd members", [{"out": MEMBERS}])])
    assert result.rc == 1
    assert "talosctl -n 10.0.10.11 etcd remove-member <id>" in result.stderr
    assert not any(a[0] == "kubectl" for a in result.argvs)


def test_remove_worker_only_deletes_its_node(run: Runner) -> None:
    env = {
        "TALOSCONFIG_DATA": TALOSCONFIG,
        "CONTROL_PLANES": CPS,
        "KUBECONFIG_DATA": KUBECONFIG,
        "NODE_NAME": "w 1",
        "NODE_ADDRESS": "10.0.10.21",
        "NODE_ROLE": "worker",
    }
    result = run(talos_steps.remove_node().delete or "", env)
    assert result.rc == 0, result.stderr
    assert [a[:4] for a in result.argvs] == [["kubectl", "delete", "node", "w 1"]]
    assert result.calls[0]["KUBECONFIG"]["mode"] == 0o600
    failed = run(talos_steps.remove_node().delete or "", env, [("kubectl *", [{"rc": 1}])])
    assert failed.rc == 1
    assert "homelab: w 1 (10.0.10.21): kubectl delete node failed" in failed.stderr


def test_without_a_kubeconfig_the_step_asks_another_control_plane_for_one(run: Runner) -> None:
    # The removal cleanup exists before the cluster's kubeconfig does in the graph (the node's apply
    # depends on it), so it fetches the admin kubeconfig through the Talos API: not from the node
    # being removed, and from the next control plane when the first does not answer.
    env = {
        "TALOSCONFIG_DATA": TALOSCONFIG,
        "CONTROL_PLANES": "10.0.10.11,10.0.10.12,10.0.10.13",
        "NODE_NAME": "k8s-0",
        "NODE_ADDRESS": "10.0.10.11",
        "NODE_ROLE": "worker",
    }
    result = run(
        talos_steps.remove_node().delete or "", env, [("talosctl --nodes 10.0.10.12 kubeconfig *", [{"rc": 1}])]
    )
    assert result.rc == 0, result.stderr
    fetches = [a for a in result.argvs if a[:1] == ["talosctl"]]
    assert [a[2] for a in fetches] == ["10.0.10.12", "10.0.10.13"]
    assert fetches[-1][3:6] == ["kubeconfig", "--force", "--merge=false"]
    assert result.argvs[-1][:4] == ["kubectl", "delete", "node", "k8s-0"]
    nobody = run(talos_steps.remove_node().delete or "", env, [("talosctl * kubeconfig *", [{"rc": 1}])])
    assert nobody.rc == 1
    assert "no control plane of 10.0.10.11,10.0.10.12,10.0.10.13 handed out a kubeconfig" in nobody.stderr


# --- API readiness gate -----------------------------------------------------------------------

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL or "openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway server CA + certificate for 127.0.0.1 and a client CA + certificate (as Talos issues)."""
    if OPENSSL is None:
        pytest.skip("openssl is not installed: cannot make the throwaway certificates")
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "client-ca"):
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={ca}",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
            cwd=d,
        )
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, subj in (
        ("server", "ca", "/CN=kube-apiserver"),
        ("client", "client-ca", "/O=system:masters/CN=admin"),
    ):
        _openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subj,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            f"{ca}.crt",
            "-CAkey",
            f"{ca}.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
            cwd=d,
        )
    return Pki(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client-ca.crt", d / "client.crt", d / "client.key"
    )


def kubeconfig_yaml(pki: Pki, server: str) -> str:
    """A kubeconfig in the layout Talos generates (one cluster, one user, base64 PEM data)."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return (
        "apiVersion: v1\nkind: Config\nclusters:\n    - name: home\n      cluster:\n"
        f"        server: {server}\n        certificate-authority-data: {b64(pki.ca)}\n"
        "users:\n    - name: admin@home\n      user:\n"
        f"        client-certificate-data: {b64(pki.client_cert)}\n        client-key-data: {b64(pki.client_key)}\n"
        "contexts:\n    - context:\n        cluster: home\n        user: admin@home\n      name: admin@home\n"
        "current-context: admin@home\n"
    )


class ReadyzServer:
    """HTTPS on 127.0.0.1 that requires a client certificate and answers ``/readyz`` from a script."""

    def __init__(self, pki: Pki, answers: Sequence[int]) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cert = self.connection.getpeercert() or {}
                subject = dict(x[0] for x in cert.get("subject", ()))
                outer.seen.append((self.path, str(subject.get("commonName"))))
                code = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                body = b"ok" if code == 200 else b"[-]etcd failed: reason withheld\nreadyz check failed"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.server_cert, pki.server_key)
        ctx.load_verify_locations(pki.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ReadyzServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def ready_env(url: str, kubeconfig: str, **extra: str) -> dict[str, str]:
    return {"API_URL": url, "KUBECONFIG_DATA": kubeconfig, "READY_INTERVAL": "0.1", "READY_TIMEOUT": "10", **extra}


def test_api_gate_waits_for_readyz_with_the_client_certificate(run: Runner, pki: Pki) -> None:
    step = talos_steps.api_ready()
    assert step.create == step.update
    assert step.delete is None
    with ReadyzServer(pki, [503, 503, 200]) as server:
        # The kubeconfig's own server is ignored: API_URL (the VIP) is what the gate waits for.
        env = ready_env(server.url, kubeconfig_yaml(pki, "https://10.0.10.5:6443"))
        result = run(step.create, env, interpreter=step.interpreter)
    assert result.rc == 0, result.stderr
    assert server.seen == [("/readyz", "admin")] * 3
    assert f"homelab: API server {server.url} ready after" in result.stderr
    assert result.calls == []  # no talosctl, no kubectl
    assert list(result.tmpdir.iterdir()) == []


def test_api_gate_reads_the_kubeconfig_from_stdin(run: Runner, pki: Pki) -> None:
    step = talos_steps.api_ready()
    with ReadyzServer(pki, [200]) as server:
        env = ready_env(server.url, kubeconfig_yaml(pki, server.url))
        kubeconfig = env.pop("KUBECONFIG_DATA")
        result = run(
            step.create, {**env, "STDIN_SECRET": "KUBECONFIG_DATA"}, interpreter=step.interpreter, stdin=kubeconfig
        )
    assert result.rc == 0, result.stderr
    assert server.seen == [("/readyz", "admin")]


def test_api_gate_gives_up_at_its_bound(run: Runner, pki: Pki) -> None:
    step = talos_steps.api_ready()
    with ReadyzServer(pki, [503]) as server:
        result = run(
            step.create,
            ready_env(server.url, kubeconfig_yaml(pki, server.url), READY_TIMEOUT="0.4"),
            interpreter=step.interpreter,
        )
    assert result.rc == 1
    assert result.stderr.strip() == (
        f"homelab: API server {server.url}/readyz not ready within 0.4s (last: HTTP 503: readyz check failed)"
    )
    assert 2 <= len(server.seen) <= 5
    # Gave up at its bound rather than polling on: not a speed target.
    assert result.seconds < 15


def test_api_gate_trusts_only_the_kubeconfig_ca(run: Runner, pki: Pki) -> None:
    """A server whose certificate the kubeconfig's CA did not sign is never "ready"."""
    step = talos_steps.api_ready()
    wrong = kubeconfig_yaml(pki, "").replace(
        base64.b64encode(pki.ca.read_bytes()).decode(), base64.b64encode(pki.client_ca.read_bytes()).decode()
    )
    with ReadyzServer(pki, [200]) as server:
        result = run(step.create, ready_env(server.url, wrong, READY_TIMEOUT="0.2"), interpreter=step.interpreter)
    assert result.rc == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert server.seen == []


def test_api_gate_with_nothing_listening_fails_bounded(run: Runner, pki: Pki) -> None:
    step = talos_steps.api_ready()
    env = ready_env("https://127.0.0.1:9", kubeconfig_yaml(pki, ""), READY_TIMEOUT="0.5")
    result = run(step.create, env, interpreter=step.interpreter)
    assert result.rc == 1
    assert "homelab: API server https://127.0.0.1:9/readyz not ready within 0.5s (last: ConnectionRefusedError" in (
        result.stderr
    )


def test_api_gate_refuses_a_kubeconfig_it_cannot_read(run: Runner, pki: Pki) -> None:
    step = talos_steps.api_ready()
    two = kubeconfig_yaml(pki, "") + kubeconfig_yaml(pki, "")
    result = run(step.create, ready_env("https://127.0.0.1:9", two), interpreter=step.interpreter)
    assert result.rc == 1
    assert result.stderr.strip() == (
        "homelab: KUBECONFIG_DATA: expected one certificate-authority-data (the kubeconfig Talos generates), found 2"
    )
    missing = run(step.create, {"API_URL": "https://127.0.0.1:9"}, interpreter=step.interpreter)
    assert missing.stderr.strip() == "homelab: environment variable KUBECONFIG_DATA is not set"
