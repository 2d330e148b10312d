"""Shared fixtures: run the real program under mocks and capture its graph."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc

from plan import offline, yaml12
from stacks import loader
from stacks.config import StackConfig
from stacks.loader import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SHARED_SCHEMAS = ROOT.parent / "shared" / "schemas"
HOME = ROOT / "Pulumi.home.yaml"


def home_config() -> dict[str, Any]:
    """A fresh copy of the home stack's ``config:`` mapping, to mutate in a test."""
    return copy.deepcopy(yaml12.load(HOME.read_text())["config"])


def run_config(
    config: dict[str, Any], stack: str = "test", program: Path = offline.ROOT / "__main__.py"
) -> offline.Capture:
    """Run ``program`` (the real one by default) with this ``config:`` mapping, as in a stack file."""
    raw, secret_keys = offline.config_map(config)
    return offline.run(stack, raw, secret_keys, program=program)


def parse_config(config: dict[str, Any]) -> StackConfig:
    """Parse a ``config:`` mapping the way the program receives it; raises ``ConfigError``."""
    raw, _ = offline.config_map(config)
    return loader.parse(raw)


def config_problems(config: dict[str, Any]) -> list[str]:
    """The loader's error lines for this ``config:`` mapping (empty when it is valid)."""
    try:
        parse_config(config)
    except ConfigError as err:
        return err.lines
    return []


def config_errors(config: dict[str, Any]) -> list[str]:
    """The loader's error lines for a ``config:`` mapping that must be invalid."""
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    return info.value.lines


def generated_nodes(control_planes: int, workers: int, base: str = "10.0.10") -> list[dict[str, Any]]:
    """A node inventory of the given size on the home network."""
    nodes = []
    for i in range(control_planes + workers):
        nodes.append(
            {
                "name": f"node-{i}",
                "address": f"{base}.{100 + i}",
                "role": "controlplane" if i < control_planes else "worker",
                "installDisk": {"path": f"/dev/disk/by-id/ata-disk-{i}"},
                "osdDisks": [f"/dev/disk/by-id/nvme-osd-{i}"],
            }
        )
    return nodes


def reveal(value: Any) -> Any:
    """The value under Pulumi's secret wrappers (for asserting on content after asserting it is wrapped)."""
    if rpc.is_rpc_secret(value):
        return reveal(value["value"])
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


@pytest.fixture(scope="session")
def home() -> offline.Capture:
    """The home stack's graph (one run per test session)."""
    return offline.run_stack_file(HOME)


@pytest.fixture
def schemas() -> Path:
    """The shared schema folder, or skip where it is absent (e.g. a user's clone)."""
    if not SHARED_SCHEMAS.is_dir():
        pytest.skip("schemas not available: ../shared/schemas (beside the repository) is absent")
    return SHARED_SCHEMAS
