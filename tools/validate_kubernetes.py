"""Validate the Flux GitOps tree under ``kubernetes/`` offline.

The tree is rendered the way Flux would: starting from the path the FluxInstance
syncs (``kubernetes/flux/cluster``), every Flux ``Kustomization`` found in a build
is built in turn with ``kubectl kustomize`` (its ``spec.components`` and
``spec.patches`` applied), then ``postBuild`` substitution is applied with the
Kustomization's ``substitute`` values and the ConfigMaps named in
``substituteFrom``. The rendered objects are checked against the Kubernetes
schemas shipped with ``kubernetes-validate`` and the CRD JSON schemas in
``../shared/schemas/crds`` (then the project's own ``tools/schemas/crds`` for what
the shared folder lacks), and against the tree's conventions (see
docs/gitops.md). Every problem is one line: ``<file>: <field>: <message>``.

Usage: ``python -m tools.validate_kubernetes [--root .] [--schemas ../shared/schemas]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

#: The path the FluxInstance (created by Pulumi) syncs from the flux-system GitRepository.
ROOT_PATH = "kubernetes/flux/cluster"
#: The GitRepository the FluxInstance creates; it is not in the tree.
FLUX_SOURCE = ("GitRepository", "flux-system", "flux-system")


def _stack_kubernetes_minor() -> str:
    """The Kubernetes minor the home stack runs (``homelab:cluster.kubernetesVersion``), e.g. ``1.36``."""
    stack = yaml.safe_load((Path(__file__).resolve().parent.parent / "Pulumi.home.yaml").read_text())
    version = str(stack["config"]["homelab:cluster"]["kubernetesVersion"]).removeprefix("v")
    return ".".join(version.split(".")[:2])


#: Kubernetes minor version the built-in kinds are validated against: the home stack's.
KUBERNETES_VERSION = _stack_kubernetes_minor()
#: The project's own CRD schemas (``crds/<group>/<kind>_<version>.json``), for kinds the shared
#: schema folder has no schema for; the shared folder is consulted first.
LOCAL_SCHEMAS = Path(__file__).resolve().parent / "schemas"
#: Charts (by chart or release name) that Pulumi deploys; Flux must not manage them too.
PULUMI_CHARTS = {
    "cilium": "Cilium",
    "coredns": "CoreDNS",
    "spegel": "Spegel",
    "cert-manager": "cert-manager",
    "rook-ceph": "Rook-Ceph",
    "rook-ceph-cluster": "Rook-Ceph",
    "flux": "Flux",
    "flux2": "Flux",
    "flux-operator": "Flux",
    "flux-instance": "Flux",
}
#: Kinds only Pulumi creates.
PULUMI_KINDS = {"FluxInstance": "Flux", "CephCluster": "Rook-Ceph", "ClusterIssuer": "cert-manager"}
#: Namespaces Pulumi creates (with their pod-security labels) before Flux runs.
PULUMI_NAMESPACES = {"flux-system", "external-secrets", "kube-system", "rook-ceph", "cert-manager"}
#: Marker in app/kustomization.yaml explaining why an app has no HelmRelease.
NO_HELMRELEASE_MARKER = "# no-helmrelease:"
#: Cluster-scoped kinds used in the tree: targetNamespace does not apply to them.
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterSecretStore",
    "ClusterExternalSecret",
    "GatewayClass",
    "ClusterIssuer",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PersistentVolume",
    "PriorityClass",
    "VolumeSnapshotClass",
    "IngressClass",
}
#: API groups whose CRDs a chart in the tree installs, by chart name. A Kustomization applying objects of such a
#: group (or a HelmRelease whose values make its chart render them) must depend, directly or through others, on the
#: Kustomization of that chart's HelmRelease: otherwise its first apply fails on a missing kind, or it waits on a
#: release it does not need.
CRD_CHARTS: dict[str, frozenset[str]] = {
    "prometheus-operator-crds": frozenset({"monitoring.coreos.com"}),
    "gateway-helm": frozenset({"gateway.networking.k8s.io", "gateway.envoyproxy.io"}),
    "external-secrets": frozenset({"external-secrets.io"}),
    "volsync": frozenset({"volsync.backube"}),
    "volsync-perfectra1n": frozenset({"volsync.backube"}),
    "cloudnative-pg": frozenset({"postgresql.cnpg.io"}),
    "plugin-barman-cloud": frozenset({"barmancloud.cnpg.io"}),
    "snapshot-controller": frozenset({"snapshot.storage.k8s.io"}),
    "gha-runner-scale-set-controller": frozenset({"actions.github.com"}),
}
#: Custom resources a chart always renders (of groups whose CRDs it does not install).
CHART_RENDERS: dict[str, frozenset[str]] = {
    "kube-prometheus-stack": frozenset({"monitoring.coreos.com"}),
    "gha-runner-scale-set": frozenset({"actions.github.com"}),
}
#: API groups whose CRDs exist before Flux applies anything: Pulumi's layers (Flux, cert-manager, Cilium,
#: Rook-Ceph) and Talos (talos.dev, with machine.features.kubernetesTalosAPIAccess).
BASE_GROUPS = frozenset(
    {
        "source.toolkit.fluxcd.io",
        "kustomize.toolkit.fluxcd.io",
        "helm.toolkit.fluxcd.io",
        "notification.toolkit.fluxcd.io",
        "fluxcd.controlplane.io",
        "cert-manager.io",
        "cilium.io",
        "ceph.rook.io",
        "talos.dev",
    }
)
POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
POD_SECURITY_LEVELS = {"privileged", "baseline", "restricted"}

_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_SCHEMA_COMMENT = re.compile(r"^# yaml-language-server: \$schema=\S+$")
_VARIABLE = re.compile(r"(\$?)\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(.*)$", re.DOTALL)
_ORIGIN = "config.kubernetes.io/origin"
_SUBSTITUTE_ANNOTATION = "kustomize.toolkit.fluxcd.io/substitute"
# libyaml's parser and emitter where PyYAML was built with it (the same safe rules, several times
# faster: every rendered object is parsed, dumped for substitution and parsed again).
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class KubeLoader(_SAFE_LOADER):  # type: ignore[misc]
    """PyYAML's safe loader without YAML 1.1's ``=`` "value" tag, which Go's YAML (kustomize) does not have.

    kustomize prints ``matchType: =`` (an AlertmanagerConfig matcher) unquoted; the safe loader reads a
    lone ``=`` as ``tag:yaml.org,2002:value`` and cannot construct it.
    """


KubeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """One YAML document as kustomize and Flux read it."""
    return yaml.load(text, Loader=KubeLoader)


@dataclass
class FluxKustomization:
    """A Flux Kustomization found in the tree (or the FluxInstance's root sync)."""

    name: str
    namespace: str
    file: str
    spec: dict[str, Any]


@dataclass
class BuiltObject:
    """One rendered object, the repo-relative file it comes from, and its Kustomization."""

    obj: dict[str, Any]
    file: str
    kustomization: FluxKustomization

    @property
    def kind(self) -> str:
        """The object's kind."""
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        """The object's metadata.name."""
        return str((self.obj.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str:
        """The namespace Flux applies the object to (targetNamespace wins); empty if cluster-scoped."""
        if self.kind in CLUSTER_SCOPED:
            return ""
        target = self.kustomization.spec.get("targetNamespace")
        if target:
            return str(target)
        return str((self.obj.get("metadata") or {}).get("namespace", ""))

    def ref(self) -> str:
        """``Kind namespace/name`` for messages."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass
class Render:
    """The whole tree rendered: Kustomizations, objects, and problems found while rendering."""

    root: Path
    kustomizations: list[FluxKustomization] = field(default_factory=list)
    objects: list[BuiltObject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def find(self, kind: str, namespace: str, name: str) -> BuiltObject | None:
        """The built object of that kind, namespace and name, if any."""
        for built in self.objects:
            if built.kind == kind and built.name == name and built.namespace == namespace:
                return built
        return None


def _rel(root: Path, path: Path) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def _kubectl() -> str:
    return os.environ.get("KUBECTL", "kubectl")


def _kustomize_error(stderr: str, prefix: str) -> str:
    """The one useful line of a kustomize failure, with overlay-relative paths made repo-relative."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    message = lines[-1] if lines else "kubectl kustomize failed"
    match = re.search(r'err="(.*)"\s*$', message)
    if match:
        message = match.group(1).replace('\\"', '"')
    return message.replace(prefix, "")


def build(
    root: Path, path: str, components: list[str] | None = None, patches: list[dict[str, Any]] | None = None
) -> tuple[str, str | None]:
    """Build ``path`` (repo-relative) like Flux does; return (YAML stream, error or None).

    A throw-away overlay adds the Kustomization's components and patches and asks
    kustomize for origin annotations, so each object can be traced to its file.
    """
    with tempfile.TemporaryDirectory(prefix="ks-") as overlay:
        to_root = os.path.relpath(root, overlay).replace(os.sep, "/")
        target = f"{to_root}/{path}".rstrip("/")
        kustomization: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [target],
            "buildMetadata": ["originAnnotations"],
        }
        if components:
            kustomization["components"] = [f"{target}/{component}" for component in components]
        if patches:
            kustomization["patches"] = patches
        Path(overlay, "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        result = subprocess.run([_kubectl(), "kustomize", overlay], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            return "", _kustomize_error(result.stderr, f"{to_root}/")
        return result.stdout, None


def _origin_file(root: Path, obj: dict[str, Any], fallback: str) -> str:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    origin = annotations.pop(_ORIGIN, None)
    if not annotations and "annotations" in (obj.get("metadata") or {}):
        del obj["metadata"]["annotations"]
    if not origin:
        return fallback
    path = (yaml.safe_load(origin) or {}).get("path")
    if not path:
        return fallback
    # Origin paths are relative to the overlay; they all start with the way up to the repo root.
    parts = [part for part in str(path).split("/") if part not in ("", ".")]
    while parts and parts[0] == "..":
        parts.pop(0)
    relative = "/".join(parts)
    anchor = relative.find("kubernetes/")
    return relative[anchor:] if anchor >= 0 else relative


def substitute(text: str, variables: dict[str, str]) -> tuple[str, list[str]]:
    """Apply Flux postBuild substitution to ``text``; return it and the variables left without a value.

    Supports ``${VAR}``, ``${VAR:=default}``, ``${VAR:-default}``, ``${VAR=default}``,
    ``${VAR-default}`` and the ``$${VAR}`` escape (left as ``${VAR}``).
    """
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        escaped, inner = match.group(1), match.group(2)
        if escaped:
            return "${" + inner + "}"
        parsed = _VARIABLE_NAME.match(inner)
        if not parsed:
            missing.append(inner)
            return ""
        name, rest = parsed.group(1), parsed.group(2)
        if name in variables:
            return variables[name]
        for operator in (":=", ":-", "=", "-"):
            if rest.startswith(operator):
                return rest[len(operator) :]
        missing.append(name)
        return ""

    return _VARIABLE.sub(replace, text), missing


def _documents(stream: str) -> Iterator[str]:
    for chunk in re.split(r"^---\s*$", stream, flags=re.MULTILINE):
        if chunk.strip():
            yield chunk


def _variables(
    ks: FluxKustomization, configmaps: dict[tuple[str, str], dict[str, str]]
) -> tuple[dict[str, str], list[str]]:
    post_build = ks.spec.get("postBuild") or {}
    variables: dict[str, str] = {}
    problems: list[str] = []
    for index, source in enumerate(post_build.get("substituteFrom") or []):
        kind, name = source.get("kind"), source.get("name")
        data = configmaps.get((ks.namespace, str(name))) if kind == "ConfigMap" else None
        if data is None:
            if not source.get("optional"):
                problems.append(
                    f"{ks.file}: spec.postBuild.substituteFrom[{index}]: no {kind} named {name} "
                    f"in namespace {ks.namespace} in the tree"
                )
            continue
        variables.update({str(key): str(value) for key, value in data.items()})
    variables.update({str(key): str(value) for key, value in (post_build.get("substitute") or {}).items()})
    return variables, problems


def _render_one(
    root: Path, ks: FluxKustomization, configmaps: dict[tuple[str, str], dict[str, str]]
) -> tuple[list[BuiltObject], list[str]]:
    spec_path = str(ks.spec.get("path", ""))
    path = os.path.normpath(spec_path).replace(os.sep, "/").lstrip("/")
    if not spec_path or path.startswith("..") or not (root / path).is_dir():
        return [], [f"{ks.file}: spec.path: {spec_path or '(empty)'} does not exist"]
    if not (root / path / "kustomization.yaml").is_file():
        return [], [f"{ks.file}: spec.path: {spec_path} has no kustomization.yaml"]
    stream, error = build(root, path, ks.spec.get("components"), ks.spec.get("patches"))
    if error is not None:
        return [], [f"{ks.file}: spec.path: kubectl kustomize {path} failed: {error}"]
    variables, problems = _variables(ks, configmaps)
    objects: list[BuiltObject] = []
    for document in _documents(stream):
        try:
            obj = load_yaml(document)
        except yaml.YAMLError as exc:
            problems.append(f"{ks.file}: spec.path: invalid YAML in the build: {str(exc).splitlines()[0]}")
            continue
        if not isinstance(obj, dict):
            continue
        file = _origin_file(root, obj, ks.file)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if annotations.get(_SUBSTITUTE_ANNOTATION) != "disabled":
            text, missing = substitute(yaml.dump(obj, Dumper=_DUMPER, sort_keys=False), variables)
            label = f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')}"
            for name in dict.fromkeys(missing):
                problems.append(
                    f"{file}: {label}: ${{{name}}} has no value: set it in {ks.file} "
                    "spec.postBuild.substitute or in cluster-settings"
                )
            try:
                obj = load_yaml(text)
            except yaml.YAMLError as exc:
                problems.append(f"{file}: {label}: invalid YAML after substitution: {str(exc).splitlines()[0]}")
                continue
        objects.append(BuiltObject(obj=obj, file=file, kustomization=ks))
    return objects, problems


def render(root: Path) -> Render:
    """Render the tree breadth-first from the FluxInstance's sync path."""
    result = Render(root=root)
    configmaps: dict[tuple[str, str], dict[str, str]] = {}
    seen: dict[tuple[str, str], FluxKustomization] = {}
    level = [
        FluxKustomization(
            name="flux-system", namespace="flux-system", file=ROOT_PATH, spec={"path": f"./{ROOT_PATH}", "prune": True}
        )
    ]
    workers = max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while level:
            outcomes = list(pool.map(lambda ks: _render_one(root, ks, configmaps), level))
            next_level: list[FluxKustomization] = []
            for objects, problems in outcomes:
                result.problems.extend(problems)
                result.objects.extend(objects)
                for built in objects:
                    if built.kind == "ConfigMap":
                        configmaps[(built.namespace, built.name)] = dict(built.obj.get("data") or {})
                for built in objects:
                    if built.kind != "Kustomization" or not str(built.obj.get("apiVersion", "")).startswith(
                        "kustomize.toolkit.fluxcd.io/"
                    ):
                        continue
                    ks = FluxKustomization(
                        name=built.name,
                        namespace=built.namespace or "flux-system",
                        file=built.file,
                        spec=dict(built.obj.get("spec") or {}),
                    )
                    key = (ks.namespace, ks.name)
                    if key in seen:
                        result.problems.append(
                            f"{ks.file}: metadata.name: Kustomization {ks.name} is also defined in {seen[key].file}"
                        )
                        continue
                    seen[key] = ks
                    result.kustomizations.append(ks)
                    next_level.append(ks)
            level = next_level
    return result


# --- checks on files ---------------------------------------------------------------------------


def _yaml_files(root: Path) -> list[Path]:
    base = root / "kubernetes"
    return sorted(path for path in base.rglob("*") if path.suffix in (".yaml", ".yml") and path.is_file())


def check_headers(root: Path) -> list[str]:
    """Every YAML file starts with ``---`` and a ``# yaml-language-server: $schema=`` comment."""
    problems = []
    for path in _yaml_files(root):
        lines = path.read_text().splitlines()
        rel = _rel(root, path)
        if not lines or lines[0].rstrip() != "---":
            problems.append(f"{rel}: line 1: the file must start with '---'")
            continue
        if len(lines) < 2 or not _SCHEMA_COMMENT.match(lines[1].rstrip()):
            problems.append(f"{rel}: line 2: missing '# yaml-language-server: $schema=<url>' comment")
    return problems


def check_plaintext_secrets(root: Path) -> list[str]:
    """No Secret with data/stringData (unless SOPS-encrypted) and no secretGenerator in the tree."""
    problems = []
    for path in _yaml_files(root):
        rel = _rel(root, path)
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            problems.append(f"{rel}: invalid YAML: {str(exc).splitlines()[0]}")
            continue
        for doc in documents:
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")) and "sops" not in doc:
                name = (doc.get("metadata") or {}).get("name")
                problems.append(
                    f"{rel}: Secret {name}: plaintext data in Git; use an ExternalSecret "
                    "(ClusterSecretStore onepassword) or encrypt it with SOPS"
                )
            if doc.get("kind") in ("Kustomization", "Component") and doc.get("secretGenerator"):
                problems.append(
                    f"{rel}: secretGenerator: generates a plaintext Secret from Git; use an ExternalSecret instead"
                )
    return problems


def check_app_layout(root: Path) -> list[str]:
    """Each ``kubernetes/apps/<namespace>/<app>/`` has ks.yaml, app/kustomization.yaml and a HelmRelease."""
    problems = []
    apps = root / "kubernetes" / "apps"
    if not apps.is_dir():
        return [f"{_rel(root, apps)}: missing: the tree has no apps folder"]
    for namespace in sorted(path for path in apps.iterdir() if path.is_dir()):
        if not (namespace / "kustomization.yaml").is_file():
            problems.append(
                f"{_rel(root, namespace)}/kustomization.yaml: missing: each namespace folder lists "
                "its namespace and its apps' ks.yaml"
            )
        for app in sorted(path for path in namespace.iterdir() if path.is_dir()):
            rel = _rel(root, app)
            if not (app / "ks.yaml").is_file():
                problems.append(f"{rel}/ks.yaml: missing: each app has a Flux Kustomization in ks.yaml")
            kustomization = app / "app" / "kustomization.yaml"
            if not kustomization.is_file():
                problems.append(f"{rel}/app/kustomization.yaml: missing: each app's manifests live in app/")
                continue
            if (
                not (app / "app" / "helmrelease.yaml").is_file()
                and NO_HELMRELEASE_MARKER not in kustomization.read_text()
            ):
                problems.append(
                    f"{rel}/app/helmrelease.yaml: missing: add one, or say why the app has none "
                    f"with a '{NO_HELMRELEASE_MARKER} <reason>' comment in app/kustomization.yaml"
                )
    return problems


# --- checks on the rendered tree ---------------------------------------------------------------


def check_unused_files(render_: Render) -> list[str]:
    """Every manifest under kubernetes/ ends up in some Flux Kustomization's build."""
    used = {built.file for built in render_.objects}
    used.update(ks.file for ks in render_.kustomizations)
    problems = []
    for path in _yaml_files(render_.root):
        rel = _rel(render_.root, path)
        if path.name == "kustomization.yaml" or rel in used:
            continue
        problems.append(
            f"{rel}: unused: no Flux Kustomization builds it (list it in a kustomization.yaml "
            f"reachable from {ROOT_PATH})"
        )
    return problems


def check_kustomizations(render_: Render) -> list[str]:
    """sourceRef and dependsOn name existing objects, and dependsOn has no cycle."""
    problems = []
    names = {(ks.namespace, ks.name): ks for ks in render_.kustomizations}
    for ks in render_.kustomizations:
        source = ks.spec.get("sourceRef") or {}
        kind, name = source.get("kind", ""), source.get("name", "")
        namespace = source.get("namespace") or ks.namespace
        if (kind, namespace, name) != FLUX_SOURCE and render_.find(kind, namespace, name) is None:
            problems.append(f"{ks.file}: spec.sourceRef: no {kind} named {name} in namespace {namespace}")
        for index, dependency in enumerate(ks.spec.get("dependsOn") or []):
            dep_namespace = dependency.get("namespace") or ks.namespace
            if (dep_namespace, dependency.get("name")) not in names:
                where = "" if dep_namespace == ks.namespace else f" in namespace {dep_namespace}"
                problems.append(
                    f"{ks.file}: spec.dependsOn[{index}].name: no Kustomization named {dependency.get('name')}{where}"
                )
    problems.extend(_cycles(render_.kustomizations))
    return problems


def _cycles(kustomizations: list[FluxKustomization]) -> list[str]:
    graph = {
        (ks.namespace, ks.name): [
            (dep.get("namespace") or ks.namespace, dep.get("name")) for dep in ks.spec.get("dependsOn") or []
        ]
        for ks in kustomizations
    }
    files = {(ks.namespace, ks.name): ks.file for ks in kustomizations}
    state: dict[tuple[str, str], int] = {}
    stack: list[tuple[str, str]] = []
    reported: set[frozenset[tuple[str, str]]] = set()
    problems = []

    def visit(node: tuple[str, str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    chain = " -> ".join(name for _, name in [*cycle, nxt])
                    problems.append(f"{files[nxt]}: spec.dependsOn: cycle {chain}")
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return problems


def _exact(version: Any) -> bool:
    return isinstance(version, str) and bool(_EXACT_VERSION.match(version))


def check_chart_sources(render_: Render) -> list[str]:
    """Every HelmRelease's chart source exists in the tree and pins an exact version."""
    problems = []
    for built in render_.objects:
        if built.kind == "OCIRepository":
            ref = built.obj.get("spec", {}).get("ref") or {}
            if ref.get("digest"):
                continue
            if ref.get("semver"):
                problems.append(
                    f"{built.file}: spec.ref.semver: '{ref['semver']}' is a range; pin an exact spec.ref.tag"
                )
            elif not _exact(ref.get("tag")):
                problems.append(f"{built.file}: spec.ref.tag: '{ref.get('tag', '')}' is not an exact version")
    for built in render_.objects:
        if built.kind != "HelmRelease":
            continue
        spec = built.obj.get("spec") or {}
        if spec.get("chartRef"):
            ref = spec["chartRef"]
            namespace = ref.get("namespace") or built.namespace
            if render_.find(ref.get("kind", ""), namespace, ref.get("name", "")) is None:
                problems.append(
                    f"{built.file}: spec.chartRef: no {ref.get('kind')} named {ref.get('name')} "
                    f"in namespace {namespace} in the tree"
                )
        elif (spec.get("chart") or {}).get("spec"):
            chart = spec["chart"]["spec"]
            source = chart.get("sourceRef") or {}
            namespace = source.get("namespace") or built.namespace
            if render_.find(source.get("kind", ""), namespace, source.get("name", "")) is None:
                problems.append(
                    f"{built.file}: spec.chart.spec.sourceRef: no {source.get('kind')} named "
                    f"{source.get('name')} in namespace {namespace} in the tree"
                )
            if "version" not in chart:
                problems.append(f"{built.file}: spec.chart.spec.version: missing; pin an exact chart version")
            elif not _exact(chart["version"]):
                problems.append(f"{built.file}: spec.chart.spec.version: '{chart['version']}' is not an exact version")
        else:
            problems.append(f"{built.file}: spec: {built.ref()} has neither chart nor chartRef")
    return problems


def check_external_secrets(render_: Render) -> list[str]:
    """Every ExternalSecret uses a ClusterSecretStore the tree defines."""
    stores = sorted(built.name for built in render_.objects if built.kind == "ClusterSecretStore")
    problems = []
    for built in render_.objects:
        if built.kind != "ExternalSecret":
            continue
        ref = (built.obj.get("spec") or {}).get("secretStoreRef") or {}
        kind, name = ref.get("kind", "SecretStore"), ref.get("name")
        if kind != "ClusterSecretStore" or name not in stores:
            problems.append(
                f"{built.file}: spec.secretStoreRef: no ClusterSecretStore named {name} "
                f"(kind {kind}); the tree defines: {', '.join(stores) or 'none'}"
            )
    return problems


def _chart_name(render_: Render, built: BuiltObject) -> str:
    spec = built.obj.get("spec") or {}
    if (spec.get("chart") or {}).get("spec"):
        return str(spec["chart"]["spec"].get("chart", ""))
    ref = spec.get("chartRef") or {}
    source = render_.find(str(ref.get("kind", "")), ref.get("namespace") or built.namespace, str(ref.get("name", "")))
    if source is not None:
        return str((source.obj.get("spec") or {}).get("url", "")).rstrip("/").rsplit("/", 1)[-1]
    return ""


def check_pulumi_owned(render_: Render) -> list[str]:
    """Nothing in the tree for the layers Pulumi deploys."""
    problems = []
    for built in render_.objects:
        if built.kind == "HelmRelease":
            for candidate in (_chart_name(render_, built), built.name):
                if candidate in PULUMI_CHARTS:
                    problems.append(
                        f"{built.file}: {built.ref()}: {candidate} is deployed by Pulumi "
                        f"({PULUMI_CHARTS[candidate]} layer); remove it from the Flux tree"
                    )
                    break
        elif built.kind in PULUMI_KINDS:
            problems.append(
                f"{built.file}: {built.ref()}: {built.kind} belongs to Pulumi's "
                f"{PULUMI_KINDS[built.kind]} layer; remove it from the Flux tree"
            )
        elif built.kind == "Namespace" and built.name in PULUMI_NAMESPACES:
            problems.append(
                f"{built.file}: Namespace {built.name}: created by Pulumi before Flux runs; "
                "do not declare it in the Flux tree"
            )
    return problems


def check_namespaces(render_: Render) -> list[str]:
    """Every namespace the tree deploys to is declared with a pod-security enforce label."""
    problems = []
    declared = {built.name for built in render_.objects if built.kind == "Namespace"}
    for built in render_.objects:
        if built.kind != "Namespace":
            continue
        level = ((built.obj.get("metadata") or {}).get("labels") or {}).get(POD_SECURITY_LABEL)
        if level not in POD_SECURITY_LEVELS:
            problems.append(
                f"{built.file}: metadata.labels: Namespace {built.name} needs {POD_SECURITY_LABEL} "
                f"set to one of {', '.join(sorted(POD_SECURITY_LEVELS))}"
            )
    for ks in render_.kustomizations:
        target = ks.spec.get("targetNamespace")
        if target and target not in declared and target not in PULUMI_NAMESPACES:
            problems.append(f"{ks.file}: spec.targetNamespace: namespace {target} is not declared in the tree")
    return problems


def _enabled(value: Any) -> bool:
    """A chart toggle that renders something: ``true``, or a mapping not switched off with ``enabled: false``."""
    if isinstance(value, bool):
        return value
    return isinstance(value, dict) and value.get("enabled", True) is not False


def values_groups(values: Any) -> set[str]:
    """API groups of the custom resources a HelmRelease's values ask its chart to render.

    The common toggles: ``serviceMonitor``/``podMonitor``/``prometheusRule`` sections switched on (or
    ``*MonitorEnabled: true``) render monitoring.coreos.com objects; a ``route`` section with an entry that is
    not switched off (bjw-s app-template, Grafana) renders Gateway API HTTPRoutes.
    """
    groups: set[str] = set()
    if isinstance(values, list):
        for item in values:
            groups |= values_groups(item)
        return groups
    if not isinstance(values, dict):
        return groups
    for key, value in values.items():
        if key in ("serviceMonitor", "podMonitor", "prometheusRule") and isinstance(value, dict):
            entries = [value] if "enabled" in value else [v for v in value.values() if isinstance(v, dict)]
            if any(_enabled(entry) for entry in entries):
                groups.add("monitoring.coreos.com")
        elif key in ("podMonitorEnabled", "serviceMonitorEnabled") and value is True:
            groups.add("monitoring.coreos.com")
        elif (
            key == "route"
            and isinstance(value, dict)
            and any(_enabled(entry) for entry in value.values() if isinstance(entry, dict))
        ):
            groups.add("gateway.networking.k8s.io")
        groups |= values_groups(value)
    return groups


def _group(built: BuiltObject) -> str:
    api_version = str(built.obj.get("apiVersion", ""))
    return api_version.rpartition("/")[0]


def check_crd_order(render_: Render) -> list[str]:
    """Each Kustomization depends on the Kustomizations that install the CRDs of what it applies.

    What it applies: its own custom resources, and those its HelmReleases render (``CHART_RENDERS``,
    ``values_groups``). A group must be installed by a HelmRelease of ``CRD_CHARTS`` in another Kustomization
    it depends on (directly or not), or be one of the ``BASE_GROUPS``.
    """
    providers: dict[str, list[str]] = {}
    for built in render_.objects:
        if built.kind == "HelmRelease":
            for group in CRD_CHARTS.get(_chart_name(render_, built), frozenset()):
                providers.setdefault(group, []).append(built.kustomization.name)
    names = {(ks.namespace, ks.name): ks for ks in render_.kustomizations}

    @cache
    def upstream(key: tuple[str, str]) -> frozenset[str]:
        ks = names[key]
        out: set[str] = set()
        for dep in ks.spec.get("dependsOn") or []:
            dep_key = (dep.get("namespace") or ks.namespace, dep.get("name"))
            if dep_key in names and dep_key != key:
                out.add(str(dep_key[1]))
                out |= upstream(dep_key)
        return frozenset(out)

    problems: list[str] = []
    reported: set[tuple[str, str]] = set()
    for built in render_.objects:
        ks = built.kustomization
        needs: set[str] = set()
        own: frozenset[str] = frozenset()
        group = _group(built)
        if group and "." in group and group != "kustomize.config.k8s.io":
            needs.add(group)
        if built.kind == "HelmRelease":
            chart = _chart_name(render_, built)
            own = CRD_CHARTS.get(chart, frozenset())
            needs |= CHART_RENDERS.get(chart, frozenset())
            needs |= values_groups((built.obj.get("spec") or {}).get("values"))
        for group in sorted(needs - own - BASE_GROUPS):
            if (ks.name, group) in reported or (ks.namespace, ks.name) not in names:
                continue
            candidates = providers.get(group, [])
            if not candidates:
                reported.add((ks.name, group))
                problems.append(f"{built.file}: {built.ref()}: no Kustomization in the tree installs the {group} CRDs")
                continue
            if ks.name in candidates:
                reported.add((ks.name, group))
                problems.append(
                    f"{built.file}: {built.ref()}: the {group} CRDs are installed by the same Kustomization "
                    f"({ks.name}); move it to one that depends on {ks.name}"
                )
                continue
            if not set(candidates) & upstream((ks.namespace, ks.name)):
                reported.add((ks.name, group))
                problems.append(
                    f"{ks.file}: spec.dependsOn: {ks.name} applies {built.ref()} ({group}); "
                    f"depend on {' or '.join(sorted(set(candidates)))}, which installs its CRDs"
                )
    return problems


@cache
def _crd_schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def _json_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def _crd_schema_file(folders: list[Path], group: str, kind: str, version: str) -> Path | None:
    """The first ``<folder>/<group>/<kind>_<version>.json`` that exists, in folder order."""
    for folder in folders:
        path = folder / group / f"{kind.lower()}_{version}.json"
        if path.is_file():
            return path
    return None


def check_schemas(render_: Render, schemas: Path, local_schemas: Path | None = LOCAL_SCHEMAS) -> list[str]:
    """Built-in kinds validate with kubernetes-validate; custom resources with the CRD schemas.

    A custom resource's schema is looked up in ``<schemas>/crds`` (the shared folder) first, then in
    ``<local_schemas>/crds`` (the project's own, for groups the shared folder does not cover).
    """
    problems = []
    folders = [schemas / "crds"]
    if local_schemas is not None and (local_schemas / "crds").is_dir():
        folders.append(local_schemas / "crds")
    searched = " or ".join(str(folder) for folder in folders)
    for built in render_.objects:
        api_version = str(built.obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        crd = _crd_schema_file(folders, group, built.kind, version) if group else None
        if crd is not None:
            schema = _crd_schema(crd)
            validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            errors = sorted(validator_class(schema).iter_errors(built.obj), key=lambda e: list(e.absolute_path))
            for error in errors:
                problems.append(
                    f"{built.file}: {built.ref()}: {_json_path(error.absolute_path)}: {error.message[:200]}"
                )
            continue
        known = [folder for folder in folders if (folder / group).is_dir()] if group else []
        if known:
            places = " or ".join(str(folder / group) for folder in known)
            problems.append(
                f"{built.file}: {built.ref()}: apiVersion: no schema for {built.kind} {api_version} in {places}"
            )
            continue
        try:
            kubernetes_validate.validate(built.obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{built.file}: {built.ref()}: {_json_path(error.path)}: {str(error.message)[:200]}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{built.file}: {built.ref()}: apiVersion: no schema for {built.kind} {api_version} "
                f"(not a Kubernetes {KUBERNETES_VERSION} kind and no CRD schema in {searched})"
            )
    return problems


def check_rendered(render_: Render, schemas: Path | None) -> list[str]:
    """All checks that need the rendered tree; schemas are skipped when ``schemas`` is None."""
    problems = list(render_.problems)
    for check in (
        check_unused_files,
        check_kustomizations,
        check_chart_sources,
        check_external_secrets,
        check_pulumi_owned,
        check_namespaces,
        check_crd_order,
    ):
        problems.extend(check(render_))
    if schemas is not None:
        problems.extend(check_schemas(render_, schemas))
    return problems


def validate(root: Path, schemas: Path | None) -> list[str]:
    """Every problem in the tree under ``root``, one line each (empty when the tree is valid)."""
    problems = check_headers(root) + check_plaintext_secrets(root) + check_app_layout(root)
    problems += check_rendered(render(root), schemas)
    return list(dict.fromkeys(problems))


def main(argv: list[str] | None = None) -> int:
    """CLI: print every problem and exit 1 if there is any."""
    parser = argparse.ArgumentParser(prog="python -m tools.validate_kubernetes", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument(
        "--schemas",
        type=Path,
        default=None,
        help="folder with crds/<group>/<kind>_<version>.json (default: <root>/../shared/schemas)",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    schemas = args.schemas if args.schemas is not None else root.parent / "shared" / "schemas"
    if not (schemas / "crds").is_dir():
        print(f"note: no CRD schemas at {schemas}/crds; schema validation skipped", file=sys.stderr)
        schemas_or_none: Path | None = None
    else:
        schemas_or_none = schemas.resolve()
    problems = validate(root, schemas_or_none)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in the Flux tree", file=sys.stderr)
        return 1
    print("kubernetes/: Flux tree is valid", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
