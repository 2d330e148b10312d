"""JSON schema of ``Pulumi.<stack>.yaml``, generated from the config models.

``python -m plan.schema`` (``make schema``) writes ``stacks/stack-config.schema.json``;
editors with the YAML language server validate stack files against it (see the
comment at the top of ``Pulumi.home.yaml``). A test fails when the file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from stacks.config import StackConfig
from stacks.config.base import NAMESPACE
from stacks.secrets import SECRET_CONFIG_KEYS

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "stacks" / "stack-config.schema.json"

_SECURE = {
    "type": "object",
    "description": "Encrypted value written by `pulumi config set --secret`.",
    "properties": {"secure": {"type": "string"}},
    "required": ["secure"],
    "additionalProperties": False,
}


def stack_file_schema() -> dict[str, Any]:
    """Schema of a whole stack file: ``config:`` with one key per section."""
    model = StackConfig.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs = model.pop("$defs", {})
    sections = {f"{NAMESPACE}:{key}": value for key, value in model["properties"].items()}
    sections.update({f"{NAMESPACE}:{key}": _SECURE for key in sorted(SECRET_CONFIG_KEYS)})
    known = sorted(sections)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "homelab Pulumi stack file",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": sections,
                "required": [f"{NAMESPACE}:{key}" for key in model.get("required", [])],
                # Other namespaces (provider config such as cloudflare:apiToken) are not ours.
                "propertyNames": {"anyOf": [{"enum": known}, {"not": {"pattern": f"^{NAMESPACE}:"}}]},
            },
            "encryptionsalt": {"type": "string"},
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
        },
        "$defs": defs,
    }


def render() -> str:
    """The schema file's text."""
    return json.dumps(stack_file_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Write the schema file."""
    SCHEMA_PATH.write_text(render())
    print(f"wrote {SCHEMA_PATH.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
