"""Offline plan: ``python -m plan --stack home``.

Runs the program under mocks for ``Pulumi.<stack>.yaml``, prints the resource
tree grouped by component, and writes ``build/plan/<stack>/``:

- ``graph.json``: every resource (URN, type, name, parent, dependencies, inputs with
  secrets as ``[secret]``), the invokes and the stack outputs;
- ``talos/<node>.yaml``: the merged Talos patches of each node;
- ``graph.dot`` and ``graph.mmd`` (Mermaid), plus ``graph.svg`` when Graphviz is installed.

Invalid config prints one line per problem and exits 2; nothing else is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import talos_patches
from plan import offline
from plan.policy import plan_check as policy_check
from stacks.loader import ConfigError

# Invoke arguments that carry credentials even when the SDK sends them unwrapped.
SECRET_INVOKE_ARGS = frozenset({"machineSecrets", "clientConfiguration"})

# Extra reports over the capture (the policy pack registers one); each returns an exit code.
# The policy pack (pulumi_policy adds ~8 ms to the import time): mandatory violations fail the plan.
CHECKS: list[Callable[[offline.Capture, Path], int]] = [policy_check]


def short(urn: str) -> str:
    """The logical name at the end of a URN."""
    return urn.rsplit("::", 1)[-1]


def edges(capture: offline.Capture) -> list[tuple[str, str]]:
    """(dependent, dependency) pairs by resource name: explicit and through inputs."""
    known = capture.by_urn()
    out: set[tuple[str, str]] = set()
    for r in capture.resources:
        deps = set(r.dependencies)
        for urns in r.property_dependencies.values():
            deps.update(urns)
        for dep in deps:
            if dep in known and dep != r.parent:
                out.add((r.name, known[dep].name))
    return sorted(out)


def graph_json(capture: offline.Capture) -> dict[str, Any]:
    """The whole capture as JSON-ready data, secrets redacted."""
    known = capture.by_urn()
    return {
        "stack": capture.stack,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": known[r.parent].name if r.parent in known else None,
                "dependencies": sorted({known[d].name for d in r.dependencies if d in known}),
                "protect": r.protect,
                "additionalSecretOutputs": r.additional_secret_outputs,
                "inputs": offline.plain(r.inputs),
            }
            # By URN, not registration order: resources registered inside applies and
            # invokes made concurrently arrive in a different order on every run.
            for r in sorted(capture.resources, key=lambda r: r.urn)
        ],
        "invokes": sorted(
            (
                {
                    "token": i.token,
                    "args": {
                        k: offline.REDACTED if k in SECRET_INVOKE_ARGS else offline.plain(v) for k, v in i.args.items()
                    },
                }
                for i in capture.invokes
            ),
            key=lambda i: json.dumps(i, sort_keys=True),
        ),
        "outputs": {
            k: offline.REDACTED if k in capture.secret_outputs else offline.plain(v) for k, v in capture.outputs.items()
        },
        "edges": [list(e) for e in edges(capture)],
    }


def sent_patches(capture: offline.Capture) -> dict[str, list[dict[str, Any]]]:
    """The Talos patch documents the program sent the provider, per node host name (shared: read only)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for inv in capture.invokes:
        if inv.token != "talos:machine/getConfiguration:getConfiguration":
            continue
        docs = [talos_patches.read_patch(p) for p in inv.args.get("configPatches") or []]
        host = next((d["hostname"] for d in docs if d.get("kind") == "HostnameConfig"), None)
        if host:
            out[host] = docs
    return out


def node_patches(capture: offline.Capture) -> dict[str, list[dict[str, Any]]]:
    """Merged Talos patches per node, read back from what the program sent the provider."""
    return {host: talos_patches.merged(docs) for host, docs in sent_patches(capture).items()}


