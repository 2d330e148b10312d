"""Stack files and patches are read with YAML 1.2 rules, as the Pulumi CLI and Talos read them."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from plan import yaml12


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0o644", 0o644),  # YAML 1.2 octal: Talos file permissions
        ("0644", 644),  # decimal in 1.2 (octal in PyYAML's 1.1)
        ("0x1F", 31),
        ("-5", -5),
        ("off", "off"),  # a string in 1.2 (False in 1.1): Talos HostnameConfig.auto
        ("yes", "yes"),
        ("on", "on"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("1e3", 1000.0),
        ("1.5", 1.5),
        ("-.inf", -math.inf),
        ("2024-01-01", "2024-01-01"),  # no timestamp type in the core schema
        ("1_000", "1_000"),
        ("10.0.10.1", "10.0.10.1"),
        ("v1.13.0", "v1.13.0"),
        ('"0o644"', "0o644"),
    ],
)
def test_core_schema_scalars(text: str, value: Any) -> None:
    assert yaml12.load(f"key: {text}\n") == {"key": value}


def test_nan() -> None:
    assert math.isnan(yaml12.load("x: .nan\n")["x"])


def test_structures() -> None:
    assert yaml12.load("a: [1, b]\nc: {d: off}\n") == {"a": [1, "b"], "c": {"d": "off"}}


def test_duplicate_key_is_refused_as_go_yaml_does() -> None:
    with pytest.raises(yaml.YAMLError) as info:
        yaml12.load("a:\n  b: 1\n  b: 2\n")
    assert yaml12.describe_error(info.value, "f.yaml") == "f.yaml:3:3: mapping key 'b' already defined at line 2"


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(yaml.YAMLError) as info:
        yaml12.load("a: [1, 2\n")
    assert yaml12.describe_error(info.value, "f.yaml") == (
        "f.yaml:2:1: while parsing a flow sequence: did not find expected ',' or ']'"
    )
