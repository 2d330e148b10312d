"""Benchmark of the offline plan: ``make bench`` (``python -m bench.plan_bench``).

Plans the home stack and generated stacks of 3, 30 and 300 nodes (home's config
with a generated inventory: 3 control planes, the rest workers, on a /16 so 300
nodes fit), each in its own process, as ``make plan`` would: run the program
under mocks, write the artifacts, run the policy pack. Reports wall time and
peak resident memory per plan (``os.wait4`` gives the child's own rusage), the
marginal cost per added node, and whether the targets hold:

- ``home``: at most 3 s and 250 MB;
- at most 10 ms per added node up to 300 nodes.

Each size runs ``--repeat`` times; the table shows the best time (as timeit
does: a busy machine only ever adds time, and the marginal cost per node is a
difference of two such times, which medians leave at the mercy of jitter) and the
highest peak memory. Exit status 1 when a target is missed. Generated stack
files and their plans go to ``build/bench/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import subprocess
import sys
import time
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


def measure(stack_file: Path, out: Path) -> Sample:
    """Plan ``stack_file`` in a child process; its wall time and peak RSS (``wait4`` rusage)."""
    cmd = [sys.executable, "-m", "bench.plan_bench", "--child", str(stack_file), "--out", str(out)]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    stdout, stderr = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"plan of {stack_file.name} failed:\n{stderr}")
    summary = json.loads(lines[-1])
    # Linux reports ru_maxrss in KiB.
    return Sample(seconds, usage.ru_maxrss / 1024, summary["resources"], child.returncode)


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


def per_node(a: Row, b: Row) -> tuple[float, float]:
    """Marginal milliseconds and MB per node from ``a`` to ``b``."""
    added = b.nodes - a.nodes
    return (b.seconds - a.seconds) * 1000 / added, (b.peak_mb - a.peak_mb) / added


def report(rows: list[Row]) -> tuple[list[str], bool]:
    """The Markdown table and the verdict on the targets."""
    lines = [
        "| stack | nodes | resources | wall time (s) | peak memory (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {r.stack} | {r.nodes} | {r.resources} | {r.seconds:.2f} | {r.peak_mb:.0f} |" for r in rows]
    generated = sorted((r for r in rows if r.stack != "home"), key=lambda r: r.nodes)
    ok = True
    lines.append("")
    for a, b in itertools.pairwise(generated):
        ms, mb = per_node(a, b)
        within = ms <= MAX_MS_PER_NODE
        ok &= within
        lines.append(
            f"- marginal cost {a.nodes} → {b.nodes} nodes: {ms:.1f} ms and {mb:.2f} MB per node "
            f"(target ≤ {MAX_MS_PER_NODE:.0f} ms: {'met' if within else 'MISSED'})"
        )
    home = next((r for r in rows if r.stack == "home"), None)
    if home is not None:
        within = home.seconds <= HOME_MAX_SECONDS and home.peak_mb <= HOME_MAX_MB
        ok &= within
        lines.append(
            f"- home: {home.seconds:.2f} s and {home.peak_mb:.0f} MB "
            f"(target ≤ {HOME_MAX_SECONDS:.0f} s and ≤ {HOME_MAX_MB:.0f} MB: {'met' if within else 'MISSED'})"
        )
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="generated stack sizes (nodes)")
    parser.add_argument("--repeat", type=int, default=5, help="plans per stack (best time, max memory)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.out)
    home_nodes = len(yaml.safe_load(HOME.read_text())["config"]["homelab:nodes"])
    stacks = [("home", home_nodes, HOME), *((f"gen-{n}", n, generated_stack(n, OUT)) for n in args.sizes)]
    rows = bench(stacks, args.repeat)
    lines, ok = report(rows)
    python = sys.version.split()[0]
    print(f"offline plan benchmark ({args.repeat} runs each: best wall time, highest peak RSS; Python {python})")
    print()
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
