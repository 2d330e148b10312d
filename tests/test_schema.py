"""The committed stack-config JSON schema is current and accepts the example stacks."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest

from plan import schema, yaml12
from tests.conftest import ROOT


def test_schema_file_is_current() -> None:
    assert schema.SCHEMA_PATH.read_text() == schema.render(), "stale: run `make schema` and commit the result"


@pytest.mark.parametrize("stack_file", sorted(ROOT.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_stack_files_validate(stack_file: Path) -> None:
    jsonschema.validate(yaml12.load(stack_file.read_text()), schema.stack_file_schema())


def test_schema_catches_typos() -> None:
    data = yaml12.load((ROOT / "Pulumi.home.yaml").read_text())
    broken = copy.deepcopy(data)
    broken["config"]["homelab:cluster"]["talosVerison"] = "v1.13.0"
    with pytest.raises(jsonschema.ValidationError, match="talosVerison"):
        jsonschema.validate(broken, schema.stack_file_schema())
    unknown = copy.deepcopy(data)
    unknown["config"]["homelab:clustre"] = {}
    with pytest.raises(jsonschema.ValidationError, match="homelab:clustre"):
        jsonschema.validate(unknown, schema.stack_file_schema())
    other = copy.deepcopy(data)
    other["config"]["cloudflare:apiToken"] = {"secure": "v1:abc"}
    jsonschema.validate(other, schema.stack_file_schema())
