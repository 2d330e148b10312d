"""One side of a plan diff: plan a source tree with that tree's own code, write a JSON snapshot.

``python -P plan/snapshot.py --tree <dir> --stack <name> --out <file>`` runs in a
fresh interpreter (the project's virtualenv) with ``<dir>`` first on ``sys.path``,
so the program, its mocks and its ``plain()`` are the tree's own: an older commit
is planned as it was written. Only the capture's long-standing fields are read
(``urn``, ``type``, ``name``, ``parent``, ``protect``, ``inputs``; invokes'
``token`` and ``args``; the outputs), from ``plan.offline`` or, before the
offline tooling moved to ``plan/``, ``stacks.offline``.

Secret values never leave the process: each one is replaced by ``[secret]`` as
the plan does, and recorded as an HMAC-SHA256 fingerprint keyed with the hex key
in the environment variable :data:`KEY_ENV`. ``make diff`` draws that key at
random for each run and gives it to both sides, so "changed or not" compares
within one diff and means nothing outside it; without the key no fingerprint is
written.

Both sides run from one server process (``--serve``): it imports the SDKs the
program uses (:data:`PRELOAD`, all from the same virtualenv) once and forks a
child per side (one after the other unless ``--jobs 2``), so the two plans share
that start-up time and, copy-on-write, its memory; the tree's own modules are
imported in each child only.

This file imports nothing from the project at module level: it is run by path
inside other trees, and imported by :mod:`plan.diff` for its helpers.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

KEY_ENV = "HOMELAB_DIFF_KEY"
"""Hex key of the secret fingerprints (set by ``make diff`` for both sides of one run)."""
REDACTED = "[secret]"
# Invoke arguments that carry credentials although the SDK sends them unwrapped
# (mirrors plan.report.SECRET_INVOKE_ARGS; an older tree may not have that constant).
SECRET_INVOKE_ARGS = frozenset({"machineSecrets", "clientConfiguration"})
# Where the capture lives, newest layout first: (offline module, module holding the ConfigError).
LAYOUTS = (("plan.offline", "stacks.loader"), ("stacks.offline", "stacks.loader"))
EXIT_CONFIG = 2
"""Exit status when the tree's stack config is invalid (its lines on stderr)."""
EXIT_UNPLANNABLE = 3
"""Exit status when the tree cannot be planned at all (one line on stderr)."""
GET_CONFIGURATION = "talos:machine/getConfiguration:getConfiguration"
# Generation inputs of a node's machine config besides the patches (talosctl gen config's own).
GENERATION_ARGS = ("clusterName", "machineType", "clusterEndpoint", "talosVersion", "kubernetesVersion")
# Third-party modules the program imports, loaded once by the server before it forks (the SDKs
# take most of a plan's start-up): ``module`` or ``module:attribute`` (reached as the program
# reaches it, so lazily loaded parts load too). Only packages, never one of their submodules
# first: the generated SDKs import their submodules in their own order. A name that is not
# installed is skipped.
PRELOAD = (
    "runpy",
    "zoneinfo",
    "yaml",
    "semver",
    "pydantic:BaseModel",
    "pydantic:Field",
    "pydantic:model_validator",
    "pulumi",
    "pulumi.runtime.mocks",
    "pulumi.runtime.stack",
    "pulumi_kubernetes.core.v1",
    "pulumi_kubernetes.meta.v1",
    "pulumi_kubernetes.helm.v4",
    "pulumi_kubernetes.apiextensions.v1",
    "pulumi_kubernetes.apiextensions:CustomResource",
    "pulumi_kubernetes.storage.v1",
    "pulumi_onepassword",
    "pulumiverse_talos.client",
    "pulumiverse_talos.cluster",
    "pulumiverse_talos.imagefactory",
    "pulumiverse_talos.machine",
)


def fingerprint(value: Any, key: bytes) -> str:
    """HMAC-SHA256 (hex, 32 characters) of a JSON-ready value, canonical key order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def path_join(base: str, key: str | int) -> str:
    """Input paths as the report shows them: ``spec.values.a[0].b``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else str(key)


def secret_fingerprints(
    value: Any, key: bytes, is_secret: Callable[[Any], bool], plain: Callable[[Any], Any], path: str = ""
) -> dict[str, str]:
    """Fingerprint of every secret in a wire value, by its path (``plain`` shows it as ``[secret]`` there)."""
    found: dict[str, str] = {}
    if isinstance(value, Mapping):
        if is_secret(value):
            found[path] = fingerprint(plain(value.get("value")), key)
            return found
        for k, v in value.items():
            found.update(secret_fingerprints(v, key, is_secret, plain, path_join(path, str(k))))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found.update(secret_fingerprints(v, key, is_secret, plain, path_join(path, i)))
    return found


def _layout() -> tuple[Any, type[Exception]]:
    """The tree's offline module and its config error class."""
    problems = []
    for offline_name, loader_name in LAYOUTS:
        try:
            offline = importlib.import_module(offline_name)
            loader = importlib.import_module(loader_name)
        except ImportError as exc:
            problems.append(f"{offline_name}: {exc}")
            continue
        return offline, loader.ConfigError
    raise LookupError("no offline plan module (" + "; ".join(problems) + ")")


