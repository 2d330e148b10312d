"""User patches checked against the Talos machine-config JSON schema, at config-parse time.

Talos decodes machine configs strictly: a misspelled key (``machine.sysctl`` for
``machine.sysctls``) plans cleanly and fails only on the node. The schema Talos
publishes for v1.13 is carried beside this module (``talos-v1.13.schema.json``:
siderolabs/talos ``pkg/machinery/config/schemas/config.schema.json`` at the tag in
``talos-v1.13.schema.json.license``, MPL-2.0; ``make talos-schema`` refreshes it).

Patches are partial documents: every ``required`` list is dropped, while
``additionalProperties: false`` stays, which is what catches misspelled keys. A
patch with ``kind`` is a named document of that kind (``LinkConfig``, …); any
other patch is a piece of the main ``v1alpha1`` document.

The schema is read and each document kind's validator built once per process
(the plan runs this for every user patch).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("talos-v1.13.schema.json")
MAIN_DOCUMENT = "v1alpha1.Config"
# Only what validation reads; descriptions make up most of the file.
_PROSE = frozenset({"description", "markdownDescription", "x-intellij-html-description", "title", "required"})

# Fields the v1alpha1 Go types still decode but mark deprecated, which the published
# schema leaves out (siderolabs/talos v1.13.9 pkg/machinery/config/types/v1alpha1/
# v1alpha1_types.go, "Deprecated:" comments). Refused like unknown keys: the generated
# patches already set the documents that replace them, and Talos rejects both at once.
DEPRECATED: dict[tuple[str, ...], str] = {
    ("persist",): "not supported any more",
    ("machine", "network"): "use the network documents (LinkConfig, ResolverConfig, StaticHostConfig, …)",
    ("machine", "disks"): "use a UserVolumeConfig document",
    ("machine", "env"): "use an EnvironmentConfig document",
    ("machine", "time"): "use a TimeSyncConfig document",
    ("machine", "registries"): "use RegistryMirrorConfig / RegistryAuthConfig / RegistryTLSConfig documents",
    ("machine", "systemDiskEncryption"): "use a VolumeConfig document",
    ("machine", "install", "extraKernelArgs"): "use homelab:cluster.kernelArgs (Image Factory schematic)",
    ("machine", "install", "extensions"): "use homelab:cluster.extensions (Image Factory schematic)",
    ("machine", "install", "bootloader"): "it never worked",
    ("machine", "features", "stableHostname"): "use a HostnameConfig document",
    ("cluster", "allowSchedulingOnMasters"): "use homelab:cluster.allowSchedulingOnControlPlanes",
    ("cluster", "etcd", "subnet"): "use cluster.etcd.advertisedSubnets",
}


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                {name: _strip(sub) for name, sub in v.items()}
                if k in ("properties", "patternProperties", "$defs")
                else _strip(v)
            )
            for k, v in node.items()
            if k not in _PROSE
        }
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


@functools.cache
def schema() -> dict[str, Any]:
    """The carried schema without prose and without ``required`` (patches are partial)."""
    return _strip(json.loads(SCHEMA_PATH.read_text()))  # type: ignore[no-any-return]


@functools.cache
def kinds() -> dict[str, str]:
    """Document kind (``LinkConfig``) → its ``$defs`` name, from the top-level ``oneOf``."""
    defs = schema()["$defs"]
    out = {}
    for ref in schema()["oneOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        kind = defs[name].get("properties", {}).get("kind", {}).get("enum", [None])[0]
        if kind:
            out[kind] = name
    return out


@functools.cache
def _validator(def_name: str) -> Any:
    # jsonschema costs ~0.1 s to import: only stacks with user patches pay for it.
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - see above

    return Draft202012Validator({"$defs": schema()["$defs"], "$ref": f"#/$defs/{def_name}"})


def _path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _unknown_key_line(where: str, path: tuple[str | int, ...], key: str, known: Iterable[str], def_name: str) -> str:
    keys = tuple(p for p in path if isinstance(p, str))
    why = DEPRECATED.get((*keys, key)) if def_name == MAIN_DOCUMENT else None
    if why is not None:
        return f"{where}{_path((*path, key))}: deprecated, left out of the Talos v1.13 schema; {why}"
    hint = difflib.get_close_matches(key, list(known), n=1, cutoff=0.8)
    suffix = f" (did you mean {hint[0]}?)" if hint else ""
    return f"{where}{_path((*path, key))}: unknown key in Talos v1.13 {_doc_name(def_name)}{suffix}"


def _doc_name(def_name: str) -> str:
    if def_name == MAIN_DOCUMENT:
        return "machine config"
    return def_name.rsplit(".", 1)[-1].removesuffix("V1Alpha1")


def patch_problems(where: str, patch: dict[str, Any]) -> list[str]:
    """Problems of one user patch, one line each: ``<where>.<key path>: message`` (empty when valid).

    ``where`` names the patch as it is written in the stack file, e.g.
    ``cluster.patches.all[0]`` or ``nodes[2].patches[1]``.
    """
    if "kind" in patch:
        kind = patch["kind"]
        def_name = kinds().get(kind) if isinstance(kind, str) else None
        if def_name is None:
            hint = difflib.get_close_matches(str(kind), list(kinds()), n=1, cutoff=0.8)
            suffix = f" (did you mean {hint[0]}?)" if hint else ""
            return [f"{where}.kind: {kind!r} is not a Talos v1.13 document kind{suffix}"]
    else:
        def_name = MAIN_DOCUMENT
    lines: list[str] = []
    for err in sorted(_validator(def_name).iter_errors(patch), key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = err.schema.get("properties", {})
            patterns = [re.compile(p) for p in err.schema.get("patternProperties", {})]
            for key in err.instance:
                if key not in known and not any(p.search(key) for p in patterns):
                    lines.append(_unknown_key_line(where, path, key, known, def_name))
        else:
            lines.append(f"{where}{_path(path)}: {err.message} (Talos v1.13 schema)")
    return lines
