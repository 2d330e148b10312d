"""Every chart's generated values against the pinned chart: its values schema, and the paths its templates read.

The chart data (``values.yaml``, ``values.schema.json`` where the chart ships one,
``template-refs.txt``: the ``.Values`` paths its templates read) comes from
``../shared/schemas/charts/<chart>/<version>/``. A misspelled key (``hubble.tls.auto.methd``)
renders nothing and fails silently in the cluster; here it fails the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.k8s import deep_merge
from plan import offline

CHART = "kubernetes:helm.sh/v4:Chart"


def leaf_paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the leaves of a values map (a non-empty map is descended, anything else is a leaf)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from leaf_paths(value, f"{path}.")
        else:
            yield path


def open_maps(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Paths in ``values.yaml`` that are empty maps or null: the chart takes anything below them."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from open_maps(value, f"{path}.")
        elif value is None or value == {}:
            yield path


def maps_in(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Paths of the non-empty maps in a values map."""
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            yield f"{prefix}{key}"
            yield from maps_in(value, f"{prefix}{key}.")


def unknown_paths(values: Mapping[str, Any], chart_dir: Path) -> list[str]:
    """Value paths the chart neither declares in values.yaml nor reads in a template."""
    defaults = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
    declared = set(leaf_paths(defaults))
    open_ = set(open_maps(defaults))
    structured = set(maps_in(defaults))
    refs = set((chart_dir / "template-refs.txt").read_text().split())

    def known(path: str) -> bool:
        if path in declared or path in refs:
            return True
        parts = path.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts))}
        # values.yaml leaves a map open, or a template passes a whole sub-map through (toYaml .Values.x);
        # a reference to a map values.yaml spells out key by key is only a test of it, not a pass-through.
        return bool(prefixes & open_) or bool((prefixes & refs) - structured)

    return [p for p in leaf_paths(values) if not known(p)]


def chart_dir(schemas: Path, chart: offline.Resource) -> Path:
    """The chart's data folder: its exact version, or the one version there (SOURCES.md says which)."""
    name = str(chart.inputs["chart"]).rstrip("/").rsplit("/", 1)[-1]
    versions: Path = schemas / "charts" / name
    exact: Path = versions / str(chart.inputs["version"])
    if exact.is_dir():
        return exact
    present: list[Path] = sorted(p for p in versions.iterdir() if p.is_dir()) if versions.is_dir() else []
    if len(present) != 1:
        pytest.skip(f"no chart data for {name} {chart.inputs['version']} under ../shared/schemas/charts")
    # A chart bumped past the data folder (a Renovate PR) is checked against the one version there.
    return present[0]


def test_every_chart_value_is_one_the_chart_knows(home: offline.Capture, schemas: Path) -> None:
    charts = home.of_type(CHART)
    assert charts
    for chart in charts:
        folder = chart_dir(schemas, chart)
        values = chart.inputs.get("values", {})
        assert unknown_paths(values, folder) == [], chart.name
        schema_file = folder / "values.schema.json"
        if schema_file.is_file():
            schema = json.loads(schema_file.read_text())
            merged = deep_merge(yaml.safe_load((folder / "values.yaml").read_text()) or {}, values)
            errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(merged), key=str)
            assert [e.message for e in errors] == [], chart.name


def test_a_misspelled_value_is_caught(home: offline.Capture, schemas: Path) -> None:
    cilium = home.by_name("cilium-chart")
    values = json.loads(json.dumps(cilium.inputs["values"]))
    values["hubble"]["tls"]["auto"]["methd"] = "cronJob"
    values["bpf"]["hostLegacyRoutin"] = True
    assert unknown_paths(values, chart_dir(schemas, cilium)) == ["bpf.hostLegacyRoutin", "hubble.tls.auto.methd"]
