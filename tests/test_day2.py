"""Day 2 through `pulumi up`: the homelab:day2 section, and the rolling, health-gated steps in the graph."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config.day2 import seconds
from tests.conftest import config_errors, home_config, parse_config


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