def tree_lines(capture: offline.Capture) -> list[str]:
    """The resource tree grouped by component, with counts."""
    children: dict[str, list[offline.Resource]] = defaultdict(list)
    for r in sorted(capture.resources, key=lambda r: (r.type, r.name)):
        children[r.parent].append(r)
    known = capture.by_urn()
    lines: list[str] = []

    def walk(res: offline.Resource, depth: int) -> None:
        kids = children.get(res.urn, [])
        flags = [f for f, on in (("protect", res.protect), ("remote", res.remote)) if on]
        count = f" ({len(kids)} children)" if kids else ""
        lines.append(f"{'  ' * depth}{res.type} {res.name}{count}{' [' + ', '.join(flags) + ']' if flags else ''}")
        for kid in kids:
            walk(kid, depth + 1)

    for r in capture.resources:
        if r.parent not in known:
            walk(r, 0)
    counts = Counter(r.type.rsplit(":", 1)[-1] for r in capture.resources)
    lines.append("")
    lines.append(
        f"{len(capture.resources)} resources, {len(capture.invokes)} invokes: "
        + ", ".join(f"{n} {t}" for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    )
    lines.append(
        "outputs: "
        + ", ".join(f"{k}{' (secret)' if k in capture.secret_outputs else ''}" for k in sorted(capture.outputs))
    )
    return lines


def drawn(r: offline.Resource) -> bool:
    """Resources the pictures show: real ones and remote components (Helm charts), not our own components."""
    return r.custom or r.remote


@dataclass(frozen=True)
class Picture:
    """What both pictures draw: nodes grouped by component, and their edges."""

    ids: dict[str, str]
    """Resource name → node id."""
    groups: dict[str | None, list[offline.Resource]]
    """Component name (None: top level) → its drawn resources."""
    edges: list[tuple[str, str]]
    """Dependent → dependency."""
    provider_edges: list[tuple[str, str]]
    """Resource → its explicit provider, for resources that wait on nothing else drawn."""


def picture(capture: offline.Capture) -> Picture:
    """Collect the nodes and edges of the dependency picture."""
    known = capture.by_urn()
    shown = [r for r in capture.resources if drawn(r)]
    names = {r.name for r in shown}
    groups: dict[str | None, list[offline.Resource]] = defaultdict(list)
    for r in shown:
        groups[known[r.parent].name if r.parent in known else None].append(r)
    deps = [(a, b) for a, b in edges(capture) if a in names and b in names]
    waiting = {a for a, _ in deps}
    providers = {urn.rsplit("::", 1)[-1]: r.name for urn, r in known.items() if r.type.startswith("pulumi:providers:")}
    provider_edges = []
    for r in shown:
        # A provider reference is "<provider urn>::<provider id>".
        provider = providers.get(r.provider.rsplit("::", 2)[-2]) if r.provider.count("::") >= 2 else None
        if provider is not None and r.name not in waiting:
            provider_edges.append((r.name, provider))
    return Picture(_ids(r.name for r in capture.resources), dict(groups), deps, provider_edges)


def _ids(names: Iterable[str]) -> dict[str, str]:
    return {n: f"n{i}" for i, n in enumerate(names)}


def _kind(r: offline.Resource) -> str:
    return r.type.rsplit(":", 1)[-1]


def dot(capture: offline.Capture) -> str:
    """Graphviz picture: one cluster per component, arrows from dependent to dependency (dashed: provider)."""
    pic = picture(capture)
    out = ["digraph homelab {", "  rankdir=LR;", '  node [shape=box, fontname="sans-serif", fontsize=10];']
    for group, members in pic.groups.items():
        if group is not None:
            out.append(f'  subgraph cluster_{pic.ids[group]} {{ label="{group}";')
        out.extend(f'    {pic.ids[r.name]} [label="{r.name}\\n{_kind(r)}"];' for r in members)
        if group is not None:
            out.append("  }")
    out.extend(f"  {pic.ids[a]} -> {pic.ids[b]};" for a, b in pic.edges)
    out.extend(f"  {pic.ids[a]} -> {pic.ids[b]} [style=dashed];" for a, b in pic.provider_edges)
    out.append("}")
    return "\n".join(out) + "\n"


def mermaid(capture: offline.Capture) -> str:
    """The same picture as a Mermaid flowchart (renders on GitHub)."""
    pic = picture(capture)
    out = ["flowchart LR"]
    for group, members in pic.groups.items():
        if group is not None:
            out.append(f'  subgraph {pic.ids[group]}["{group}"]')
        out.extend(f'    {pic.ids[r.name]}["{r.name}<br/>{_kind(r)}"]' for r in members)
        if group is not None:
            out.append("  end")
    out.extend(f"  {pic.ids[a]} --> {pic.ids[b]}" for a, b in pic.edges)
    out.extend(f"  {pic.ids[a]} -.-> {pic.ids[b]}" for a, b in pic.provider_edges)
    return "\n".join(out) + "\n"


def write(capture: offline.Capture, out: Path) -> list[Path]:
    """Write every artifact of the plan under ``out``; return the files written."""
    if out.exists():
        shutil.rmtree(out)
    (out / "talos").mkdir(parents=True)
    graph_dot = out / "graph.dot"
    graph_dot.write_text(dot(capture))
    written = [graph_dot]
    # Graphviz lays the picture out on the other core while the rest is written.
    svg = out / "graph.svg"
    layout = subprocess.Popen(["dot", "-Tsvg", str(graph_dot), "-o", str(svg)]) if shutil.which("dot") else None
    files = {
        out / "graph.json": json.dumps(graph_json(capture), indent=2, sort_keys=False) + "\n",
        out / "graph.mmd": mermaid(capture),
    }
    for node, docs in node_patches(capture).items():
        files[out / "talos" / f"{node}.yaml"] = talos_patches.to_yaml_all(docs)
    for path, text in files.items():
        path.write_text(text)
    written.extend(files)
    if layout is not None:
        if layout.wait() != 0:
            raise subprocess.CalledProcessError(layout.returncode, layout.args)
        written.append(svg)
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stack", default="home", help="stack name: plans Pulumi.<stack>.yaml")
    which.add_argument("--file", type=Path, help="plan this stack file instead (stack name from Pulumi.<name>.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="artifact folder (default build/plan/<stack>)")
    args = parser.parse_args(argv)
    stack_file = args.file or offline.ROOT / f"Pulumi.{args.stack}.yaml"
    stack = offline.stack_name(stack_file)
    if not stack_file.is_file():
        print(f"no stack file {stack_file}", file=sys.stderr)
        return 2
    try:
        capture = offline.run_stack_file(stack_file)
    except ConfigError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return 2
    print("\n".join(tree_lines(capture)))
    out = args.out or offline.ROOT / "build" / "plan" / stack
    written = write(capture, out)
    print(f"wrote {len(written)} files to {out.relative_to(offline.ROOT) if out.is_relative_to(offline.ROOT) else out}")
    return max([0, *(check(capture, out) for check in CHECKS)])


if __name__ == "__main__":
    sys.exit(main())
