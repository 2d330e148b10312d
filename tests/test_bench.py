"""The benchmark's own logic (no timing is asserted: the figures are the script's output)."""

from __future__ import annotations

from pathlib import Path

from bench import plan_bench
from bench.plan_bench import Row
from plan import yaml12
from tests.conftest import parse_config


def test_generated_stacks_are_valid_config(tmp_path: Path) -> None:
    for count in (3, 300):
        path = plan_bench.generated_stack(count, tmp_path)
        cfg = parse_config(yaml12.load(path.read_text())["config"])
        assert len(cfg.nodes) == count
        assert len(cfg.control_planes) == 3


def test_report_flags_a_missed_per_node_target() -> None:
    rows = [
        Row("home", 6, 52, 1.0, 80.0),
        Row("gen-30", 30, 76, 1.5, 87.0),
        Row("gen-300", 300, 346, 1.5 + 270 * 0.011, 120.0),  # 11 ms per added node
    ]
    lines, ok = plan_bench.report(rows)
    assert not ok
    assert "- marginal cost 30 → 300 nodes: 11.0 ms and 0.12 MB per node (target ≤ 10 ms: MISSED)" in lines
    rows[2] = Row("gen-300", 300, 346, 1.5 + 270 * 0.009, 120.0)
    lines, ok = plan_bench.report(rows)
    assert ok and any("9.0 ms" in line and "met" in line for line in lines)


def test_report_flags_a_heavy_home() -> None:
    _, ok = plan_bench.report([Row("home", 6, 52, 1.0, 300.0)])
    assert not ok
