"""Reading the stack config: the one place that touches ``pulumi.Config``.

``parse`` turns the raw ``homelab:*`` key/value map into a :class:`StackConfig`
or raises :class:`ConfigError` with one line per problem, each naming the field
as it is spelled in ``Pulumi.<stack>.yaml`` (``homelab:nodes[1].address: …``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import ValidationError

from stacks.config import StackConfig
from stacks.config.base import NAMESPACE
from stacks.secrets import SECRET_CONFIG_KEYS, config_key


class ConfigError(pulumi.RunError):
    """Invalid stack config. ``lines`` holds one message per problem.

    A ``RunError`` so the Pulumi CLI prints the message without a traceback.
    """

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("invalid stack config:\n" + "\n".join(lines))


def _sections() -> dict[str, str]:
    """Section key (camelCase, as in YAML) → model field name."""
    return {(f.alias or name): name for name, f in StackConfig.model_fields.items()}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _decode(value: Any) -> Any:
    """Pulumi passes structured config as JSON text; scalars stay strings."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _format(err: ValidationError) -> list[str]:
    lines: list[str] = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif e["type"] == "missing":
            msg = "is required"
        elif e["type"] != "value_error" and isinstance(e.get("input"), (str, int, float, bool)):
            msg = f"{msg} (got {e['input']!r})"
        base = _path(loc)
        for part in msg.split("\n"):
            # Cross-field validators name their own sub-path: "nodes[1].address: …".
            sub, sep, rest = part.partition(": ")
            if sep and (" " not in sub) and not base:
                lines.append(f"{NAMESPACE}:{sub}: {rest}")
            elif sep and (" " not in sub) and e["type"] == "value_error" and sub[:1].isalpha():
                lines.append(f"{NAMESPACE}:{base}.{sub}: {rest}")
            else:
                lines.append(f"{NAMESPACE}:{base}: {part}")
    return lines


def parse(raw: Mapping[str, Any]) -> StackConfig:
    """Validate the raw config map (keys ``homelab:<section>``) into a :class:`StackConfig`.

    Keys of other namespaces (provider config such as ``cloudflare:apiToken``)
    are ignored; unknown ``homelab:`` keys are errors.
    """
    sections = _sections()
    data: dict[str, Any] = {}
    problems: list[str] = []
    secret_keys: set[str] = set()
    for key, value in raw.items():
        ns, _, section = key.partition(":")
        if ns != NAMESPACE:
            continue
        if section in SECRET_CONFIG_KEYS:
            secret_keys.add(section)
            continue  # read as secrets by stacks.secrets, never as plain config
        if section not in sections:
            problems.append(f"{key}: unknown key (known: {', '.join(sorted(sections))})")
            continue
        data[section] = _decode(value)
    try:
        cfg = StackConfig.model_validate(data)
    except ValidationError as err:
        problems.extend(_format(err))
        raise ConfigError(problems) from None
    problems.extend(_secrets_twice(cfg, secret_keys))
    if problems:
        raise ConfigError(problems)
    return cfg


def _secrets_twice(cfg: StackConfig, secret_keys: set[str]) -> list[str]:
    """A secret input may come from config or from 1Password, not both: no value silently shadows another."""
    if cfg.onepassword is None:
        return []
    return [
        f"{NAMESPACE}:{key}: also read from 1Password ({NAMESPACE}:onepassword.items.{key}); keep one of the two"
        for key in map(config_key, cfg.onepassword.items.listed())
        if key in secret_keys
    ]


def raw_config() -> dict[str, Any]:
    """Every config key the engine passed to this program (``ns:key`` → value)."""
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    # The language host sets the config map explicitly; that wins over the environment.
    merged.update(runtime_config.CONFIG.get())
    return merged


def load() -> StackConfig:
    """Parse this stack's config once. Raises :class:`ConfigError` on bad input."""
    return parse(raw_config())
