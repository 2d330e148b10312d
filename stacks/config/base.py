"""Base types every config section builds on: the model base, checked string types, charts and layers.

Nothing here imports a section module; sections import from here, and
:mod:`stacks.config` assembles them into ``StackConfig``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

NAMESPACE = "homelab"
"""The project's config namespace: every key is ``homelab:<section>``."""

HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")
TALOS_VERSION_RE = re.compile(r"^v1\.13\.\d+$")
BY_ID_PREFIX = "/dev/disk/by-id/"
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")

# A Talos config patch: one YAML document as a mapping.
Patch = dict[str, Any]


def matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    """A validator for ``Annotated[str, …]``: the value must match ``pattern``, else it "is not ``what``"."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


Hostname = Annotated[str, matching(HOSTNAME_RE, "an RFC 1123 host name (lower-case letters, digits, '-', '.')")]
Version = Annotated[str, matching(VERSION_RE, "a version of the form vX.Y.Z")]
# pulumiverse-talos 0.8.1 is built on Talos machinery v1.13, and the patches use
# documents (HostnameConfig, LinkConfig, Layer2VIPConfig, …) older Talos rejects.
TalosVersion = Annotated[
    str, matching(TALOS_VERSION_RE, "a Talos v1.13.x version (what this provider and these patches target)")
]
NonEmpty = Annotated[str, Field(min_length=1)]
# Lower case, as Talos's CEL ``mac()`` prints a hardware address (siderolabs/talos v1.13.9
# pkg/machinery/config/types/network/link_alias.go, example selector).
MacAddress = Annotated[
    str,
    matching(MAC_RE, "a MAC address (six hex pairs separated by ':', e.g. 00:1a:2b:3c:4d:5e)"),
    AfterValidator(str.lower),
]


class Model(BaseModel):
    """Base for every config model: frozen, unknown keys rejected, camelCase keys in YAML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=False,
    )


CHART_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


ChartVersion = Annotated[str, matching(CHART_VERSION_RE, "an exact chart version (X.Y.Z, no ranges)")]


class ChartConfig(Model):
    """A Helm chart pinned to an exact version (each carries a ``# renovate:`` comment in YAML)."""

    chart: NonEmpty = Field(description="Chart name, or a full oci:// reference.")
    repository: NonEmpty | None = Field(None, description="Chart repository URL (https:// or oci://).")
    version: ChartVersion = Field(description="Exact chart version.")


class LayerConfig(Model):
    """Common shape of a base-platform layer deployed from a Helm chart."""

    enabled: bool = Field(True, description="Deploy this layer.")
    chart: ChartConfig = Field(description="Chart source and exact version.")
    namespace: NonEmpty = Field(description="Namespace the layer lives in.")
    values: dict[str, Any] = Field(
        default_factory=dict, description="Extra chart values, merged over the generated ones."
    )