def snapshot(tree: Path, stack: str, key: bytes | None) -> dict[str, Any]:
    """Plan ``Pulumi.<stack>.yaml`` of ``tree`` with the tree's own code; the JSON-ready snapshot."""
    offline, _ = _layout()
    from pulumi.runtime import rpc  # noqa: PLC0415 - after the tree is on sys.path

    capture = offline.run_stack_file(tree / f"Pulumi.{stack}.yaml")
    plain = offline.plain
    known = {r.urn for r in capture.resources}
    resources = []
    for r in sorted(capture.resources, key=lambda r: r.urn):
        resources.append(
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent if r.parent in known else None,
                "protect": bool(r.protect),
                "inputs": plain(r.inputs),
                "secrets": secret_fingerprints(r.inputs, key, rpc.is_rpc_secret, plain) if key else {},
            }
        )
    invokes = []
    for inv in capture.invokes:
        args = {k: REDACTED if k in SECRET_INVOKE_ARGS else plain(v) for k, v in inv.args.items()}
        invokes.append({"token": inv.token, "args": args})
    invokes.sort(key=lambda i: json.dumps(i, sort_keys=True))
    outputs = {k: REDACTED if k in capture.secret_outputs else plain(v) for k, v in capture.outputs.items()}
    output_secrets = (
        {k: fingerprint(plain(capture.outputs[k]), key) for k in capture.secret_outputs if k in capture.outputs}
        if key
        else {}
    )
    return {
        "stack": stack,
        "resources": resources,
        "invokes": invokes,
        "outputs": outputs,
        "outputSecrets": output_secrets,
        "nodes": node_configs(invokes),
    }


def node_configs(invokes: list[dict[str, Any]]) -> dict[str, str]:
    """Each node's machine config as YAML: the generation inputs, then the patches it was sent, merged.

    Read back from the ``get_configuration`` invokes with the tree's own patch
    reader and merge (``components.talos_patches``); a tree without them gets the
    patch documents one after another.
    """
    try:
        patches: Any = importlib.import_module("components.talos_patches")
        read, merged, dump = patches.read_patch, patches.merged, patches.to_yaml_all
    except (ImportError, AttributeError):
        import yaml  # noqa: PLC0415 - fallback for old trees

        read = yaml.safe_load
        merged = list
        dump = lambda docs: yaml.safe_dump_all(docs, sort_keys=False)  # noqa: E731
    out: dict[str, str] = {}
    for inv in invokes:
        if inv["token"] != GET_CONFIGURATION:
            continue
        args = inv["args"]
        docs = [read(p) for p in args.get("configPatches") or [] if isinstance(p, str)]
        docs = [d for d in docs if isinstance(d, dict)]
        host = next((d.get("hostname") for d in docs if d.get("kind") == "HostnameConfig"), None)
        for d in docs:
            host = host or ((d.get("machine") or {}).get("network") or {}).get("hostname")
        if host:
            generated = {"generated": {k: args[k] for k in GENERATION_ARGS if k in args}}
            out[str(host)] = dump([generated, *merged(docs)])
    return out


def serve(jobs: list[tuple[Path, str, Path]], parallel: int = 1) -> dict[str, int]:
    """Preload the SDKs, fork one child per (tree, stack, out) job; each child's exit status by ``out``.

    At most ``parallel`` children run at once. A child's stderr goes to ``<out>.err``.
    """
    for entry in PRELOAD:
        name, _, attribute = entry.partition(":")
        try:
            module = importlib.import_module(name)
            if attribute:
                getattr(module, attribute)
        except (ImportError, AttributeError):
            continue
    # Objects that exist now are never collected in the children: the collector then does not
    # write to their pages, which stay shared (Python's gc.freeze documentation, "before fork").
    gc.freeze()
    pids: dict[int, Path] = {}
    status: dict[str, int] = {}

    def reap() -> None:
        pid, code = os.wait()
        status[str(pids.pop(pid))] = os.waitstatus_to_exitcode(code)

    for tree, stack, out in jobs:
        while len(pids) >= max(1, parallel):
            reap()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its files and exit status
            code = EXIT_UNPLANNABLE
            try:
                err = os.open(f"{out}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(err, 2)
                code = plan_tree(tree, stack, out)
            except BaseException as exc:
                print(f"cannot plan {tree.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                sys.stderr.flush()
                os._exit(code)
        pids[pid] = out
    while pids:
        reap()
    return status


def main(argv: list[str] | None = None) -> int:
    """CLI: plan one tree (``--tree``), or serve several jobs (``--serve tree:stack:out …``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tree", type=Path, help="source tree to plan with its own code")
    parser.add_argument("--stack", default="home")
    parser.add_argument("--out", type=Path, help="snapshot file to write")
    parser.add_argument("--serve", nargs="+", metavar="TREE:STACK:OUT", help="plan each job in a forked child")
    parser.add_argument("--jobs", type=int, default=1, help="with --serve: children at once")
    args = parser.parse_args(argv)
    if args.serve:
        jobs = []
        for job in args.serve:
            tree, stack, out = job.rsplit(":", 2)
            jobs.append((Path(tree), stack, Path(out)))
        print(json.dumps(serve(jobs, args.jobs)))
        return 0
    if args.tree is None or args.out is None:
        parser.error("--tree and --out are required without --serve")
    return plan_tree(args.tree, args.stack, args.out)


def plan_tree(tree: Path, stack: str, out: Path) -> int:
    """Write the snapshot of one tree; 0, or 2 on invalid config, 3 when it cannot be planned."""
    tree = tree.resolve()
    # The tree's packages first; never this file's folder (it would shadow the tree's `policy`).
    sys.path[:] = [str(tree), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]
    os.chdir(tree)
    raw_key = os.environ.get(KEY_ENV)
    key = bytes.fromhex(raw_key) if raw_key else None
    try:
        _, config_error = _layout()
    except LookupError as exc:
        print(f"cannot plan {tree.name}: {exc}", file=sys.stderr)
        return EXIT_UNPLANNABLE
    try:
        data = snapshot(tree, stack, key)
    except config_error as exc:
        for line in getattr(exc, "lines", [str(exc)]):
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        print(f"cannot plan {tree.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNPLANNABLE
    out.write_text(json.dumps(data, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
