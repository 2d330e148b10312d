"""No test hard-codes a version that is pinned in a stack file or the Flux tree.

A Renovate bump of a pin (Talos, Kubernetes, a chart, an image) changes only the pin's line;
a test that compares against the literal would fail the bump's PR. Tests read the version from
the stack file (or the tree) instead. A fixture that only looks like a pin (an invalid version
for an error message, a policy input) must use a value that is not a current pin, so this check
cannot tell it from a hard-coded one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.test_renovate import (
    ROOT,
    json5_parser,
    kubernetes_files,
    renovate_deps,
    stack_files,
    tree_deps,
)

TESTS = ROOT / "tests"


def pinned_versions() -> dict[str, str]:
    """Every version Renovate updates in the stack files and the tree → where it is pinned."""
    cfg = json5_parser().loads((ROOT / ".renovaterc.json5").read_text())
    pins: dict[str, str] = {}
    for path in stack_files():
        for line, dep in renovate_deps(cfg, path).items():
            pins.setdefault(str(dep["currentValue"]), f"{path.name}:{line + 1}")
    for path in kubernetes_files():
        text = path.read_text().splitlines()
        for deps in tree_deps(cfg, path).values():
            for line in deps:
                if line < 0:
                    continue
                value = text[line].split(":", 1)[1].strip().strip("\"'")
                value = value.rsplit(":", 1)[-1] if "/" in value else value
                pins.setdefault(value, f"{path.relative_to(ROOT)}:{line + 1}")
    return pins


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in a Python file, f-string parts included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def spells_pin(text: str, pin: str) -> bool:
    """The literal is the pin, or an image reference or suffix with it as the tag (``repo:v1.13.9``, ``:v1.13.9``).

    A literal that only contains the pin (a range like ``~1.19.1`` for a config-error test, a
    fixture tree's YAML) is an input, not an expected value.
    """
    return text == pin or text.endswith(f":{pin}")


def hard_coded(pins: dict[str, str], files: list[Path]) -> list[str]:
    found: list[str] = []
    for path in files:
        for line, text in string_literals(path):
            for pin, where in pins.items():
                if spells_pin(text, pin):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text!r} is the pin {pin} ({where})")
    return sorted(set(found))


def test_the_pins_are_found():
    pins = pinned_versions()
    stack = (ROOT / "Pulumi.home.yaml").read_text()
    talos = re.search(r"talosVersion: (\S+)", stack)
    assert talos is not None and talos[1] in pins
    assert len(pins) > 20


def test_a_hard_coded_pin_is_reported(tmp_path):
    pins = {"v1.13.9": "Pulumi.home.yaml:16", "1.19.1": "Pulumi.home.yaml:66"}
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        'A = "v1.13.9"\n'
        'B = "ghcr.io/siderolabs/installer:v1.13.9"\n'
        'C = "1.13.9"  # not the pin: no v\n'
        'D = "1.19.10"  # another version\n'
        'E = "~1.19.1"  # a range: an invalid input built from the pin\n'
        'F = "v1.19.1"\n'
    )
    got = [(line, text) for line, text in string_literals(sample) if any(spells_pin(text, p) for p in pins)]
    assert got == [(1, "v1.13.9"), (2, "ghcr.io/siderolabs/installer:v1.13.9")]


def test_no_test_hard_codes_a_pinned_version():
    files = sorted(p for p in TESTS.rglob("*.py") if p.name != Path(__file__).name)
    problems = hard_coded(pinned_versions(), files)
    assert not problems, "read these from the stack file instead:\n" + "\n".join(problems)
