"""Compare two plan snapshots (:mod:`plan.snapshot`): what ``pulumi up`` would do, and to each node.

Resources are matched by URN. A resource only in the head is created, only in
the base deleted; one in both is updated when an input changed (each change by
its path) and replaced when a changed input is one the provider cannot update
in place (:data:`REPLACE_RULES`, each with its upstream source). Secrets are
compared by fingerprint only and shown as ``[secret changed]``.

Per node, the Talos machine config is the one the snapshot rebuilt from what
the program sent ``talos.machine.get_configuration`` (the generation inputs and
the merged patches), and the day-2 resources named after the node say what it goes
through (:data:`NODE_STEPS`).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plan.snapshot import REDACTED, path_join

SECRET_CHANGED = "[secret changed]"
MISSING: Any = object()
"""Marks a path present on one side only."""

APPLY = "talos:machine/configurationApply:ConfigurationApply"
COMMAND = "command:local:Command"


def _semver(version: Any) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", str(version).split("-", 1)[0])
    return tuple(int(n) for n in numbers[:3])


def _changed_value(old: Any, new: Any) -> bool:
    return old is not MISSING and new is not MISSING and old != new


def _downgrade(old: Any, new: Any) -> bool:
    return old is not MISSING and new is not MISSING and _semver(new) < _semver(old)


@dataclass(frozen=True)
class ReplaceRule:
    """Inputs whose change makes the provider replace the resource instead of updating it."""

    types: str
    """Type token, ``fnmatch`` pattern."""
    paths: tuple[str, ...]
    """Input paths (a change at or below one of them)."""
    why: str
    source: str
    when: Callable[[Any, Any], bool] | None = None
    """Only when this holds for (old, new) of the input."""


REPLACE_RULES: tuple[ReplaceRule, ...] = (
    ReplaceRule(
        "kubernetes:*",
        ("metadata.name", "metadata.namespace"),
        "a Kubernetes object's name and namespace are its identity",
        "pulumi-kubernetes provider/pkg/provider/provider.go (Diff: forceNewFields)",
    ),
    ReplaceRule(
        "kubernetes:core/v1:Secret",
        ("type", "data", "stringData"),
        "the provider replaces Secrets unless enableSecretMutable is set",
        "pulumi-kubernetes provider/pkg/provider/diff.go (forceNewProperties)",
    ),
    ReplaceRule(
        "kubernetes:core/v1:ConfigMap",
        ("data", "binaryData"),
        "the provider replaces ConfigMaps unless enableConfigMapMutable is set",
        "pulumi-kubernetes provider/pkg/provider/diff.go (forceNewProperties)",
    ),
    ReplaceRule(
        "kubernetes:storage.k8s.io/v1:StorageClass",
        ("parameters", "provisioner"),
        "a StorageClass's parameters and provisioner are immutable",
        "pulumi-kubernetes provider/pkg/provider/diff.go (forceNew: storage.k8s.io/v1 StorageClass)",
    ),
    ReplaceRule(
        "kubernetes:core/v1:PersistentVolumeClaim",
        ("spec.accessModes", "spec.selector", "spec.storageClassName", "spec.volumeName"),
        "a claim's access modes, selector, class and volume are immutable",
        "pulumi-kubernetes provider/pkg/provider/diff.go (forceNew: core/v1 PersistentVolumeClaim)",
    ),
    ReplaceRule(
        "pulumi:providers:kubernetes",
        ("clusterIdentifier",),
        "a changed clusterIdentifier replaces the provider (setting or removing it does not)",
        "pulumi-kubernetes provider/pkg/provider/provider.go (DiffConfig)",
        when=_changed_value,
    ),
    ReplaceRule(
        COMMAND,
        ("triggers",),
        "pulumi-command marks triggers replaceOnChanges, and a resource with an update method is replaced "
        "on such a change: the old Command's delete, then the new one's create run, not update",
        "pulumi-command v1.2.1 provider/pkg/provider/common/inputs.go (Triggers) and pulumi-go-provider v1.3.0 "
        "infer/resource.go (Diff: forceReplace from the schema's replaceOnChanges)",
    ),
    ReplaceRule(
        "talos:machine/secrets:Secrets",
        ("talosVersion",),
        "a lower talos_version regenerates the machine secrets (a new cluster PKI)",
        "terraform-provider-talos v0.11.0 pkg/talos/talos_machine_secrets_resource.go "
        "(talosMachineFeaturesVersionPlanModifier: RequiresReplace on a downgrade)",
        when=_downgrade,
    ),
)

# What deleting (or replacing) a resource of these types destroys.
DESTRUCTIVE: dict[str, str] = {
    APPLY: "node reset",
    "pulumi:providers:kubernetes": "every Kubernetes object it manages (replaced with it)",
    "talos:machine/secrets:Secrets": "new Talos machine secrets: every node config and client credential changes",
    "talos:machine/bootstrap:Bootstrap": "etcd bootstrap runs again",
    "kubernetes:ceph.rook.io/v1:CephCluster": "the Ceph cluster and the data on its OSDs",
    "kubernetes:ceph.rook.io/v1:CephBlockPool": "the pool and every volume in it",
    "kubernetes:core/v1:Namespace": "every object in the namespace",
    "kubernetes:core/v1:PersistentVolumeClaim": "the volume's data",
    "kubernetes:helm.sh/v4:Chart": "the chart's objects",
}


REBOOTS, MAY_REBOOT, NO_REBOOT = "reboots", "may reboot", "no reboot"


@dataclass(frozen=True)
class NodeStep:
    """What a day-2 resource of one node does to it, per action: (text, reboot)."""

    type: str
    name: str
    """Logical name with ``{cluster}`` and ``{node}`` (no ``{node}``: cluster-wide)."""
    actions: dict[str, tuple[str, str]]
    target: tuple[str, ...] = ()
    """Input paths whose change makes an update act (empty: any change does)."""


# The names the Talos layer gives its per-node resources (components/talos.py), in one table,
# in the order they act on a node.
# A day-2 step's `create` only records its target and touches no node; its `update` runs when
# any input changes and compares the target with the recorded one, touching no node when it is
# the same (components/talos_steps.py). The target is in the plain environment (the installer
# image, the config hash, the Kubernetes version; the credential comes on stdin). The steps set
# no `triggers`: a change of them replaces a Command, and the new one's `create` runs, not
# `update` (see REPLACE_RULES), so such a change upgrades nothing. A ConfigurationApply without
# on_destroy.reset leaves the machine as it is when deleted (terraform-provider-talos v0.11.0
# talos_machine_configuration_apply_resource.go, Delete).
REPLACED_STEP = "step replaced, so only its create runs"
REPLACED_WHY = (
    "a changed `triggers` replaces a pulumi-command Command, which then runs `create`, not `update`; "
    "the day-2 steps' create only records the target (components/talos_steps.py)"
)
NODE_STEPS: tuple[NodeStep, ...] = (
    NodeStep(
        COMMAND,
        "{cluster}-guard-{node}",
        {"delete": ("removal guard: refused when it would cost etcd quorum or Ceph data", NO_REBOOT)},
    ),
    NodeStep(
        COMMAND,
        "{cluster}-upgrade-{node}",
        {
            "update": ("Talos upgrade (talosctl upgrade: drains, reboots into the new image)", REBOOTS),
            "replace": (f"Talos upgrade {REPLACED_STEP}: not upgraded", NO_REBOOT),
        },
        target=("environment.TALOS_IMAGE",),
    ),
    NodeStep(
        APPLY,
        "{cluster}-apply-{node}",
        {
            "create": ("joins (config applied in maintenance mode: Talos installs and reboots)", REBOOTS),
            "update": ("config applied in place (apply mode {mode})", MAY_REBOOT),
            "delete": ("{reset}", NO_REBOOT),
            "replace": ("reset, then joins again", REBOOTS),
        },
    ),
    NodeStep(
        COMMAND,
        "{cluster}-settle-{node}",
        {
            "update": ("waits until it is back from the apply's reboot and the cluster is healthy", NO_REBOOT),
            "replace": (f"settle {REPLACED_STEP}: nothing waits for it", NO_REBOOT),
        },
        target=("environment.CONFIG_HASH",),
    ),
    NodeStep(
        COMMAND,
        "{cluster}-reboot-{node}",
        {
            "update": ("reboot if its apply was staged (talosctl reboot: the staged config takes effect)", MAY_REBOOT),
            "replace": (f"staged-reboot {REPLACED_STEP}: not rebooted", NO_REBOOT),
        },
        target=("environment.CONFIG_HASH",),
    ),
    NodeStep(
        COMMAND,
        "{cluster}-cleanup-{node}",
        {"delete": ("its Kubernetes Node is deleted after the reset", NO_REBOOT)},
    ),
    NodeStep(
        COMMAND,
        "{cluster}-kubernetes-upgrade",
        {
            "update": (
                "Kubernetes upgrade (talosctl upgrade-k8s: control planes one by one, then kubelets)",
                NO_REBOOT,
            ),
            "replace": (f"Kubernetes upgrade {REPLACED_STEP}: not upgraded", NO_REBOOT),
        },
        target=("environment.KUBERNETES_VERSION",),
    ),
)
SAME_TARGET = "no node touched: its script sees the target it already reached"
APPLY_MODE_NOTE = (
    "config applied in place: whether a change needs a reboot is decided by Talos on the node; "
    "with staged_if_needing_reboot such a change is staged and takes effect at the next reboot"
)
RESET = "reset (graceful: cordon, drain, leave etcd; STATE and EPHEMERAL wiped)"
UNMANAGED = "removed from the stack; the node keeps running (on_destroy without reset does nothing)"


@dataclass
class Change:
    """One changed input: its path, old and new (``MISSING`` on the side that lacks it)."""

    path: str
    old: Any
    new: Any
    secret: bool = False

    def text(self) -> str:
        """``path: old → new``, secrets as ``[secret changed]``."""
        if self.secret:
            return f"{self.path}: {SECRET_CHANGED}"
        if self.old is MISSING:
            return f"{self.path}: + {show(self.new)} (added)"
        if self.new is MISSING:
            return f"{self.path}: - {show(self.old)} (removed)"
        return f"{self.path}: {show(self.old)} → {show(self.new)}"

    def as_json(self) -> dict[str, Any]:
        """JSON form; a secret carries no value."""
        if self.secret:
            return {"path": self.path, "change": SECRET_CHANGED}
        out: dict[str, Any] = {"path": self.path}
        if self.old is not MISSING:
            out["old"] = self.old
        if self.new is not MISSING:
            out["new"] = self.new
        return out


@dataclass
class ResourceChange:
    """One resource that ``pulumi up`` would touch."""

    urn: str
    type: str
    name: str
    action: str
    """create, delete, update or replace."""
    protect: bool
    changes: list[Change] = field(default_factory=list)
    replace_reasons: list[str] = field(default_factory=list)
    destroys: str = ""
    """What a delete or replace destroys (empty: nothing irreversible known)."""
    note: str = ""
    """What the change does not do (a day-2 step whose target is unchanged)."""

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"urn": self.urn, "type": self.type, "name": self.name, "action": self.action}
        if self.note:
            out["note"] = self.note
        if self.protect:
            out["protect"] = True
        if self.changes:
            out["changes"] = [c.as_json() for c in self.changes]
        if self.replace_reasons:
            out["replaceReasons"] = self.replace_reasons
        if self.destroys:
            out["destroys"] = self.destroys
        return out


@dataclass
class NodeChange:
    """What one node goes through, and its machine config before and after."""

    node: str
    steps: list[str]
    config_diff: list[str]
    reboot: str = NO_REBOOT
    """REBOOTS, MAY_REBOOT or NO_REBOOT: the strongest of its steps."""
    """Unified diff lines of the node's machine config (empty: unchanged)."""


