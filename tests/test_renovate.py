"""Renovate: the config is valid, and every version in the repository is one Renovate updates."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".renovaterc.json5"
DATASOURCES = {"docker", "helm", "github-releases", "github-tags", "pypi", "git-tags"}
VERSION_LIKE = re.compile(r"^v?\d+(\.\d+)*([-+.][0-9A-Za-z.-]+)?$")


def json5_parser() -> Any:
    """check-jsonschema parses JSON5 with pyjson5 or json5, whichever is installed."""
    for name in ("pyjson5", "json5"):
        if importlib.util.find_spec(name):
            return __import__(name)
    pytest.fail("no JSON5 parser installed (json5 is in requirements.txt)")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = json5_parser().loads(CONFIG.read_text())
    assert isinstance(data, dict)
    return data


def js_regex(pattern: str) -> re.Pattern[str]:
    """A Renovate (JavaScript) regex in Python: ``/…/`` delimiters off, ``(?<name>`` → ``(?P<name>``."""
    if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
        pattern = pattern[1:-1]
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", pattern))


def matches(patterns: list[str], path: Path) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(js_regex(p).search(rel) for p in patterns)


def custom_regexes(config: dict[str, Any]) -> list[tuple[list[str], re.Pattern[str]]]:
    out: list[tuple[list[str], re.Pattern[str]]] = []
    for manager in config["customManagers"]:
        assert manager["customType"] == "regex"
        out.extend((manager["managerFilePatterns"], js_regex(s)) for s in manager["matchStrings"])
    return out


def renovate_deps(config: dict[str, Any], path: Path) -> dict[int, dict[str, Any]]:
    """What the custom regex managers extract from ``path``, by the line number of the value."""
    text = path.read_text()
    deps: dict[int, dict[str, Any]] = {}
    for patterns, regex in custom_regexes(config):
        if not matches(patterns, path):
            continue
        for m in regex.finditer(text):
            line = text.count("\n", 0, m.start("currentValue"))
            assert line not in deps, f"{path.name}:{line + 1} matched twice"
            deps[line] = m.groupdict() | {"comment_line": text.count("\n", 0, m.start())}
    return deps


def versioned_keys(node: Any) -> Iterator[tuple[str, str, int]]:
    """(key, value, 0-based line) of every version in a YAML tree: ``version``, ``*Version``, images with a tag."""
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            if isinstance(value, str) and _is_version_key(str(key), value):
                yield str(key), value, node.lc.key(key)[0]
            yield from versioned_keys(value)
    elif isinstance(node, CommentedSeq):
        for item in node:
            yield from versioned_keys(item)


def _is_version_key(key: str, value: str) -> bool:
    if key == "apiVersion":  # a Kubernetes object's schema, not a dependency
        return False
    if key in ("minVersion", "maxVersion"):  # TLS protocol bounds (Envoy Gateway policies), not a dependency
        return False
    if key == "version" or key.endswith("Version"):
        return True
    if key in ("image", "imageName") or key.endswith("Image"):
        return ":" in value.rsplit("/", 1)[-1]
    return key == "tag" and bool(VERSION_LIKE.match(value))


def load_rt(path: Path) -> list[Any]:
    return list(YAML(typ="rt").load_all(path.read_text()))


def stack_files() -> list[Path]:
    return sorted(p for p in ROOT.glob("Pulumi.*.yaml"))


def expected_value(value: str) -> str:
    """What Renovate replaces: the whole version, or the tag of an image reference."""
    return value.rsplit(":", 1)[1] if ":" in value.rsplit("/", 1)[-1] else value


# --- the file itself -------------------------------------------------------------------------


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    json5_parser()
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.renovate", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_config_matches_renovate_schema():
    result = check_jsonschema(CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_catches_mistakes(tmp_path):
    broken = tmp_path / "renovate.json5"
    broken.write_text(
        '{\n  // a comment, as JSON5 allows\n  customManagers: [{customType: "regexp", matchStrings: "x"}],\n}\n'
    )
    result = check_jsonschema(broken)
    assert result.returncode == 1
    assert "customType" in result.stdout and "matchStrings" in result.stdout


def test_no_removed_options(config):
    # Renovate 40 renamed fileMatch to managerFilePatterns; the schema would not say.
    assert "fileMatch" not in CONFIG.read_text()
    for key in ("flux", "pip_requirements"):
        assert all(p.startswith("/") and p.endswith("/") for p in config[key]["managerFilePatterns"])


def test_managers_cover_the_files(config):
    for path in stack_files():
        assert any(matches(p, path) for p, _ in custom_regexes(config)), path.name
    assert not any(matches(p, ROOT / "Pulumi.yaml") for p, _ in custom_regexes(config))
    assert matches(config["pip_requirements"]["managerFilePatterns"], ROOT / "requirements.txt")
    # One manager per version: requirements.txt belongs to pip_requirements only.
    assert not any(matches(p, ROOT / "requirements.txt") for p, _ in custom_regexes(config))
    for path in (ROOT / "kubernetes").rglob("*.yaml"):
        assert matches(config["flux"]["managerFilePatterns"], path), path
    assert config.get("github-actions", {}).get("enabled", True)


# --- every version has a home Renovate updates -----------------------------------------------


@pytest.mark.parametrize("path", stack_files(), ids=lambda p: p.name)
def test_every_stack_version_is_annotated_and_matched(config, path):
    lines = path.read_text().splitlines()
    deps = renovate_deps(config, path)
    found = 0
    for doc in load_rt(path):
        for key, value, line in versioned_keys(doc):
            found += 1
            where = f"{path.name}:{line + 1} {key}: {value}"
            assert "# renovate:" in lines[line - 1], f"{where}: no renovate comment on the line before"
            assert line in deps, f"{where}: the regex manager does not match it"
            dep = deps[line]
            assert dep["currentValue"] == expected_value(value), where
            assert dep["datasource"] in DATASOURCES, where
    assert found >= 2, "talosVersion and kubernetesVersion at least"


@pytest.mark.parametrize("path", stack_files(), ids=lambda p: p.name)
def test_every_renovate_comment_is_understood(config, path):
    # An option the regex does not know (or a typo) would make the manager skip the line silently.
    deps = renovate_deps(config, path)
    comments = [i for i, line in enumerate(path.read_text().splitlines()) if "# renovate:" in line]
    assert sorted(d["comment_line"] for d in deps.values()) == comments


def test_regex_manager_on_examples(config):
    (_, regex), *_ = custom_regexes(config)
    text = (
        "    # renovate: datasource=helm depName=cilium registryUrl=https://helm.cilium.io\n"
        "    version: 1.2.3\n"
        "    # renovate: datasource=docker depName=quay.io/ceph/ceph\n"
        '    cephImage: "quay.io/ceph/ceph:v9.8.7"\n'
        "    # renovate: datasource=github-releases depName=fluxcd/flux2 extractVersion=^v(?<version>.*)$\n"
        "      - tag: 2.0.1\n"
        "    # renovate: datasource=docker depName=x unknownOption=1\n"
        "    version: 9.9.9\n"
    )
    got = [(m["depName"], m["currentValue"], m["registryUrl"], m["extractVersion"]) for m in regex.finditer(text)]
    assert got == [
        ("cilium", "1.2.3", "https://helm.cilium.io", None),
        ("quay.io/ceph/ceph", "v9.8.7", None, None),
        ("fluxcd/flux2", "2.0.1", None, "^v(?<version>.*)$"),
    ]


def kubernetes_files() -> list[Path]:
    return sorted((ROOT / "kubernetes").rglob("*.yaml"))


# --- Renovate's built-in managers on the Flux tree ---------------------------------------------
# What Renovate's own code extracts (renovatebot/renovate, lib/modules/manager/flux/extract.ts,
# helm-values/extract.ts and util.ts, kustomize/extract.ts), as the 0-based line of each value.

IMAGE_KEY = re.compile(r"image$", re.IGNORECASE)  # helm-values' parentKeyRe


def _line_of(node: CommentedMap, key: str) -> int:
    line: int = node.lc.value(key)[0]
    return line


def helm_values_deps(node: Any, out: dict[int, str]) -> None:
    """helm-values' findDependencies, which the flux manager runs on every HelmRelease's ``spec.values``.

    A key ending in ``image`` whose value is a map with ``repository`` and ``tag`` (or ``version``),
    or whose value is a string (``image: repo:tag``), is a Docker dependency; anything else is descended.
    """
    items: list[tuple[Any, Any]]
    if isinstance(node, CommentedMap):
        items = list(node.items())
    elif isinstance(node, CommentedSeq):
        items = list(enumerate(node))
    else:
        return
    for key, value in items:
        if isinstance(node, CommentedMap) and IMAGE_KEY.search(str(key)):
            if isinstance(value, CommentedMap) and "repository" in value and ("tag" in value or "version" in value):
                tag_key = "tag" if "tag" in value else "version"
                out[_line_of(value, tag_key)] = f"{value.get('registry', '')}{value['repository']}"
                continue
            if isinstance(value, str) and value:
                out[_line_of(node, key)] = value.rsplit(":", 1)[0]
                continue
        helm_values_deps(value, out)


def flux_deps(path: Path) -> dict[int, str]:
    """What the flux manager extracts from a file: line of the version → package."""
    out: dict[int, str] = {}
    for doc in load_rt(path):
        if not isinstance(doc, CommentedMap) or not isinstance(doc.get("spec"), CommentedMap):
            continue
        api, kind, spec = str(doc.get("apiVersion", "")), doc.get("kind"), doc["spec"]
        if kind == "HelmRelease" and api.startswith("helm.toolkit.fluxcd.io/"):
            chart = (spec.get("chart") or {}).get("spec")
            if isinstance(chart, CommentedMap) and "version" in chart:
                out[_line_of(chart, "version")] = str(chart["chart"])
            helm_values_deps(spec.get("values"), out)
        elif kind in ("OCIRepository", "GitRepository") and api.startswith("source.toolkit.fluxcd.io/"):
            ref = spec.get("ref")
            if isinstance(ref, CommentedMap) and "tag" in ref:
                out[_line_of(ref, "tag")] = str(spec["url"])
        elif kind == "Kustomization" and api.startswith("kustomize.toolkit.fluxcd.io/"):
            for image in spec.get("images") or []:
                if "newTag" in image:
                    out[_line_of(image, "newTag")] = str(image.get("newName", image["name"]))
    return out


def kustomize_deps(path: Path) -> dict[int, str]:
    """What the kustomize manager (default files: ``kustomization.yaml``) extracts: images, helmCharts, remote refs."""
    out: dict[int, str] = {}
    if path.name not in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        return out
    for doc in load_rt(path):
        if not isinstance(doc, CommentedMap):
            continue
        for image in doc.get("images") or []:
            if "newTag" in image:
                out[_line_of(image, "newTag")] = str(image.get("newName", image["name"]))
        for chart in doc.get("helmCharts") or []:
            if "version" in chart:
                out[_line_of(chart, "version")] = str(chart["name"])
        for i, resource in enumerate((doc.get("resources") or []) + (doc.get("components") or [])):
            if re.search(r"(^https?://|^github\.com/|\?ref=)", str(resource)):
                out[-1 - i] = str(resource)  # a remote base: Renovate would extract its ref
    return out


def tree_deps(config: dict[str, Any], path: Path) -> dict[str, dict[int, str]]:
    """Every manager's extraction from one file of the tree, by manager."""
    regex = {line: str(d["depName"]) for line, d in renovate_deps(config, path).items()}
    managers = {"regex": regex, "kustomize": kustomize_deps(path)}
    if matches(config["flux"]["managerFilePatterns"], path):
        managers["flux"] = flux_deps(path)
    return managers


def test_flux_manager_emulation_on_examples(tmp_path):
    path = tmp_path / "kubernetes" / "hr.yaml"
    path.parent.mkdir()
    path.write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\n"
        "kind: HelmRelease\n"
        "metadata: {name: x, namespace: x}\n"
        "spec:\n"
        "  chart:\n"
        "    spec:\n"
        "      chart: x\n"
        "      version: 1.2.3\n"  # line 7
        "  values:\n"
        "    image: &image\n"
        "      repository: example.org/x\n"
        "      tag: v1.0.0\n"  # line 11
        "    other: *image\n"  # an alias under a key that is not *image: not a second dependency
        "    sidecar:\n"
        "      containers:\n"
        "        - name: y\n"
        "          image: example.org/y:2.0.0\n"  # line 16
        "    initImage: {repository: example.org/z, version: 3.0.0}\n"  # line 17
        "    imagePullPolicy: IfNotPresent\n"
    )
    assert flux_deps(path) == {7: "x", 11: "example.org/x", 16: "example.org/y", 17: "example.org/z"}


def test_every_tree_version_is_found_by_exactly_one_manager(config):
    """Each chart version, OCI tag and image tag in kubernetes/ is extracted once, by one manager.

    The flux manager reads HelmRelease chart versions, OCIRepository tags and the images in
    HelmRelease values (Renovate 39.115 and later); the regex manager (a ``# renovate:`` comment)
    is only for the pins it does not see (a CloudNativePG Cluster's ``imageName``, a CronJob's
    image). A comment on an image the flux manager reads would make two managers update it.
    """
    checked = 0
    for path in kubernetes_files():
        rel = path.relative_to(ROOT)
        managers = tree_deps(config, path)
        found: dict[int, list[str]] = {}
        for name, deps in managers.items():
            for line in deps:
                found.setdefault(line, []).append(name)
        pins: set[int] = set()
        for doc in load_rt(path):
            for key, value, line in versioned_keys(doc):
                checked += 1
                pins.add(line)
                where = f"{rel}:{line + 1} {key}: {value}"
                assert found.get(line), f"{where}: no Renovate manager finds it"
                assert len(found[line]) == 1, f"{where}: found by {' and '.join(found[line])}"
                if "regex" in found[line]:
                    assert renovate_deps(config, path)[line]["currentValue"] == expected_value(value), where
        for line, names in found.items():
            assert line in pins, f"{rel}:{line + 1}: {'/'.join(names)} extracts something that is not a pin"
            assert len(names) == 1, f"{rel}:{line + 1}: found by {' and '.join(names)}"
    assert checked > 0, "no versions found in the Flux tree"


def test_a_renovate_comment_on_a_flux_image_is_a_double(config, tmp_path):
    """The check above catches an image that both the flux and the regex manager would update."""
    path = tmp_path / "kubernetes" / "hr.yaml"
    path.parent.mkdir()
    path.write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\n"
        "kind: HelmRelease\n"
        "metadata: {name: x, namespace: x}\n"
        "spec:\n"
        "  values:\n"
        "    image:\n"
        "      repository: example.org/x\n"
        "      # renovate: datasource=docker depName=example.org/x\n"
        "      tag: v1.0.0\n"
    )
    text = path.read_text()
    (_, regex), *_ = custom_regexes(config)
    regex_lines = {text.count("\n", 0, m.start("currentValue")) for m in regex.finditer(text)}
    assert regex_lines == {8} and set(flux_deps(path)) == {8}


