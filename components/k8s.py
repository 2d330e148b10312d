"""Small helpers shared by the Kubernetes layers: namespaces and pinned Helm charts."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.config.base import ChartConfig

# Talos enforces pod-security "baseline" cluster-wide; namespaces that run
# privileged pods (CNI, storage) must say so: https://www.talos.dev/v1.13/kubernetes-guides/configuration/pod-security/
PSA_LEVELS = ("privileged", "baseline", "restricted")


def pod_security_labels(level: str) -> dict[str, str]:
    """Pod-security labels for a namespace (enforce, audit and warn at the same level)."""
    if level not in PSA_LEVELS:
        raise ValueError(f"unknown pod-security level {level!r}")
    return {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")}


def namespace(name: str, namespace_name: str, level: str, opts: pulumi.ResourceOptions) -> k8s.core.v1.Namespace:
    """A namespace with pod-security labels."""
    return k8s.core.v1.Namespace(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace_name, labels=pod_security_labels(level)),
        opts=opts,
    )


PREEXISTING_NAMESPACES = frozenset({"kube-system"})
"""Namespaces every cluster already has; Talos exempts kube-system from pod-security enforcement
(https://www.talos.dev/v1.13/kubernetes-guides/configuration/pod-security/)."""


def layer_namespace(
    name: str, namespace_name: str, level: str, opts: pulumi.ResourceOptions
) -> k8s.core.v1.Namespace | None:
    """The namespace a layer deploys into, or ``None`` when it already exists (kube-system)."""
    if namespace_name in PREEXISTING_NAMESPACES:
        return None
    return namespace(name, namespace_name, level, opts)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge chart values: maps merge recursively, everything else is replaced by ``override``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def release_name(source: ChartConfig) -> str:
    """The Helm release name for a chart: its own name (the last segment of an ``oci://`` reference)."""
    return source.chart.rstrip("/").rsplit("/", 1)[-1]


def chart(
    name: str,
    source: ChartConfig,
    namespace_name: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    *,
    namespace: k8s.core.v1.Namespace | None = None,
    skip_crds: bool = False,
) -> k8s.helm.v4.Chart:
    """A Helm chart at its exact configured version (helm.v4: per-object diffs, no hooks).

    The release is named after the chart, as ``helm install cilium cilium/cilium``
    would: helm.v4 otherwise takes the Pulumi resource name (``cilium-chart``),
    which then appears in object names and ``app.kubernetes.io/instance`` labels.

    The namespace is a plain string, and the chart depends on ``namespace`` (the
    Namespace resource, when the layer creates one): a helm.v4 Chart whose namespace
    is unknown at preview renders no children, so neither the preview nor the
    policy pack would see its objects (DESIGN.md, "Facts of the real engine").
    """
    repository: Sequence[str] = [source.repository] if source.repository else []
    if namespace is not None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[namespace]))
    return k8s.helm.v4.Chart(
        name,
        name=release_name(source),
        chart=source.chart,
        version=source.version,
        namespace=namespace_name,
        repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=repository[0]) if repository else None,
        values=dict(values),
        skip_crds=skip_crds,
        opts=opts,
    )


def b64(text: str) -> str:
    """Base64 of UTF-8 text, as a Secret's ``data`` holds it."""
    return base64.b64encode(text.encode()).decode()


def secret_data(value: pulumi.Input[str], transform: Callable[[str], str] = str) -> pulumi.Output[str]:
    """A secret value, normalised by ``transform``, base64-encoded for a Secret's ``data``; a Pulumi secret
    even if the caller forgot.

    Secrets are written through ``data``, never ``string_data``: the API server
    folds ``stringData`` into ``data`` and returns no ``stringData``, so with
    server-side apply every later diff would see the field as changed.
    """
    return pulumi.Output.secret(value).apply(lambda v: b64(transform(v)))
