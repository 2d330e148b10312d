"""Benchmark of the offline plan and the plan diff: ``make bench`` (``python -m bench.plan_bench``).

Plans the home stack and generated stacks of 3, 30 and 300 nodes (home's config
with a generated inventory: 3 control planes, the rest workers, on a /16 so 300
nodes fit), each in its own process, as ``make plan`` would: run the program
under mocks, write the artifacts, run the policy pack. Then times ``make diff``
of home (``python -m plan.diff``) in a scratch git repository holding a copy of
the project: against an unchanged base, and with a node added to the working
tree. Reports wall time and peak memory per run, the cost per added node, and
whether the targets hold:

- ``home``: at most 3 s and 250 MB;
- at most 10 ms per added node up to 300 nodes: the slope of a least-squares
  line through every size (one difference of two noisy timings swings by several
  ms from run to run on a busy machine; a fit over all sizes does not);
- a diff: at most 2.5 times the time of one plan of home, and twice its memory.

Memory is the peak of the summed proportional set size (PSS) of the process and
every process below it, sampled every few milliseconds, for plans and diffs
alike: a diff runs two plans in forked children that share pages, which one
process's peak RSS would not show and a sum of RSS would count twice.

Each run repeats ``--repeat`` times, taking turns; the table shows the best time
(as timeit does: a busy machine only ever adds time) and the highest peak memory.
Targets are reported as met or missed; the exit status is non-zero only when the
bench cannot run. Generated stack files, plans and the scratch repository go to
``build/bench/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plan import offline, yaml12
from plan import report as plan_report

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / "Pulumi.home.yaml"
OUT = ROOT / "build" / "bench"
SIZES = (3, 30, 300)
CONTROL_PLANES = 3
HOME_MAX_SECONDS = 3.0
HOME_MAX_MB = 250.0
MAX_MS_PER_NODE = 10.0
DIFF_MAX_TIME_RATIO = 2.5
DIFF_MAX_MEMORY_RATIO = 2.0
SAMPLE_SECONDS = 0.005
# What a plan of the project needs, copied into the scratch repository of the diff bench.
DIFF_REPO_FILES = ("__main__.py", "Pulumi.yaml", "Pulumi.home.yaml", "stacks", "components", "plan", "policy", "tools")


def inventory(count: int, control_planes: int = CONTROL_PLANES) -> list[dict[str, Any]]:
    """``count`` nodes from 10.0.20.1 on (clear of home's VIP, gateway and load-balancer pool)."""
    nodes = []
    for i in range(count):
        nodes.append(
            {
                "name": f"node-{i}",
                "address": f"10.0.{20 + i // 250}.{1 + i % 250}",
                "role": "controlplane" if i < min(control_planes, count) else "worker",
                "installDisk": {"path": f"/dev/disk/by-id/ata-disk-{i}"},
                "osdDisks": [f"/dev/disk/by-id/nvme-osd-{i}"],
            }
        )
    return nodes


def generated_stack(count: int, out: Path) -> Path:
    """Write ``Pulumi.gen-<count>.yaml``: home's config with ``count`` generated nodes on 10.0.0.0/16."""
    data = yaml12.load(HOME.read_text())
    config = data["config"]
    config["homelab:cluster"]["nodeNetwork"] = "10.0.0.0/16"
    config["homelab:nodes"] = inventory(count)
    # Three control planes and nothing else: they must take workloads too.
    config["homelab:cluster"]["allowSchedulingOnControlPlanes"] = count <= CONTROL_PLANES
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"Pulumi.gen-{count}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(frozen=True)
class Sample:
    """One plan in one process."""

    seconds: float
    peak_mb: float
    resources: int
    exit_code: int


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc/<pid>/task/<tid>/children``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
    return found


def tree_pss_mb(pid: int) -> float:
    """Summed PSS of ``pid`` and its descendants, in MB (processes that just ended count 0)."""
    total_kb = 0
    for each in _descendants(pid):
        with contextlib.suppress(OSError), open(f"/proc/{each}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
    return total_kb / 1024


@contextlib.contextmanager
def peak_memory(pid: int) -> Iterator[Callable[[], float]]:
    """Sample :func:`tree_pss_mb` of ``pid`` in a thread until the block ends; yields the peak so far."""
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            peak[0] = max(peak[0], tree_pss_mb(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        done.set()
        thread.join()


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str, str, int]:
    """Run ``cmd``; wall seconds, peak tree PSS (MB), stdout, stderr, exit status."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with peak_memory(proc.pid) as peak:
        stdout, stderr = proc.communicate()
    return time.perf_counter() - start, peak(), stdout, stderr, proc.returncode


def measure(stack_file: Path, out: Path) -> Sample:
    """Plan ``stack_file`` in a child process; its wall time and peak memory."""
    cmd = [sys.executable, "-m", "bench.plan_bench", "--child", str(stack_file), "--out", str(out)]
    seconds, peak_mb, stdout, stderr, code = timed(cmd, ROOT)
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"plan of {stack_file.name} failed:\n{stderr}")
    summary = json.loads(lines[-1])
    return Sample(seconds, peak_mb, summary["resources"], code)


def child(stack_file: Path, out: Path) -> int:
    """One plan as ``make plan`` does it (tree, artifacts, policy pack); prints a JSON summary."""
    with contextlib.redirect_stdout(io.StringIO()):
        capture = offline.run_stack_file(stack_file)
        plan_report.tree_lines(capture)
        plan_report.write(capture, out)
        code = max([0, *(check(capture, out) for check in plan_report.CHECKS)])
    print(json.dumps({"resources": len(capture.resources), "invokes": len(capture.invokes)}))
    return code


@dataclass(frozen=True)
class Row:
    """The result for one stack."""

    stack: str
    nodes: int
    resources: int
    seconds: float
    peak_mb: float


def bench(stacks: list[tuple[str, int, Path]], repeat: int) -> list[Row]:
    """Best wall time and highest peak memory over ``repeat`` plans of each stack.

    The stacks take turns (one plan of each per round), so a slow spell of the
    machine lands on every size alike instead of on one.
    """
    samples: dict[str, list[Sample]] = {name: [] for name, _, _ in stacks}
    for _ in range(repeat):
        for name, _, stack_file in stacks:
            samples[name].append(measure(stack_file, OUT / "plan" / name))
    return [
        Row(
            stack=name,
            nodes=nodes,
            resources=samples[name][0].resources,
            seconds=min(s.seconds for s in samples[name]),
            peak_mb=max(s.peak_mb for s in samples[name]),
        )
        for name, nodes, _ in stacks
    ]


def fit(points: list[tuple[float, float]]) -> float:
    """Slope of the least-squares line through ``points`` (x, y)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        raise ValueError("a slope needs at least two different sizes")
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def per_node(rows: list[Row]) -> tuple[float, float]:
    """Milliseconds and MB per added node: least-squares slopes over the generated stacks."""
    ms = fit([(r.nodes, r.seconds * 1000) for r in rows])
    mb = fit([(r.nodes, r.peak_mb) for r in rows])
    return ms, mb


@dataclass(frozen=True)
class DiffRow:
    """``make diff`` of home in one scenario."""

    scenario: str
    seconds: float
    peak_mb: float


def _verdict(within: bool) -> str:
    return "met" if within else "MISSED"


def report(rows: list[Row], diffs: list[DiffRow] | None = None) -> tuple[list[str], bool]:
    """The Markdown tables and whether every target is met (the verdicts are in the lines)."""
    lines = [
        "| stack | nodes | resources | wall time (s) | peak memory (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {r.stack} | {r.nodes} | {r.resources} | {r.seconds:.2f} | {r.peak_mb:.0f} |" for r in rows]
    generated = sorted((r for r in rows if r.stack != "home"), key=lambda r: r.nodes)
    ok = True
    lines.append("")
    if len({r.nodes for r in generated}) >= 2:
        ms, mb = per_node(generated)
        within = ms <= MAX_MS_PER_NODE
        ok &= within
        sizes = ", ".join(str(r.nodes) for r in generated)
        lines.append(
            f"- cost per added node (least-squares fit over {sizes} nodes): {ms:.1f} ms and {mb:.2f} MB "
            f"(target ≤ {MAX_MS_PER_NODE:.0f} ms: {_verdict(within)})"
        )
    home = next((r for r in rows if r.stack == "home"), None)
    if home is not None:
        within = home.seconds <= HOME_MAX_SECONDS and home.peak_mb <= HOME_MAX_MB
        ok &= within
        lines.append(
            f"- home: {home.seconds:.2f} s and {home.peak_mb:.0f} MB "
            f"(target ≤ {HOME_MAX_SECONDS:.0f} s and ≤ {HOME_MAX_MB:.0f} MB: {_verdict(within)})"
        )
    if diffs and home is not None:
        lines += ["", "| make diff of home | wall time (s) | vs one plan | peak memory (MB) | vs one plan |"]
        lines.append("| --- | ---: | ---: | ---: | ---: |")
        for d in diffs:
            time_ratio, memory_ratio = d.seconds / home.seconds, d.peak_mb / home.peak_mb
            lines.append(
                f"| {d.scenario} | {d.seconds:.2f} | {time_ratio:.2f} | {d.peak_mb:.0f} | {memory_ratio:.2f} |"
            )
        lines.append("")
        for d in diffs:
            time_ratio, memory_ratio = d.seconds / home.seconds, d.peak_mb / home.peak_mb
            within = time_ratio <= DIFF_MAX_TIME_RATIO and memory_ratio <= DIFF_MAX_MEMORY_RATIO
            ok &= within
            lines.append(
                f"- diff, {d.scenario}: {time_ratio:.2f} times the time, {memory_ratio:.2f} times the memory of a plan "
                f"(target ≤ {DIFF_MAX_TIME_RATIO} and ≤ {DIFF_MAX_MEMORY_RATIO:.0f} times: {_verdict(within)})"
            )
    return lines, ok


def scratch_repo(repo: Path, files: Sequence[str] = DIFF_REPO_FILES) -> Path:
    """A fresh git repository at ``repo`` holding a copy of ``files`` from this one, in one commit (the base)."""
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    for name in files:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / name)
    (repo / ".gitignore").write_text("__pycache__/\nbuild/\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return repo


def diff_repo(out: Path) -> Path:
    """The bench's scratch repository for ``make diff`` (what a plan needs)."""
    return scratch_repo(out / "diff-repo")


def with_node_added(text: str) -> str:
    """Home's stack file with one more worker (the address after the last node's)."""
    data = yaml12.load(text)
    nodes = data["config"]["homelab:nodes"]
    last = nodes[-1]["address"].rsplit(".", 1)
    nodes.append(
        {
            "name": f"bench-{len(nodes)}",
            "address": f"{last[0]}.{int(last[1]) + 1}",
            "role": "worker",
            "installDisk": {"type": "nvme"},
        }
    )
    return yaml.safe_dump(data, sort_keys=False)


def measure_diff(repo: Path, added: bool, jobs: int = 1) -> tuple[float, float]:
    """One ``python -m plan.diff --base HEAD`` in ``repo`` (with a node added to the working tree or not)."""
    stack = repo / "Pulumi.home.yaml"
    original = stack.read_text()
    if added:
        stack.write_text(with_node_added(original))
    try:
        out = str(repo / "build" / "diff")
        cmd = [sys.executable, "-m", "plan.diff", "--base", "HEAD", "--out", out, "--jobs", str(jobs)]
        seconds, peak_mb, stdout, stderr, code = timed(cmd, repo)
    finally:
        stack.write_text(original)
    if code != 0:
        raise RuntimeError(f"plan diff failed:\n{stderr}")
    if ("No changes" in stdout) == added:
        raise RuntimeError(f"plan diff {'missed the added node' if added else 'found changes'}:\n{stdout[:2000]}")
    return seconds, peak_mb


def bench_diff(repo: Path, repeat: int, jobs: int = 1) -> list[DiffRow]:
    """Best time and highest peak memory of ``make diff`` unchanged and with a node added, taking turns."""
    samples: dict[str, list[tuple[float, float]]] = {"unchanged base": [], "node added": []}
    for _ in range(repeat):
        samples["unchanged base"].append(measure_diff(repo, added=False, jobs=jobs))
        samples["node added"].append(measure_diff(repo, added=True, jobs=jobs))
    return [DiffRow(name, min(s for s, _ in runs), max(m for _, m in runs)) for name, runs in samples.items()]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="generated stack sizes (nodes)")
    parser.add_argument("--repeat", type=int, default=5, help="plans per stack (best time, max memory)")
    parser.add_argument("--no-diff", action="store_true", help="skip the make diff timings")
    parser.add_argument("--diff-jobs", type=int, default=1, help="plans a diff runs at once (plan.diff --jobs)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.out)
    try:
        home_nodes = len(yaml.safe_load(HOME.read_text())["config"]["homelab:nodes"])
        stacks = [("home", home_nodes, HOME), *((f"gen-{n}", n, generated_stack(n, OUT)) for n in args.sizes)]
        rows = bench(stacks, args.repeat)
        diffs = [] if args.no_diff else bench_diff(diff_repo(OUT), args.repeat, args.diff_jobs)
    except (OSError, RuntimeError, subprocess.CalledProcessError, ValueError) as exc:
        print(f"bench cannot run: {exc}", file=sys.stderr)
        return 1
    lines, ok = report(rows, diffs)
    python = sys.version.split()[0]
    print(
        f"offline plan benchmark ({args.repeat} runs each: best wall time, highest peak PSS of the process tree; "
        f"Python {python})"
    )
    print()
    print("\n".join(lines))
    print()
    print("every target met" if ok else "some targets MISSED (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