@dataclass
class GraphDiff:
    """The whole Pulumi side."""

    resources: list[ResourceChange]
    nodes: list[NodeChange]
    cluster_steps: list[str]
    outputs: list[Change]
    base_count: int
    head_count: int
    notes: list[str]
    step_warnings: list[str] = field(default_factory=list)
    """Day-2 steps that will not do what their change suggests (a replaced step does not run)."""

    def of(self, action: str) -> list[ResourceChange]:
        """Changes with this action."""
        return [r for r in self.resources if r.action == action]


def show(value: Any, limit: int = 120) -> str:
    """A value as compact JSON, cut at ``limit`` characters."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by path (empty containers are leaves)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, path_join(path, str(k))))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, path_join(path, i)))
        return out
    return {path: value}


def input_changes(old: dict[str, Any], new: dict[str, Any], fingerprinted: bool) -> list[Change]:
    """Changed inputs of one resource by path; secrets by fingerprint only."""
    before, after = flatten(old.get("inputs") or {}), flatten(new.get("inputs") or {})
    old_secrets, new_secrets = old.get("secrets") or {}, new.get("secrets") or {}
    changes = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path, MISSING), after.get(path, MISSING)
        if path in old_secrets or path in new_secrets or REDACTED in (a, b):
            if a is MISSING or b is MISSING:
                changes.append(Change(path, a, b, secret=REDACTED in (a, b)))
            elif a != REDACTED or b != REDACTED:
                changes.append(Change(path, a, b, secret=True))  # became or stopped being secret
            elif fingerprinted and old_secrets.get(path) != new_secrets.get(path):
                changes.append(Change(path, a, b, secret=True))
            continue
        if a != b:
            changes.append(Change(path, a, b))
    return changes


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def replace_reasons(type_: str, changes: list[Change], old_inputs: dict[str, Any]) -> list[str]:
    """Why these changes replace the resource (empty: an update in place)."""
    reasons = []
    flat_old = flatten(old_inputs)
    for rule in REPLACE_RULES:
        if not fnmatch.fnmatchcase(type_, rule.types) or type_.startswith("kubernetes:helm.sh/"):
            continue
        for prefix in rule.paths:
            hit = [c for c in changes if _under(c.path, prefix)]
            if not hit:
                continue
            if rule.when is not None and not any(rule.when(flat_old.get(c.path, MISSING), c.new) for c in hit):
                continue
            reasons.append(f"{prefix}: {rule.why} ({rule.source})")
    return reasons


def _destroys(r: dict[str, Any]) -> str:
    what = DESTRUCTIVE.get(r["type"], "")
    if r["type"] == APPLY:
        reset = ((r.get("inputs") or {}).get("onDestroy") or {}).get("reset")
        return what if reset else ""
    return what


def _is_fingerprinted(snapshot: dict[str, Any]) -> bool:
    return any(r.get("secrets") for r in snapshot["resources"]) or bool(snapshot.get("outputSecrets"))


def _match_step(name: str, type_: str, clusters: set[str], nodes: set[str]) -> tuple[NodeStep, str | None] | None:
    for step in NODE_STEPS:
        if step.type != type_:
            continue
        for cluster in clusters:
            if "{node}" not in step.name:
                if name == step.name.format(cluster=cluster):
                    return step, None
                continue
            for node in nodes:
                if name == step.name.format(cluster=cluster, node=node):
                    return step, node
    return None


def compare(base: dict[str, Any], head: dict[str, Any]) -> GraphDiff:
    """Everything ``pulumi up`` would do going from ``base`` to ``head``."""
    old = {r["urn"]: r for r in base["resources"]}
    new = {r["urn"]: r for r in head["resources"]}
    fingerprinted = _is_fingerprinted(base) and _is_fingerprinted(head)
    notes = []
    if not fingerprinted and (base["resources"] and head["resources"]):
        notes.append("secrets were not fingerprinted on both sides: changed secret values cannot be seen")
    changes: list[ResourceChange] = []
    for urn in sorted(set(old) | set(new)):
        a, b = old.get(urn), new.get(urn)
        if a is None and b is not None:
            changes.append(ResourceChange(urn, b["type"], b["name"], "create", b["protect"]))
        elif b is None and a is not None:
            changes.append(ResourceChange(urn, a["type"], a["name"], "delete", a["protect"], destroys=_destroys(a)))
        elif a is not None and b is not None:
            diff = input_changes(a, b, fingerprinted)
            if a["protect"] != b["protect"]:
                diff.append(Change("(protect)", a["protect"], b["protect"]))
            if not diff:
                continue
            reasons = replace_reasons(b["type"], diff, a.get("inputs") or {})
            action = "replace" if reasons else "update"
            changes.append(
                ResourceChange(
                    urn,
                    b["type"],
                    b["name"],
                    action,
                    a["protect"],
                    diff,
                    reasons,
                    _destroys(a) if reasons else "",
                )
            )
    nodes, cluster_steps, step_warnings = _nodes(base, head, changes)
    outputs = input_changes(
        {"inputs": base.get("outputs") or {}, "secrets": base.get("outputSecrets") or {}},
        {"inputs": head.get("outputs") or {}, "secrets": head.get("outputSecrets") or {}},
        fingerprinted,
    )
    return GraphDiff(changes, nodes, cluster_steps, outputs, len(old), len(new), notes, step_warnings)


def _nodes(
    base: dict[str, Any], head: dict[str, Any], changes: list[ResourceChange]
) -> tuple[list[NodeChange], list[str], list[str]]:
    every = base["resources"] + head["resources"]
    applies = [r for r in every if r["type"] == APPLY and "-apply-" in r["name"]]
    clusters = {r["name"].rsplit("-apply-", 1)[0] for r in applies}
    names = {r["name"].rsplit("-apply-", 1)[1] for r in applies}
    old_cfg, new_cfg = base.get("nodes") or {}, head.get("nodes") or {}
    names |= set(old_cfg) | set(new_cfg)
    by_urn = {r["urn"]: r for r in every}
    ordered: dict[str, list[tuple[int, str]]] = {n: [] for n in names}
    reboots: dict[str, set[str]] = {n: set() for n in names}
    cluster_steps: list[str] = []
    warnings: list[str] = []
    for change in changes:
        found = _match_step(change.name, change.type, clusters, names)
        if found is None:
            continue
        step, node = found
        if change.action not in step.actions:
            continue  # a step's create only records its target; a step's delete touches no node
        acts = any(_under(c.path, t) for c in change.changes for t in step.target)
        if change.action == "update" and step.target and not acts:
            change.note = SAME_TARGET
            continue
        text, reboot = step.actions[change.action]
        if REPLACED_STEP in text:
            warnings.append(f"{change.name}: {text}")
        inputs = by_urn[change.urn].get("inputs") or {}
        text = text.format(
            mode=inputs.get("applyMode") or "auto",
            reset=RESET if (inputs.get("onDestroy") or {}).get("reset") else UNMANAGED,
        )
        if node is None:
            cluster_steps.append(text)
        else:
            ordered[node].append((NODE_STEPS.index(step), text))
            reboots[node].add(RESET if text == RESET else reboot)
    steps = {n: [text for _, text in sorted(ordered[n], key=lambda pair: pair[0])] for n in names}
    out = []
    for node in sorted(names):
        a, b = old_cfg.get(node, ""), new_cfg.get(node, "")
        diff = list(
            difflib.unified_diff(
                a.splitlines(), b.splitlines(), f"base/{node}.yaml", f"head/{node}.yaml", lineterm="", n=3
            )
        )
        node_steps = steps[node]
        if diff and not node_steps and a and b:
            # The apply's own input is the generated config; under mocks it carries the
            # patches only, so a change of the generation inputs alone shows here.
            node_steps.append("machine config changes (applied in place by its ConfigurationApply)")
            reboots[node].add(MAY_REBOOT)
        if node_steps or diff:
            strongest = next((r for r in (RESET, REBOOTS, MAY_REBOOT) if r in reboots[node]), NO_REBOOT)
            out.append(NodeChange(node, node_steps, diff, strongest))
    return out, cluster_steps, warnings
