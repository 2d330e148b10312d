"""Reading YAML as the Pulumi CLI and Talos do: the YAML 1.2 core schema.

PyYAML resolves plain scalars by YAML 1.1 rules (``off`` is ``False``, ``0644``
is octal, ``0o644`` a string); Go's yaml.v3, which reads ``Pulumi.<stack>.yaml``
and Talos patches, follows YAML 1.2 (``off`` is a string, ``0o644`` is 420).
This loader keeps PyYAML's fast (libyaml) parser and swaps the resolution rules.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

_BASE: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Yaml12Loader(_BASE):  # type: ignore[misc]
    """Safe loader with the YAML 1.2 core schema's implicit types (https://yaml.org/spec/1.2.2/#1032-tag-resolution)."""


Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
):
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)  # 0644 is decimal in YAML 1.2


def _float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


def _bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node).lower() == "true"


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # Go's yaml.v3 refuses a key given twice ("mapping key … already defined"); PyYAML
    # would silently keep the last one.
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"mapping key {key!r} already defined at line {seen[key].start_mark.line + 1}",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=True)


Yaml12Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _float)
Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _bool)


def load(text: str) -> Any:
    """Parse one YAML document with YAML 1.2 core-schema types.

    Raises ``yaml.YAMLError`` on a syntax error (see :func:`describe_error`).
    """
    return yaml.load(text, Loader=Yaml12Loader)


def describe_error(err: yaml.YAMLError, file: str) -> str:
    """One line for a YAML error: ``<file>:<line>:<column>: <problem>`` (1-based, as editors count)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        context = f"{err.context}: " if err.context else ""
        return f"{file}:{mark.line + 1}:{mark.column + 1}: {context}{err.problem}"
    return f"{file}: {' '.join(str(err).split())}"
