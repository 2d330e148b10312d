"""Compare the Flux tree of two source trees as Flux would apply it.

Each tree is rendered by :func:`tools.validate_kubernetes.render` (every Flux
Kustomization built with ``kubectl kustomize``, its components and patches, then
``postBuild`` substitution as Flux does it), and the objects are matched by API
group, kind, namespace and name. A changed object is shown as a unified diff of
its YAML (HelmRelease ``spec.values`` and chart versions included); a rendered
``Secret`` is never shown, only that it changed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # the validator imports jsonschema and kubernetes-validate: only when a tree is rendered
    from tools import validate_kubernetes as flux

HIDDEN_KINDS = frozenset({"Secret"})
"""Kinds whose content is never shown (SOPS-encrypted or not)."""
# What removing an object of these kinds takes with it.
DESTRUCTIVE: dict[str, str] = {
    "Namespace": "every object in the namespace",
    "PersistentVolumeClaim": "the volume's data (unless its reclaim policy keeps it)",
    "Kustomization": "every object it applied (prune)",
    "HelmRelease": "the release (helm uninstall)",
    "CustomResourceDefinition": "every custom resource of that kind",
}

Key = tuple[str, str, str, str]
"""(API group, kind, namespace, name)."""


@dataclass
class ObjectChange:
    """One object Flux would create, delete or change."""

    ref: str
    """``Kind namespace/name``."""
    action: str
    """added, removed or changed."""
    file: str
    diff: list[str] = field(default_factory=list)
    """Unified diff lines (none for a Secret)."""
    hidden: bool = False
    chart: str = ""
    """A HelmRelease's chart version change, ``chart old → new``."""
    destroys: str = ""

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"ref": self.ref, "action": self.action, "file": self.file}
        if self.hidden:
            out["secret"] = "[secret changed]" if self.action == "changed" else True
        elif self.diff:
            out["diff"] = "\n".join(self.diff)
        if self.chart:
            out["chart"] = self.chart
        if self.destroys:
            out["destroys"] = self.destroys
        return out


@dataclass
class FluxDiff:
    """The whole Flux side."""

    objects: list[ObjectChange]
    base_count: int
    head_count: int
    problems: list[str]
    """Problems met while rendering (``base: …`` / ``head: …``)."""
    rendered: bool = True
    """False when the tree is the same on both sides and was not rendered."""

    def of(self, action: str) -> list[ObjectChange]:
        """Changes with this action."""
        return [o for o in self.objects if o.action == action]


def _key(built: flux.BuiltObject) -> Key:
    group = str(built.obj.get("apiVersion", "")).rpartition("/")[0]
    return (group, built.kind, built.namespace, built.name)


def _text(obj: dict[str, Any]) -> str:
    dumped: str = yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=True, default_flow_style=False, width=120)
    return dumped


def chart_change(old: tuple[str, str] | None, new: tuple[str, str] | None) -> str:
    """``chart old → new`` (``old-chart old → new-chart new`` when the chart itself changed)."""
    if old is None or new is None:
        return f"{' '.join(old or ('?',))} → {' '.join(new or ('?',))}"
    if old[0] == new[0]:
        return f"{new[0]} {old[1]} → {new[1]}"
    return f"{old[0]} {old[1]} → {new[0]} {new[1]}"


def chart_versions(render: flux.Render) -> dict[Key, tuple[str, str]]:
    """Each HelmRelease's (chart, version): from spec.chart or the OCIRepository its chartRef names."""
    out: dict[Key, tuple[str, str]] = {}
    for built in render.objects:
        if built.kind != "HelmRelease":
            continue
        spec = built.obj.get("spec") or {}
        chart = (spec.get("chart") or {}).get("spec") or {}
        if chart:
            out[_key(built)] = (str(chart.get("chart", "")), str(chart.get("version", "")))
            continue
        ref = spec.get("chartRef") or {}
        source = render.find(str(ref.get("kind", "")), ref.get("namespace") or built.namespace, str(ref.get("name")))
        if source is not None:
            source_spec = source.obj.get("spec") or {}
            name = str(source_spec.get("url", "")).rstrip("/").rsplit("/", 1)[-1]
            ref_spec = source_spec.get("ref") or {}
            version = ref_spec.get("tag") or ref_spec.get("semver") or ref_spec.get("digest") or ""
            out[_key(built)] = (name, str(version))
    return out


def render_both(base: Path, head: Path) -> tuple[flux.Render, flux.Render]:
    """Render one tree, then the other (each already builds its Kustomizations on every core)."""
    from tools import validate_kubernetes  # noqa: PLC0415 - see the import above

    return validate_kubernetes.render(base), validate_kubernetes.render(head)


def compare(old: flux.Render, new: flux.Render) -> FluxDiff:
    """Objects added, removed and changed from ``old`` to ``new``."""
    before = {_key(b): b for b in old.objects}
    after = {_key(b): b for b in new.objects}
    old_charts, new_charts = chart_versions(old), chart_versions(new)
    changes = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        built = b or a
        assert built is not None
        hidden = built.kind in HIDDEN_KINDS
        if a is None:
            action = "added"
        elif b is None:
            action = "removed"
        elif a.obj != b.obj:
            action = "changed"
        else:
            continue
        diff: list[str] = []
        if not hidden:
            diff = list(
                difflib.unified_diff(
                    _text(a.obj).splitlines() if a else [],
                    _text(b.obj).splitlines() if b else [],
                    f"base/{a.file}" if a else "/dev/null",
                    f"head/{b.file}" if b else "/dev/null",
                    lineterm="",
                    n=3,
                )
            )
        chart = ""
        if action == "changed" and old_charts.get(key) != new_charts.get(key):
            chart = chart_change(old_charts.get(key), new_charts.get(key))
        changes.append(
            ObjectChange(
                ref=built.ref(),
                action=action,
                file=built.file,
                diff=diff,
                hidden=hidden,
                chart=chart,
                destroys=DESTRUCTIVE.get(built.kind, "") if action == "removed" else "",
            )
        )
    # A chart bumped through its OCIRepository leaves the HelmRelease itself unchanged: say so on the release.
    for key in sorted(set(old_charts) & set(new_charts)):
        if old_charts[key] != new_charts[key] and not any(c.ref == after[key].ref() for c in changes):
            changes.append(
                ObjectChange(
                    ref=after[key].ref(),
                    action="changed",
                    file=after[key].file,
                    chart=chart_change(old_charts[key], new_charts[key]),
                )
            )
    problems = [f"base: {p}" for p in old.problems] + [f"head: {p}" for p in new.problems]
    return FluxDiff(changes, len(old.objects), len(new.objects), problems)
