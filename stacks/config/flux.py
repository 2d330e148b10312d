"""Config section of the Flux bootstrap: ``homelab:flux``.

Pulumi installs the flux-operator chart and one ``FluxInstance`` that syncs this
repository's ``kubernetes/flux/cluster``; Flux owns everything from there on.
The Git credential itself is a secret input (``homelab:gitCredentials`` or a
1Password item); this section only says which kind it is (``git.auth``), so a
mismatch between the URL, the declared kind and the given secret is caught
before anything is registered (:func:`credential_problems`).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from stacks.config.base import NAMESPACE, LayerConfig, Model, NonEmpty

FLUX_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
# A Git branch name, conservatively (git check-ref-format forbids more; this keeps the common mistakes out).
BRANCH_RE = re.compile(r"^(?!/)(?!.*(?:\.\.|//|@\{))[A-Za-z0-9._/-]+(?<![./])$")
# Flux duration: Go's time.ParseDuration units, as the FluxInstance CRD pattern has it.
INTERVAL_RE = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")

# Flux controllers the operator can install (FluxInstance CRD, spec.components enum).
Component = Literal[
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
    "source-watcher",
]
DEFAULT_COMPONENTS: tuple[Component, ...] = (
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
)
GitAuth = Literal["none", "ssh", "token"]
PodSecurity = Literal["privileged", "baseline", "restricted"]

GIT_CREDENTIALS_KEY = f"{NAMESPACE}:gitCredentials"
"""Where the Git credential comes from by default (``pulumi config set --secret``)."""


class FluxDistribution(Model):
    """Which Flux the operator installs: an exact version from one registry."""

    version: NonEmpty = Field(
        description=(
            "Flux version, exact X.Y.Z (the operator accepts ranges like 2.x; we pin so an upgrade is a reviewed diff)."
        )
    )
    registry: NonEmpty = Field("ghcr.io/fluxcd", description="Registry of the Flux controller images.")
    artifact: NonEmpty | None = Field(
        None,
        description=(
            "oci:// artifact with the distribution manifests; unset uses the manifests built into the operator "
            "(then the version must not be newer than the operator release)."
        ),
    )

    @model_validator(mode="after")
    def _pinned(self) -> FluxDistribution:
        problems = []
        if not FLUX_VERSION_RE.match(self.version):
            problems.append(f"version: {self.version!r} is not an exact Flux version X.Y.Z (no ranges, no 'v')")
        if self.artifact is not None and not self.artifact.startswith("oci://"):
            problems.append(f"artifact: {self.artifact!r} must start with oci://")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class FluxGit(Model):
    """The repository Flux syncs, and how it authenticates."""

    url: NonEmpty = Field(
        description="ssh://git@host/owner/repo.git (auth: ssh) or https://host/owner/repo.git (auth: token or none)."
    )
    branch: NonEmpty = Field("main", description="Branch to sync (becomes ref refs/heads/<branch>).")
    path: NonEmpty = Field("kubernetes/flux/cluster", description="Directory in the repository Flux applies first.")
    auth: GitAuth = Field(
        "none",
        description=(
            "Kind of the secret input gitCredentials: ssh (deploy key, PEM), token (HTTPS token) or none (public repo)."
        ),
    )
    username: NonEmpty = Field("git", description="HTTPS user name sent with the token (auth: token).")
    known_hosts: NonEmpty | None = Field(
        None, description="known_hosts lines for the Git host (auth: ssh), e.g. from ssh-keyscan; public, not secret."
    )
    interval: NonEmpty | None = Field(None, description="How often Flux fetches the repository, e.g. 1m.")

    @property
    def ref(self) -> str:
        """The Git ref the FluxInstance syncs."""
        return f"refs/heads/{self.branch}"

    @model_validator(mode="after")
    def _consistent(self) -> FluxGit:
        url_problems = _url_problems(self.url, self.auth)
        problems = [f"url: {p}" for p in url_problems]
        if not BRANCH_RE.match(self.branch):
            problems.append(f"branch: {self.branch!r} is not a valid Git branch name")
        if self.path.startswith("/") or ".." in self.path.split("/"):
            problems.append(f"path: {self.path!r} must be relative to the repository root, without '..'")
        if self.interval is not None and not INTERVAL_RE.match(self.interval):
            problems.append(f"interval: {self.interval!r} is not a duration like 30s, 1m or 1h")
        if self.auth == "ssh":
            if self.known_hosts is None:
                problems.append("knownHosts: auth ssh needs the Git host's public keys (ssh-keyscan <host>)")
            elif not url_problems:  # matching hosts needs a valid URL
                problems.extend(f"knownHosts: {p}" for p in _known_hosts_problems(self.known_hosts, self.url))
        elif self.known_hosts is not None:
            problems.append(f"knownHosts: only used with auth ssh (auth is {self.auth})")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _url_problems(url: str, auth: str) -> list[str]:  # noqa: PLR0911 - one early return per rule
    if re.match(r"^[\w.-]+@[\w.-]+:", url) and "://" not in url:
        # Flux's GitRepository takes URLs only (CRD pattern ^(http|https|ssh)://.*$), not scp-like addresses.
        user_host, _, path = url.partition(":")
        return [f"{url!r} is scp-like; Flux needs ssh://{user_host}/{path}"]
    parts = urlsplit(url)
    if parts.scheme not in ("ssh", "https"):
        return [f"{url!r} must start with ssh:// or https://"]
    if not parts.hostname or parts.path.strip("/") == "":
        return [f"{url!r} needs a host and a repository path"]
    if parts.scheme == "https" and (parts.username or parts.password):
        return [f"{url!r} carries credentials; they would be stored in plaintext: use auth token instead"]
    if auth == "ssh" and parts.scheme != "ssh":
        return [f"auth ssh (a deploy key) needs an ssh:// URL, got {parts.scheme}://"]
    if auth in ("token", "none") and parts.scheme != "https":
        need = "an HTTPS token needs an https:// URL" if auth == "token" else "without a deploy key use https://"
        return [f"{need} (auth is {auth}), got {parts.scheme}://"]
    return []


def _known_host_patterns(url: str) -> set[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    # OpenSSH writes non-default ports as [host]:port (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT).
    return {host} if parts.port in (None, 22) else {f"[{host}]:{parts.port}"}


def _known_hosts_problems(text: str, url: str) -> list[str]:
    entries = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not entries:
        return ["has no host key line"]
    bad = [" ".join(e)[:40] for e in entries if len(e) < 3]
    if bad:
        return [f"line {bad[0]!r} is not '<host> <key type> <base64 key>'"]
    hosts = {h for e in entries if not e[0].startswith("@") for h in e[0].split(",")}
    if any(h.startswith("|1|") for h in hosts):
        return []  # hashed entries (ssh-keyscan -H) cannot be matched here; ssh checks them
    wanted = _known_host_patterns(url)
    if not hosts & wanted:
        return [f"no line for {', '.join(sorted(wanted))} (the host of git.url)"]
    return []


class FluxConfig(LayerConfig):
    """The Flux bootstrap (``homelab:flux``): flux-operator chart, FluxInstance, bootstrap Secrets."""

    namespace: NonEmpty = Field("flux-system", description="Namespace of the operator and the Flux controllers.")
    pod_security: PodSecurity = Field(
        # Flux conforms to the restricted standard since fluxcd/flux2#2014 (fixed by #2342).
        "restricted",
        description="Pod-security level of the Flux namespace.",
    )
    distribution: FluxDistribution = Field(description="Flux version and registry the operator installs.")
    components: tuple[Component, ...] = Field(DEFAULT_COMPONENTS, description="Flux controllers to install.")
    git: FluxGit = Field(description="The repository Flux syncs.")
    external_secrets_namespace: NonEmpty = Field(
        "external-secrets",
        description="Namespace for External Secrets; created here so the 1Password Connect Secrets exist first.",
    )
    external_secrets_pod_security: PodSecurity = Field(
        # The 1Password Connect chart's containers set no seccompProfile/runAsNonRoot (not restricted).
        "baseline",
        description="Pod-security level of the External Secrets namespace.",
    )

    @model_validator(mode="after")
    def _flux(self) -> FluxConfig:
        problems = []
        if len(set(self.components)) != len(self.components):
            problems.append("components: a controller is listed twice")
        for needed in ("source-controller", "kustomize-controller"):
            if needed not in self.components:
                problems.append(f"components: {needed} is needed to sync git.url")
        if self.external_secrets_namespace == self.namespace:
            problems.append(f"externalSecretsNamespace: must differ from namespace ({self.namespace})")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def credential_problems(flux: FluxConfig | None, git_credentials_given: bool) -> list[str]:
    """Lines for a mismatch between ``git.auth`` and whether a Git credential was given.

    Checked in the wiring (the credential is a secret input, not config), before
    anything is registered; a disabled layer is never checked.
    """
    if flux is None or not flux.enabled:
        return []
    where = f"{NAMESPACE}:flux.git.auth"
    auth = flux.git.auth
    if auth != "none" and not git_credentials_given:
        kind = "an SSH deploy key (PEM)" if auth == "ssh" else "an HTTPS token"
        return [
            f"{where}: {auth} needs {kind} as a secret: pulumi config set --secret {GIT_CREDENTIALS_KEY} "
            "(or its 1Password item); for a public repository say auth: none"
        ]
    if auth == "none" and git_credentials_given:
        return [f"{where}: none, but a Git credential is given ({GIT_CREDENTIALS_KEY}): say ssh or token"]
    return []