def test_kubernetes_chart_versions_are_flux_sources():
    # The flux manager reads HelmRelease chart versions and OCIRepository tags.
    for path in kubernetes_files():
        for doc in load_rt(path):
            if not isinstance(doc, CommentedMap):
                continue
            spec = doc.get("spec") or {}
            if doc.get("kind") == "OCIRepository":
                assert VERSION_LIKE.match(str(spec["ref"]["tag"])), path
            if doc.get("kind") == "HelmRelease" and "chart" in spec:
                assert VERSION_LIKE.match(str(spec["chart"]["spec"]["version"])), path


def test_requirements_are_pinned_and_annotated():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins = [(i, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    assert pins
    for i, line in pins:
        m = re.fullmatch(r"([A-Za-z0-9_.\[\]-]+)==(\S+)", line.strip())
        assert m, f"requirements.txt:{i + 1}: {line!r} is not an exact pin"
        name = re.sub(r"\[.*\]", "", m[1])
        assert f"depName={name}" in lines[i - 1], f"requirements.txt:{i + 1}: no matching renovate comment"


def test_preview_pins_the_pulumi_cli_of_the_sdk(config):
    """The PR preview's CLI is an exact version, found once by the regex manager, equal to the SDK pin."""
    path = ROOT / ".github" / "workflows" / "preview.yaml"
    deps = renovate_deps(config, path)
    pins = [d for d in deps.values() if d["depName"] == "pulumi/pulumi"]
    assert len(pins) == 1, "one pulumi-version, matched once"
    [pin] = pins
    assert pin["datasource"] == "github-releases"
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert sdk is not None and pin["currentValue"] == sdk[1]
    assert f"pulumi-version: {pin['currentValue']}" in path.read_text()
