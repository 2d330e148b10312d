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
        "    version: 1.19.1\n"
        "    # renovate: datasource=docker depName=quay.io/ceph/ceph\n"
        '    cephImage: "quay.io/ceph/ceph:v20.2.4"\n'
        "    # renovate: datasource=github-releases depName=fluxcd/flux2 extractVersion=^v(?<version>.*)$\n"
        "      - tag: 2.8.5\n"
        "    # renovate: datasource=docker depName=x unknownOption=1\n"
        "    version: 9.9.9\n"
    )
    got = [(m["depName"], m["currentValue"], m["registryUrl"], m["extractVersion"]) for m in regex.finditer(text)]
    assert got == [
        ("cilium", "1.19.1", "https://helm.cilium.io", None),
        ("quay.io/ceph/ceph", "v20.2.4", None, None),
        ("fluxcd/flux2", "2.8.5", None, "^v(?<version>.*)$"),
    ]


def kubernetes_files() -> list[Path]:
    return sorted((ROOT / "kubernetes").rglob("*.yaml"))


def test_kubernetes_images_are_annotated_and_matched(config):
    checked = 0
    for path in kubernetes_files():
        lines = path.read_text().splitlines()
        deps = renovate_deps(config, path)
        for doc in load_rt(path):
            kind = doc.get("kind") if isinstance(doc, CommentedMap) else None
            for key, value, line in versioned_keys(doc):
                if key == "version" or (kind == "OCIRepository" and key == "tag"):
                    continue  # chart versions: the flux manager
                checked += 1
                where = f"{path.relative_to(ROOT)}:{line + 1} {key}: {value}"
                assert "# renovate:" in lines[line - 1], f"{where}: no renovate comment on the line before"
                assert line in deps and deps[line]["currentValue"] == expected_value(value), where
    assert checked > 0, "no image versions found in the Flux tree"


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
