"""Offline plan diff: ``python -m plan.diff --base <git ref> [--stack home]`` (``make diff``).

Plans the stack at ``--base`` (checked out in a temporary ``git worktree``; the
working tree is never touched) and in the working tree, each with its own code in
its own process (:mod:`plan.snapshot`: children forked one after the other from
a server that loaded the SDKs once; ``--jobs 2`` runs them at once, faster on
idle cores for twice the memory), renders the Flux tree of both when
``kubernetes/`` differs (then, one tree after the other), and prints a Markdown report fit for a pull
request comment: a summary (counts, nodes that reboot, anything destructive or
protected), what each node goes through with its machine-config diff, the
Pulumi resources to create, delete, replace and update, and the Flux objects
added, removed and changed. The report is also written to
``build/diff/<stack>/diff.md`` and, as data, ``diff.json``.

``--base`` defaults to the merge base with ``origin/main`` when that exists, else
``HEAD``. Exit status: 0 with a report; 1 when the base cannot be planned or
the ref is unknown (one line); 2 when the working tree's config is invalid (one
line per problem, as ``make plan`` prints them).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plan import flux_diff, graph_diff, snapshot
from plan.flux_diff import FluxDiff

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(snapshot.__file__).resolve()
FLUX_PATH = "kubernetes"
COMMENT_MARKER = "<!-- homelab-plan-diff -->"
"""First line of the report: the comment workflow finds its own comment by it."""
DETAILS_OVER = 15
"""Lists and diffs longer than this many lines collapse in ``<details>``."""


class DiffError(Exception):
    """The diff cannot be made; the message is the one line to print."""

    def __init__(self, message: str, code: int = 1, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.lines = lines or [message]


def git(*args: str, cwd: Path = ROOT, check: bool = True) -> str:
    """Run git in ``cwd``; its stdout, stripped."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise DiffError(f"git {' '.join(args)}: {last}")
    return result.stdout.strip()


def resolve_base(ref: str | None, cwd: Path = ROOT) -> tuple[str, str]:
    """(label, commit) of the base: ``ref``, else the merge base with origin/main, else HEAD."""
    if ref is None:
        cmd = ["git", "rev-parse", "--verify", "--quiet", "origin/main^{commit}"]
        has_origin = subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
        if has_origin.returncode == 0:
            return "merge base with origin/main", git("merge-base", "HEAD", "origin/main", cwd=cwd)
        ref = "HEAD"
    commit = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=cwd, check=False)
    if not commit:
        raise DiffError(f"base {ref!r} is not a commit in this repository")
    return ref, commit


def flux_changed(commit: str, cwd: Path = ROOT) -> bool:
    """Whether ``kubernetes/`` differs between ``commit`` and the working tree (untracked files included)."""
    cmd = ["git", "diff", "--quiet", commit, "--", FLUX_PATH]
    same = subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
    untracked = git("ls-files", "--others", "--exclude-standard", "--", FLUX_PATH, cwd=cwd)
    return same.returncode != 0 or bool(untracked)


