"""The layout holds: no import circle between any two modules, and the program never imports the offline tooling.

``make lint`` checks the contracts in ``pyproject.toml`` with import-linter; these
tests check the same tree with grimp (import-linter's graph library) at module
level, where a package's ``__init__`` is a module of its own: a section module
importing ``StackConfig`` back from ``stacks.config`` is a circle even though
import-linter's ``acyclic_siblings`` contract does not see it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent

PACKAGES = ("stacks", "components", "plan", "policy", "tools", "bench")
PROGRAM = ("stacks", "components")
TOOLING = ("plan", "tools", "bench", "tests")


def import_graph() -> grimp.ImportGraph:
    """The import graph of the project's packages as this interpreter finds them."""
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each import circle once, as the chain of modules from an import back to its importer."""
    found: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain is not None:
                found.setdefault(frozenset(chain), [importer, *chain])
    return list(found.values())


def tooling_imports(graph: grimp.ImportGraph) -> list[str]:
    """``importer -> imported`` for every import of the offline tooling by the program."""
    out = []
    for importer in sorted(graph.modules):
        if importer.split(".")[0] not in PROGRAM:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported.split(".")[0] in TOOLING:
                out.append(f"{importer} -> {imported}")
    return out


@pytest.fixture(scope="module")
def project_graph() -> grimp.ImportGraph:
    return import_graph()


def checked_elsewhere(root: Path) -> dict[str, list[object]]:
    """Cycles and tooling imports of a copy of the tree, in a fresh interpreter (this one has imported ours)."""
    code = (
        "import json; from tests.test_layout import cycles, import_graph, tooling_imports; g = import_graph(); "
        "print(json.dumps({'cycles': cycles(g), 'tooling': tooling_imports(g)}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    result: dict[str, list[object]] = json.loads(proc.stdout)
    return result


def test_no_module_imports_itself_back(project_graph: grimp.ImportGraph) -> None:
    assert cycles(project_graph) == []


def test_the_program_never_imports_the_offline_tooling(project_graph: grimp.ImportGraph) -> None:
    assert tooling_imports(project_graph) == []


def _copy_packages(tmp_path: Path) -> Path:
    for name in (*PACKAGES, "tests"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_a_section_importing_the_stack_config_back_is_a_circle(tmp_path: Path) -> None:
    root = _copy_packages(tmp_path)
    with (root / "stacks" / "config" / "network.py").open("a") as f:
        f.write("\nfrom stacks.config import StackConfig  # noqa: E402\n")
    assert checked_elsewhere(root)["cycles"] == [["stacks.config", "stacks.config.network", "stacks.config"]]


def test_a_component_importing_the_tooling_is_caught(tmp_path: Path) -> None:
    root = _copy_packages(tmp_path)
    with (root / "components" / "talos.py").open("a") as f:
        f.write("\nfrom plan import offline  # noqa: E402\n")
    assert checked_elsewhere(root) == {"cycles": [], "tooling": ["components.talos -> plan.offline"]}


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache", "pyproject.toml"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_contracts_hold() -> None:
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_contracts_catch_a_component_importing_the_wiring(tmp_path: Path) -> None:
    root = _copy_packages(tmp_path)
    with (root / "components" / "cilium.py").open("a") as f:
        f.write("\nfrom stacks import graph  # noqa: E402\n")
    proc = _lint_imports(root)
    assert proc.returncode == 1
    assert "Wiring above loading above components above secret inputs above config models BROKEN" in proc.stdout


def test_main_stays_thin() -> None:
    lines = (ROOT / "__main__.py").read_text().splitlines()
    assert len(lines) < 40
