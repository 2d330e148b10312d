"""Validate Talos config patches against the Talos v1.13 machine-config JSON schema.

Patches are partial documents: every ``required`` list is dropped, while
``additionalProperties: false`` stays so misspelled keys are caught.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from stacks.config import talos_schema
from tests.conftest import SHARED_SCHEMAS

SCHEMA = SHARED_SCHEMAS / "talos-v1.13" / "config.schema.json"


def _without_required(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


@functools.cache
def _schema(path: Path = SCHEMA) -> dict[str, Any]:
    return _without_required(json.loads(path.read_text()))  # type: ignore[no-any-return]


@functools.cache
def _validator(def_name: str) -> Draft202012Validator:
    return Draft202012Validator({"$defs": _schema()["$defs"], "$ref": f"#/$defs/{def_name}"})


def validate_patch(doc: dict[str, Any]) -> list[str]:
    """Problems of one patch document, as ``path: message`` lines (empty when valid)."""
    if "kind" in doc:
        # The carried schema is the shared one byte for byte (tests/test_talos_schema.py): same kinds.
        name = talos_schema.kinds().get(doc["kind"])
        if name is None:
            return [f"kind: unknown document kind {doc['kind']!r}"]
    else:
        name = "v1alpha1.Config"
    return [
        f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in sorted(_validator(name).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