def start_snapshots(
    jobs: dict[str, Path], stack: str, work: Path, env: dict[str, str], parallel: int = 1
) -> subprocess.Popen[str]:
    """Plan each side's tree with its own code, in children forked from one server (this virtualenv's Python)."""
    serve = [f"{tree}:{stack}:{work / side}.json" for side, tree in jobs.items()]
    cmd = [sys.executable, "-P", str(SNAPSHOT), "--jobs", str(parallel), "--serve", *serve]
    # Its own session, so that stopping it early also stops the children it forked.
    return subprocess.Popen(
        cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def finish_snapshots(
    proc: subprocess.Popen[str], sides: list[str], work: Path, label: str
) -> dict[str, dict[str, Any]]:
    """Wait for the server; each side's snapshot, or a DiffError with that side's own message."""
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise DiffError(f"the plans could not be run: {last}")
    status: dict[str, int] = json.loads(stdout.strip().splitlines()[-1])
    out: dict[str, dict[str, Any]] = {}
    for side in sorted(sides, key=lambda s: s != "head"):  # the working tree's problems first
        path = work / f"{side}.json"
        code = status.get(str(path), snapshot.EXIT_UNPLANNABLE)
        err = Path(f"{path}.err")
        lines = [line for line in (err.read_text() if err.exists() else "").splitlines() if line.strip()]
        if code == 0:
            out[side] = json.loads(path.read_text())
            continue
        if side == "head" and code == snapshot.EXIT_CONFIG:
            raise DiffError("invalid stack config in the working tree", code=2, lines=lines)
        detail = lines[-1] if lines else f"exit status {code}"
        if code == snapshot.EXIT_CONFIG:
            detail = "invalid stack config: " + "; ".join(lines)
        where = f"base {label}" if side == "base" else "the working tree"
        raise DiffError(f"{where} cannot be planned: {detail}")
    return out


def empty_snapshot(stack: str) -> dict[str, Any]:
    """The snapshot of a stack that does not exist (yet)."""
    return {"stack": stack, "resources": [], "invokes": [], "outputs": {}, "outputSecrets": {}}


@dataclass
class Result:
    """Both sides compared."""

    stack: str
    base_label: str
    base_commit: str
    graph: graph_diff.GraphDiff
    flux: FluxDiff
    notes: list[str]
    seconds: float

    @property
    def unchanged(self) -> bool:
        """Nothing to do on either side."""
        return not (self.graph.resources or self.graph.nodes or self.graph.outputs or self.flux.objects)


def run_diff(stack: str, base_ref: str | None, cwd: Path = ROOT, parallel: int = 1) -> Result:
    """Plan base and head (``parallel`` at once), render the Flux trees when they differ, compare."""
    start = time.perf_counter()
    label, commit = resolve_base(base_ref, cwd)
    notes: list[str] = []
    env = {**os.environ, snapshot.KEY_ENV: secrets.token_hex(32)}
    with tempfile.TemporaryDirectory(prefix="plan-diff-") as tmp:
        work = Path(tmp)
        base_tree = work / "base"
        git("worktree", "add", "--detach", "--quiet", str(base_tree), commit, cwd=cwd)
        try:
            if not (cwd / f"Pulumi.{stack}.yaml").is_file():
                raise DiffError(f"no stack file Pulumi.{stack}.yaml in the working tree")
            jobs = {"head": cwd}
            if (base_tree / f"Pulumi.{stack}.yaml").is_file():
                jobs["base"] = base_tree
            else:
                notes.append(f"the base has no Pulumi.{stack}.yaml: every resource is new")
            proc = start_snapshots(jobs, stack, work, env, parallel)
            try:
                sides = finish_snapshots(proc, list(jobs), work, label)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            # After the plans, not beside them: each render runs kubectl kustomize on every core.
            flux = _flux(base_tree, cwd, commit, notes)
        finally:
            git("worktree", "remove", "--force", str(base_tree), cwd=cwd, check=False)
    graph = graph_diff.compare(sides.get("base") or empty_snapshot(stack), sides["head"])
    notes.extend(graph.notes)
    return Result(stack, label, commit, graph, flux, notes, time.perf_counter() - start)


def _flux(base: Path, head: Path, commit: str, notes: list[str]) -> FluxDiff:
    if not flux_changed(commit, head):
        notes.append(f"{FLUX_PATH}/ is the same in base and head: the Flux tree was not rendered")
        return FluxDiff([], 0, 0, [], rendered=False)
    kubectl = os.environ.get("KUBECTL", "kubectl")  # as tools.validate_kubernetes runs it
    if shutil.which(kubectl) is None:
        notes.append(f"{FLUX_PATH}/ changed but {kubectl} is not installed: the Flux tree was not rendered")
        return FluxDiff([], 0, 0, [], rendered=False)
    old, new = flux_diff.render_both(base, head)
    return flux_diff.compare(old, new)


# --- report ------------------------------------------------------------------------------------


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _details(summary: str, body: list[str], force: bool = False) -> list[str]:
    """``body`` under a collapsed ``<details>`` when long (or forced), else as is."""
    if not force and len(body) <= DETAILS_OVER:
        return body
    return ["<details>", f"<summary>{summary}</summary>", "", *body, "", "</details>"]


def _fence(lines: list[str], lang: str = "diff") -> list[str]:
    fence = "````" if any(line.startswith("```") for line in lines) else "```"
    return [fence + lang, *lines, fence]


def _kind(type_: str) -> str:
    return type_.rsplit(":", 1)[-1]


def summary_lines(result: Result) -> list[str]:
    """The counts, nodes that reboot and what is destructive, at the top of the report."""
    g, f = result.graph, result.flux
    lines = []
    counts = ", ".join(
        f"{len(g.of(action))} to {action}" for action in ("create", "update", "replace", "delete") if g.of(action)
    )
    lines.append(f"- **Pulumi**: {counts or 'no change'} ({g.base_count} → {g.head_count} resources)")
    if f.rendered:
        fcounts = ", ".join(f"{len(f.of(a))} {a}" for a in ("added", "changed", "removed") if f.of(a))
        lines.append(f"- **Flux**: {fcounts or 'no change'} ({f.base_count} → {f.head_count} objects)")
    else:
        lines.append(f"- **Flux**: no change ({FLUX_PATH}/ is the same)")
    for reboot, title in (
        (graph_diff.RESET, "Nodes reset"),
        (graph_diff.REBOOTS, "Nodes that reboot"),
        (graph_diff.MAY_REBOOT, "Nodes whose config is applied in place (Talos decides on a reboot)"),
    ):
        nodes = [n.node for n in g.nodes if n.reboot == reboot]
        if nodes:
            lines.append(f"- **{title}**: {', '.join(nodes)}")
    if g.cluster_steps:
        lines.append(f"- **Cluster**: {'; '.join(g.cluster_steps)}")
    charts = [o for o in f.objects if o.chart]
    if charts:
        lines.append("- **Charts**: " + ", ".join(f"{o.ref}: {o.chart}" for o in charts))
    return lines


def warnings(result: Result) -> list[str]:
    """Destructive or protected changes, one line each."""
    out = []
    for r in result.graph.resources:
        if r.action not in ("delete", "replace"):
            continue
        what = []
        if r.protect:
            what.append("**protected**: the engine refuses to delete it until it is unprotected")
        if r.destroys:
            what.append(f"destroys {r.destroys}")
        if what:
            out.append(f"- {r.action} {_kind(r.type)} {_code(r.name)}: {'; '.join(what)}")
    if result.graph.step_warnings:
        out.extend(f"- {w}" for w in result.graph.step_warnings)
        out.append(f"- why: {graph_diff.REPLACED_WHY}")
    for o in result.flux.objects:
        if o.destroys:
            out.append(f"- Flux removes {_code(o.ref)}: destroys {o.destroys}")
    for n in result.graph.nodes:
        out.extend(f"- node {_code(n.node)}: {s}" for s in n.steps if s == graph_diff.RESET)
    return out


def markdown(result: Result) -> str:
    """The whole report."""
    short = result.base_commit[:12]
    lines = [
        COMMENT_MARKER,
        f"## Plan diff of stack `{result.stack}`: base `{short}` ({result.base_label}) → working tree",
        "",
    ]
    if result.unchanged:
        lines.append(
            f"**No changes**: the Pulumi graph ({result.graph.head_count} resources) "
            + (
                f"and the Flux tree ({result.flux.head_count} objects) are"
                if result.flux.rendered
                else f"is the same, and {FLUX_PATH}/ is"
            )
            + " the same in base and head."
        )
        lines += ["", *_notes(result)]
        return "\n".join(lines).rstrip() + "\n"
    lines += summary_lines(result)
    warn = warnings(result)
    if warn:
        lines += ["", "> [!WARNING]", "> **Destructive, protected or not doing what it seems**", ">"]
        lines += [f"> {w}" for w in warn]
    lines += ["", *_node_section(result), *_pulumi_section(result), *_flux_section(result), *_notes(result)]
    return "\n".join(lines).rstrip() + "\n"


def _notes(result: Result) -> list[str]:
    notes = [*result.notes, *(f"render problem: {p}" for p in result.flux.problems)]
    return ["### Notes", "", *(f"- {n}" for n in notes), ""] if notes else []


def _node_section(result: Result) -> list[str]:
    g = result.graph
    if not g.nodes and not g.cluster_steps:
        return []
    lines = ["### Nodes", "", "| node | what it goes through |", "| --- | --- |"]
    lines += [f"| {n.node} | {'; '.join(n.steps) or 'machine config changes'} |" for n in g.nodes]
    lines += [f"| (cluster) | {s} |" for s in g.cluster_steps]
    lines.append("")
    if any(n.reboot == graph_diff.MAY_REBOOT for n in g.nodes):
        lines += [f"_{graph_diff.APPLY_MODE_NOTE}._", ""]
    for n in g.nodes:
        if n.config_diff:
            changed = sum(1 for line in n.config_diff[2:] if line[:1] in "+-")
            lines += _details(f"{n.node}: machine config ({changed} lines)", _fence(n.config_diff), force=True)
            lines.append("")
    return lines


def _pulumi_section(result: Result) -> list[str]:
    g = result.graph
    if not g.resources and not g.outputs:
        return []
    lines = ["### Pulumi resources", ""]
    for action, title in (("create", "Create"), ("delete", "Delete"), ("replace", "Replace"), ("update", "Update")):
        items = g.of(action)
        if not items:
            continue
        body: list[str] = []
        for r in items:
            flag = " 🔒 protected" if r.protect else ""
            body.append(f"- {_kind(r.type)} {_code(r.name)}{flag}")
            body += [f"  - replaces: {reason}" for reason in r.replace_reasons]
            body += [f"  - {r.note}"] if r.note else []
            body += [f"  - {_code(c.text())}" for c in r.changes]
        lines += [f"#### {title} ({len(items)})", "", *_details(f"{len(items)} to {action}", body), ""]
    if g.outputs:
        lines += ["#### Stack outputs", "", *(f"- {_code(c.text())}" for c in g.outputs), ""]
    return lines


def _flux_section(result: Result) -> list[str]:
    f = result.flux
    if not f.objects:
        return []
    lines = ["### Flux objects", ""]
    for action in ("added", "removed", "changed"):
        items = f.of(action)
        if not items:
            continue
        lines += [f"#### {action.capitalize()} ({len(items)})", ""]
        for o in items:
            head = f"- {_code(o.ref)} ({o.file})"
            if o.chart:
                head += f": chart {o.chart}"
            if o.hidden:
                head += ": [secret changed]" if action == "changed" else ": [secret]"
            lines.append(head)
            if o.diff and action == "changed":
                lines += ["", *_details(f"{o.ref}: {len(o.diff)} diff lines", _fence(o.diff), force=True), ""]
        lines.append("")
    return lines


def as_json(result: Result) -> dict[str, Any]:
    """The report as data (``diff.json``)."""
    g, f = result.graph, result.flux
    return {
        "stack": result.stack,
        "base": {"ref": result.base_label, "commit": result.base_commit},
        "unchanged": result.unchanged,
        "pulumi": {
            "counts": {a: len(g.of(a)) for a in ("create", "update", "replace", "delete")},
            "resources": [r.as_json() for r in g.resources],
            "outputs": [c.as_json() for c in g.outputs],
        },
        "nodes": {n.node: {"steps": n.steps, "configDiff": "\n".join(n.config_diff)} for n in g.nodes},
        "cluster": g.cluster_steps,
        "flux": {
            "rendered": f.rendered,
            "counts": {a: len(f.of(a)) for a in ("added", "changed", "removed")},
            "objects": [o.as_json() for o in f.objects],
            "problems": f.problems,
        },
        "warnings": warnings(result),
        "notes": result.notes,
    }


def write(result: Result, out: Path) -> str:
    """Write ``diff.md`` and ``diff.json`` under ``out``; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    (out / "diff.md").write_text(text)
    (out / "diff.json").write_text(json.dumps(as_json(result), indent=2, ensure_ascii=False) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m plan.diff", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="git ref to compare with (default: merge base with origin/main)")
    parser.add_argument("--stack", default="home", help="stack name: Pulumi.<stack>.yaml")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default build/diff/<stack>)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="plans at once (1: half the memory at a time; 2: faster on idle cores)"
    )
    args = parser.parse_args(argv)
    try:
        result = run_diff(args.stack, args.base or None, parallel=args.jobs)
    except DiffError as err:
        for line in err.lines:
            print(line, file=sys.stderr)
        return err.code
    out = args.out or ROOT / "build" / "diff" / args.stack
    print(write(result, out), end="")
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"wrote {shown}/diff.md and diff.json in {result.seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
