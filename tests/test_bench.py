"""The benchmark's own logic (no timing is asserted: the figures are the script's output)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import plan_bench
from bench.plan_bench import DiffRow, Row
from plan import yaml12
from tests.conftest import parse_config


def test_generated_stacks_are_valid_config(tmp_path: Path) -> None:
    for count in (3, 300):
        path = plan_bench.generated_stack(count, tmp_path)
        cfg = parse_config(yaml12.load(path.read_text())["config"])
        assert len(cfg.nodes) == count
        assert len(cfg.control_planes) == 3


def test_node_added_for_the_diff_bench_is_valid_config() -> None:
    text = plan_bench.with_node_added(plan_bench.HOME.read_text())
    before = parse_config(yaml12.load(plan_bench.HOME.read_text())["config"])
    after = parse_config(yaml12.load(text)["config"])
    assert len(after.nodes) == len(before.nodes) + 1


def test_per_node_cost_is_a_least_squares_fit_over_every_size() -> None:
    # 8 ms per node plus noise on the middle size: one pairwise difference (3 → 30) would say
    # 8 + 270/27 = 18 ms, the fit over all three stays close to 8.
    rows = [
        Row("gen-3", 3, 49, 1.0 + 0.003 * 8, 80.0),
        Row("gen-30", 30, 76, 1.0 + 0.030 * 8 + 0.27, 83.0),
        Row("gen-300", 300, 346, 1.0 + 0.300 * 8, 116.0),
    ]
    ms, mb = plan_bench.per_node(rows)
    assert 7.0 < ms < 9.0
    assert mb == pytest.approx(0.12, abs=0.01)
    assert plan_bench.fit([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        plan_bench.fit([(3, 1.0), (3, 2.0)])


def test_report_says_met_or_missed_for_the_per_node_target() -> None:
    rows = [
        Row("home", 6, 52, 1.0, 80.0),
        Row("gen-3", 3, 49, 1.0, 80.0),
        Row("gen-300", 300, 346, 1.0 + 297 * 0.011, 120.0),  # 11 ms per added node
    ]
    lines, ok = plan_bench.report(rows)
    assert not ok
    assert (
        "- cost per added node (least-squares fit over 3, 300 nodes): 11.0 ms and 0.13 MB (target ≤ 10 ms: MISSED)"
        in (lines)
    )
    rows[2] = Row("gen-300", 300, 346, 1.0 + 297 * 0.009, 120.0)
    lines, ok = plan_bench.report(rows)
    assert ok and any("9.0 ms" in line and "met" in line for line in lines)


def test_report_flags_a_heavy_home() -> None:
    lines, ok = plan_bench.report([Row("home", 6, 52, 1.0, 300.0)])
    assert not ok
    assert any(line.startswith("- home:") and line.endswith("MISSED)") for line in lines)


def test_report_compares_the_diff_with_one_plan() -> None:
    home = Row("home", 6, 52, 1.0, 80.0)
    lines, ok = plan_bench.report([home], [DiffRow("unchanged base", 2.4, 150.0)])
    assert ok
    assert "| unchanged base | 2.40 | 2.40 | 150 | 1.88 |" in lines
    lines, ok = plan_bench.report([home], [DiffRow("node added", 2.6, 150.0)])
    assert not ok and any(line.startswith("- diff, node added: 2.60 times") and "MISSED" in line for line in lines)
    _, ok = plan_bench.report([home], [DiffRow("node added", 2.0, 170.0)])
    assert not ok, "twice the memory of a plan is the limit"


def test_tree_memory_counts_the_children() -> None:
    # A child holding ~40 MB under a parent that holds little: the tree's PSS includes it.
    code = (
        "import sys, time; block = b'x' * (40 * 1024 * 1024); "  # written, so resident
        "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code!r}])"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        assert plan_bench.tree_pss_mb(parent.pid) > 40
        assert len(plan_bench._descendants(parent.pid)) == 2
    finally:
        for pid in reversed(plan_bench._descendants(parent.pid)):
            os.kill(pid, 9)
        parent.wait()


def test_bench_exits_zero_when_a_target_is_missed(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    slow = [Row("home", 6, 52, 9.0, 80.0), Row("gen-3", 3, 49, 1.0, 80.0), Row("gen-30", 30, 76, 2.0, 80.0)]
    monkeypatch.setattr(plan_bench, "bench", lambda stacks, repeat: slow)
    monkeypatch.setattr(plan_bench, "generated_stack", lambda count, out: Path(f"gen-{count}.yaml"))
    assert plan_bench.main(["--sizes", "3", "30", "--repeat", "1", "--no-diff"]) == 0
    out = capsys.readouterr().out
    assert "MISSED" in out and "some targets MISSED" in out


def test_bench_exits_non_zero_when_it_cannot_run(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(stacks, repeat):
        raise RuntimeError("plan of Pulumi.gen-3.yaml failed")

    monkeypatch.setattr(plan_bench, "bench", broken)
    monkeypatch.setattr(plan_bench, "generated_stack", lambda count, out: Path(f"gen-{count}.yaml"))
    assert plan_bench.main(["--sizes", "3", "--repeat", "1", "--no-diff"]) == 1
    assert "bench cannot run: plan of Pulumi.gen-3.yaml failed" in capsys.readouterr().err
