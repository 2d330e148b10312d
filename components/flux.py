"""Flux bootstrap: flux-operator → FluxInstance (Git → kubernetes/flux/cluster) + bootstrap Secrets.

Pulumi owns only what must exist before Flux can reconcile: the operator, the
FluxInstance, the Git pull Secret, the ``sops-age`` Secret and the two Secrets
External Secrets needs to reach 1Password Connect. Everything under
``kubernetes/apps`` is Flux's.

Facts this follows:
- The FluxInstance must be named ``flux`` (CEL rule in its CRD); with
  ``sync.name`` unset the operator names the GitRepository and Kustomization it
  creates after the namespace, ``flux-system`` — the name the tree's
  Kustomizations use as ``sourceRef``.
- Pull Secret keys are Flux's: ``identity`` + ``known_hosts`` for ssh://,
  ``username`` + ``password`` for https:// (FluxInstance CRD, ``sync.pullSecret``).
- Secrets are written as ``data``, not ``stringData``: ``stringData`` does not
  round-trip under server-side apply (kubernetes/website#42603), which the
  provider uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k8s import b64, chart, deep_merge, namespace, secret_data
from stacks.config.flux import FluxConfig

FLUX_INSTANCE_API = "fluxcd.controlplane.io/v1"
FLUX_INSTANCE_NAME = "flux"
"""The only name the FluxInstance CRD accepts."""
GIT_SECRET = "flux-system"
"""Pull Secret name, as ``flux bootstrap`` and the flux-operator docs call it."""
SOPS_SECRET = "sops-age"
SOPS_KEY = "age.agekey"
"""kustomize-controller reads age keys from Secret keys ending in ``.agekey``."""
# Names the GitOps tree refers to (kubernetes/apps/external-secrets: the
# onepassword-connect HelmRelease and the "onepassword" ClusterSecretStore).
CONNECT_CREDENTIALS_SECRET = "onepassword-connect-credentials"
CONNECT_CREDENTIALS_KEY = "1password-credentials.json"
CONNECT_TOKEN_SECRET = "onepassword-connect-token"
CONNECT_TOKEN_KEY = "token"


def connect_session(credentials: str) -> str:
    """The value the Connect chart's ``OP_SESSION`` needs: base64 of 1password-credentials.json.

    The connect chart passes the Secret key to Connect as ``OP_SESSION``, which
    Connect reads as a path or as base64-encoded JSON, never raw JSON
    (1Password/connect-helm-charts#114, #202; 1Password/connect#62). Raw JSON
    (as 1Password hands out the file) is encoded; an already encoded value is kept.
    """
    text = credentials.strip()
    return b64(text) if text.startswith("{") else text


@dataclass(frozen=True)
class FluxArgs:
    """Inputs of :class:`Flux`: its config section, the secret inputs it writes, what it waits for."""

    config: FluxConfig
    git_credentials: pulumi.Input[str] | None = None
    """SSH deploy key (auth ssh) or HTTPS token (auth token); ``None`` for a public repository."""
    sops_age_key: pulumi.Input[str] | None = None
    """age private key (``AGE-SECRET-KEY-…``); without it Flux cannot decrypt SOPS files."""
    onepassword_connect_credentials: pulumi.Input[str] | None = None
    """1password-credentials.json (raw or base64)."""
    onepassword_connect_token: pulumi.Input[str] | None = None
    """Connect access token External Secrets authenticates with."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What the operator waits for: the CNI and cluster DNS (Flux pulls from Git by host name)."""


def _name_of(ns: k8s.core.v1.Namespace, name: str) -> pulumi.Output[str]:
    """The namespace's name as an output of the Namespace, so objects in it wait for it."""
    return ns.metadata.apply(lambda m: m.name or name)


def _secret(
    name: str,
    secret_name: str,
    namespace_name: pulumi.Input[str],
    data: dict[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=secret_name, namespace=namespace_name),
        type="Opaque",
        data=data,
        opts=opts,
    )


class Flux(pulumi.ComponentResource):
    """flux-operator chart, one FluxInstance syncing this repository, and the Secrets Flux starts with."""

    namespace: k8s.core.v1.Namespace
    operator: k8s.helm.v4.Chart
    instance: k8s.apiextensions.CustomResource
    """The FluxInstance (its own resource, so preview diffs it and policies see it)."""
    external_secrets_namespace: k8s.core.v1.Namespace
    secrets: dict[str, k8s.core.v1.Secret]
    """Bootstrap Secrets by role: git, sops, connect-credentials, connect-token (only those given)."""
    namespace_name: pulumi.Output[str]

    def __init__(self, name: str, args: FluxArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:Flux", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        self.namespace = namespace(f"{name}-namespace", cfg.namespace, cfg.pod_security, child)
        self.namespace_name = _name_of(self.namespace, cfg.namespace)
        ns = self.namespace_name
        # Waits for Cilium and CoreDNS only: the operator needs pod networking and
        # Flux resolves the Git host; storage and certificates are not needed.
        self.operator = chart(
            f"{name}-operator",
            cfg.chart,
            cfg.namespace,
            deep_merge({}, cfg.values),
            pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            namespace=self.namespace,
        )

        # The External Secrets namespace is Pulumi's (the tree must not declare it):
        # the Connect Secrets have to be in it before Flux installs the operator.
        self.external_secrets_namespace = namespace(
            f"{name}-external-secrets-namespace",
            cfg.external_secrets_namespace,
            cfg.external_secrets_pod_security,
            child,
        )
        es_ns = _name_of(self.external_secrets_namespace, cfg.external_secrets_namespace)

        self.secrets = {}
        git = cfg.git
        if args.git_credentials is not None:
            if git.auth == "ssh":
                git_data: dict[str, pulumi.Input[str]] = {
                    "identity": secret_data(args.git_credentials, _line),
                    "known_hosts": b64((git.known_hosts or "").strip() + "\n"),
                }
            else:
                git_data = {"username": b64(git.username), "password": secret_data(args.git_credentials, str.strip)}
            self.secrets["git"] = _secret(f"{name}-git-auth", GIT_SECRET, ns, git_data, child)
        # Without it Flux can sync only unencrypted manifests: SOPS-encrypted
        # Secrets in the tree fail to decrypt and their Kustomization stays not Ready.
        if args.sops_age_key is not None:
            self.secrets["sops"] = _secret(
                f"{name}-sops-age", SOPS_SECRET, ns, {SOPS_KEY: secret_data(args.sops_age_key, _line)}, child
            )
        # Without these, 1Password Connect cannot start and the "onepassword"
        # ClusterSecretStore stays not Ready: no ExternalSecret in the tree syncs.
        if args.onepassword_connect_credentials is not None:
            self.secrets["connect-credentials"] = _secret(
                f"{name}-onepassword-credentials",
                CONNECT_CREDENTIALS_SECRET,
                es_ns,
                {CONNECT_CREDENTIALS_KEY: secret_data(args.onepassword_connect_credentials, connect_session)},
                child,
            )
        if args.onepassword_connect_token is not None:
            self.secrets["connect-token"] = _secret(
                f"{name}-onepassword-token",
                CONNECT_TOKEN_SECRET,
                es_ns,
                {CONNECT_TOKEN_KEY: secret_data(args.onepassword_connect_token, str.strip)},
                child,
            )

        self.instance = k8s.apiextensions.CustomResource(
            f"{name}-instance",
            api_version=FLUX_INSTANCE_API,
            kind="FluxInstance",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=FLUX_INSTANCE_NAME, namespace=ns),
            spec=instance_spec(cfg, pull_secret="git" in self.secrets, decrypt="sops" in self.secrets),
            # The operator chart brings the FluxInstance CRD; the Secrets must be
            # there before Flux's first reconcile reads them.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.operator, *self.secrets.values()]),
        )
        self.register_outputs({"namespace": self.namespace_name, "instance": self.instance.id})


def _line(key: str) -> str:
    # Key files end with a newline; OpenSSH refuses a private key without it ("invalid format").
    return key.strip() + "\n"


def instance_spec(cfg: FluxConfig, *, pull_secret: bool, decrypt: bool) -> dict[str, Any]:
    """The FluxInstance ``spec`` for this config.

    ``pull_secret``: the Git pull Secret exists (private repository).
    ``decrypt``: the ``sops-age`` Secret exists, so the sync Kustomization decrypts with it.
    """
    git = cfg.git
    sync: dict[str, Any] = {"kind": "GitRepository", "url": git.url, "ref": git.ref, "path": git.path}
    if git.interval is not None:
        sync["interval"] = git.interval
    if pull_secret:
        sync["pullSecret"] = GIT_SECRET
    distribution: dict[str, Any] = {"version": cfg.distribution.version, "registry": cfg.distribution.registry}
    if cfg.distribution.artifact is not None:
        distribution["artifact"] = cfg.distribution.artifact
    spec: dict[str, Any] = {"distribution": distribution, "components": list(cfg.components), "sync": sync}
    if decrypt:
        # The operator applies these patches to its sync objects too (fluxcd.control-plane.io,
        # "Flux Instance Customization"); the root Kustomization then decrypts SOPS files.
        # With sync.name unset, the Kustomization is named after the namespace.
        patch = (
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
            f"metadata:\n  name: {cfg.namespace}\n"
            f"spec:\n  decryption:\n    provider: sops\n    secretRef:\n      name: {SOPS_SECRET}\n"
        )
        target = {"kind": "Kustomization", "name": cfg.namespace}
        spec["kustomize"] = {"patches": [{"target": target, "patch": patch}]}
    return spec
