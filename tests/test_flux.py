"""Flux bootstrap: operator chart → FluxInstance, bootstrap Secrets, what it waits for, config errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml
from pulumi.runtime import rpc

from components import flux as flux_component
from plan import offline
from stacks.loader import ConfigError
from tests.conftest import ROOT, home_config, reveal, run_config
from tests.conftest import config_errors as errors

CHART = "kubernetes:helm.sh/v4:Chart"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"
INSTANCE = "kubernetes:fluxcd.controlplane.io/v1:FluxInstance"
GITHUB_KNOWN_HOSTS = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
PUBLIC_GIT = {"url": "https://github.com/example/homelab.git", "auth": "none"}


def secret_data(resource: offline.Resource) -> dict[str, str]:
    """A captured Secret's ``data``, asserted wrapped as a Pulumi secret, then decoded."""
    assert rpc.is_rpc_secret(resource.inputs["data"]), f"{resource.name}: data is not a Pulumi secret"
    return {k: base64.b64decode(v).decode() for k, v in reveal(resource.inputs["data"]).items()}


def flux_resources(capture: offline.Capture) -> list[offline.Resource]:
    return [r for r in capture.resources if r.name == "flux" or r.name.startswith("flux-")]


FLUX_SECRET_KEYS = ("gitCredentials", "sopsAgeKey", "onepasswordConnectCredentials", "onepasswordConnectToken")


def without_flux_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` where none of Flux's secret inputs is given (other layers keep theirs)."""
    items = config.get("homelab:onepassword", {}).get("items", {})
    for key in FLUX_SECRET_KEYS:
        items.pop(key, None)
        config.pop(f"homelab:{key}", None)
    return config


def public_repo_config(**secrets: str) -> dict[str, Any]:
    """home syncing a public repository, Flux's secrets only those given here (as ``pulumi config set --secret``)."""
    config = without_flux_secrets(home_config())
    config["homelab:flux"]["git"] = dict(PUBLIC_GIT)
    for key, value in secrets.items():
        config[f"homelab:{key}"] = {"secure": value}
    return config


# --- the home stack ---------------------------------------------------------------------------


def test_layer_is_one_component_with_its_children(home: offline.Capture) -> None:
    (component,) = home.of_type("homelab:index:Flux")
    children = [r for r in flux_resources(home) if r is not component]
    assert children and all(r.parent == component.urn for r in children)
    assert {r.type for r in children} == {NAMESPACE, CHART, SECRET, INSTANCE}
    assert all("kubernetes" in r.provider for r in children), "children must use the cluster's provider"


def test_operator_chart_pinned_from_config(home: offline.Capture) -> None:
    chart = home.by_name("flux-operator")
    cfg = home_config()["homelab:flux"]["chart"]
    assert chart.inputs["chart"] == "oci://ghcr.io/controlplaneio-fluxcd/charts/flux-operator"
    assert chart.inputs["version"] == cfg["version"]
    assert chart.inputs["namespace"] == "flux-system"


def test_namespaces_carry_pod_security_labels(home: offline.Capture) -> None:
    levels = {}
    for ns in (home.by_name("flux-namespace"), home.by_name("flux-external-secrets-namespace")):
        labels = ns.inputs["metadata"]["labels"]
        assert {labels[f"pod-security.kubernetes.io/{m}"] for m in ("enforce", "audit", "warn")} == {
            labels["pod-security.kubernetes.io/enforce"]
        }
        levels[ns.inputs["metadata"]["name"]] = labels["pod-security.kubernetes.io/enforce"]
    assert levels == {"flux-system": "restricted", "external-secrets": "baseline"}


def test_instance_waits_for_the_operator_chart_and_every_bootstrap_secret(home: offline.Capture) -> None:
    instance = home.by_name("flux-instance")
    secrets = [r for r in flux_resources(home) if r.type == SECRET]
    assert len(secrets) == 4  # git, sops, Connect credentials, Connect token (home reads all from 1Password)
    assert home.by_name("flux-operator").urn in instance.dependencies
    assert {s.urn for s in secrets} <= set(instance.dependencies)


def test_operator_waits_for_cilium_and_coredns_only(home: offline.Capture) -> None:
    urns = {r.urn: r for r in home.resources}
    chart = home.by_name("flux-operator")
    waits_for = {urns[d].parent for d in chart.dependencies} - {chart.parent}
    components = {urns[p].name for p in waits_for}
    assert components == {"cilium", "coredns"}
    # Nothing of storage or certificates, whenever those layers exist.
    assert not [urns[d].name for d in chart.dependencies if any(k in urns[d].name for k in ("rook", "cert-manager"))]
    # The namespaces and Secrets are API objects only: they do not wait for the CNI.
    for r in flux_resources(home):
        if r.type in (NAMESPACE, SECRET):
            assert {urns[d].parent for d in r.dependencies} <= {chart.parent}, r.name


def test_instance_matches_its_crd(home: offline.Capture, schemas: Path) -> None:
    instance = home.by_name("flux-instance")
    crd = json.loads((schemas / "crds/fluxcd.controlplane.io/fluxinstance_v1.json").read_text())
    obj = {k: reveal(instance.inputs[k]) for k in ("apiVersion", "kind", "metadata", "spec")}
    jsonschema.validate(obj, crd)
    # The CRD's CEL rule (jsonschema does not run it): the only accepted name is "flux".
    assert obj["metadata"] == {"name": "flux", "namespace": "flux-system"}


def test_crd_check_catches_a_bad_instance(home: offline.Capture, schemas: Path) -> None:
    crd = json.loads((schemas / "crds/fluxcd.controlplane.io/fluxinstance_v1.json").read_text())
    spec = reveal(home.by_name("flux-instance").inputs["spec"])
    spec["components"] = ["source-controler"]
    with pytest.raises(jsonschema.ValidationError, match="source-controler"):
        jsonschema.validate({"apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance", "spec": spec}, crd)


def test_instance_syncs_this_repository(home: offline.Capture) -> None:
    spec = home.by_name("flux-instance").inputs["spec"]
    git = home_config()["homelab:flux"]["git"]
    assert spec["sync"] == {
        "kind": "GitRepository",
        "url": git["url"],
        "ref": "refs/heads/main",
        "path": "kubernetes/flux/cluster",
        "pullSecret": "flux-system",
    }
    assert spec["distribution"]["version"] == home_config()["homelab:flux"]["distribution"]["version"]
    assert (ROOT / spec["sync"]["path"] / "kustomization.yaml").is_file(), "the synced path must exist in the repo"


def test_ssh_pull_secret_has_flux_keys(home: offline.Capture) -> None:
    secret = home.by_name("flux-git-auth")
    assert secret.inputs["metadata"] == {"name": "flux-system", "namespace": "flux-system"}
    data = secret_data(secret)
    assert set(data) == {"identity", "known_hosts"}
    assert data["identity"].endswith("\n")
    assert data["known_hosts"] == home_config()["homelab:flux"]["git"]["knownHosts"] + "\n"


def test_sops_secret_and_decryption_patch(home: offline.Capture) -> None:
    secret = home.by_name("flux-sops-age")
    assert secret.inputs["metadata"] == {"name": "sops-age", "namespace": "flux-system"}
    assert set(secret_data(secret)) == {"age.agekey"}
    (patch,) = home.by_name("flux-instance").inputs["spec"]["kustomize"]["patches"]
    assert patch["target"] == {"kind": "Kustomization", "name": "flux-system"}
    body = yaml.safe_load(patch["patch"])
    assert body["metadata"]["name"] == "flux-system"
    assert body["spec"]["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}


def test_connect_secrets_match_the_gitops_tree(home: offline.Capture) -> None:
    """The names and keys Pulumi writes are the ones the tree's Connect release and secret store read."""
    tree = ROOT / "kubernetes/apps/external-secrets"
    release = yaml.safe_load((tree / "onepassword-connect/app/helmrelease.yaml").read_text())
    store = yaml.safe_load((tree / "stores/app/clustersecretstore.yaml").read_text())
    token_ref = store["spec"]["provider"]["onepassword"]["auth"]["secretRef"]["connectTokenSecretRef"]
    creds = home.by_name("flux-onepassword-credentials")
    token = home.by_name("flux-onepassword-token")
    assert creds.inputs["metadata"]["name"] == release["spec"]["values"]["connect"]["credentialsName"]
    assert set(secret_data(creds)) == {release["spec"]["values"]["connect"]["credentialsKey"]}
    assert token.inputs["metadata"] == {"name": token_ref["name"], "namespace": token_ref["namespace"]}
    assert set(secret_data(token)) == {token_ref["key"]}


def test_tree_sources_the_git_repository_the_instance_creates(home: offline.Capture) -> None:
    """With sync.name unset the operator names the GitRepository after the namespace."""
    ks = ROOT / "kubernetes/flux/cluster/ks.yaml"
    spec = home.by_name("flux-instance").inputs["spec"]["sync"]
    assert "name" not in spec
    for doc in yaml.safe_load_all(ks.read_text()):
        if doc and doc.get("kind") == "Kustomization":
            assert doc["spec"]["sourceRef"] == {
                "kind": "GitRepository",
                "name": "flux-system",
                "namespace": "flux-system",
            }


def test_tree_does_not_declare_the_namespaces_pulumi_owns() -> None:
    """Nothing is owned twice: the flux-system and external-secrets Namespaces are Pulumi's."""
    tree = ROOT / "kubernetes"
    owned = {"flux-system", "external-secrets"}
    declared = []
    for path in tree.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Namespace" and doc["metadata"]["name"] in owned:
                declared.append(f"{path.relative_to(ROOT)}: {doc['metadata']['name']}")
    assert declared == []


def test_no_secret_value_leaves_its_wrapper(home: offline.Capture) -> None:
    """Every input of the layer that holds a secret value is a wrapped Pulumi secret."""
    for r in flux_resources(home):
        plain = json.dumps(offline.plain(r.inputs))
        assert offline.FAKE_ONEPASSWORD_PREFIX not in plain, r.name
        assert base64.b64encode(offline.FAKE_ONEPASSWORD_PREFIX.encode()).decode()[:12] not in plain, r.name


# --- variants ---------------------------------------------------------------------------------


def test_public_repository_without_secrets_plans_cleanly() -> None:
    capture = run_config(public_repo_config())
    spec = capture.by_name("flux-instance").inputs["spec"]
    assert "pullSecret" not in spec["sync"]
    assert "kustomize" not in spec  # no sops-age Secret, so no decryption
    assert [r.name for r in flux_resources(capture) if r.type == SECRET] == []
    # The External Secrets namespace is still Pulumi's: the tree does not create it.
    assert capture.by_name("flux-external-secrets-namespace").inputs["metadata"]["name"] == "external-secrets"
    assert capture.by_name("flux-instance").dependencies.count(capture.by_name("flux-operator").urn) == 1


def test_token_pull_secret_for_https() -> None:
    config = public_repo_config(gitCredentials="ghp_offline")
    config["homelab:flux"]["git"] = {**PUBLIC_GIT, "auth": "token", "username": "flux"}
    capture = run_config(config)
    secret = capture.by_name("flux-git-auth")
    data = secret_data(secret)
    assert data == {"username": "flux", "password": "offline-secret-homelab:gitCredentials"}
    assert capture.by_name("flux-instance").inputs["spec"]["sync"]["pullSecret"] == "flux-system"
    assert secret.urn in capture.by_name("flux-instance").dependencies


def test_config_secrets_reach_their_keys_unchanged() -> None:
    capture = run_config(
        public_repo_config(
            sopsAgeKey="AGE-SECRET-KEY-OFFLINE",
            onepasswordConnectCredentials="b2ZmbGluZQ==",
            onepasswordConnectToken="offline-token",
        )
    )
    assert secret_data(capture.by_name("flux-sops-age")) == {"age.agekey": "offline-secret-homelab:sopsAgeKey\n"}
    creds = secret_data(capture.by_name("flux-onepassword-credentials"))
    assert creds == {"1password-credentials.json": "offline-secret-homelab:onepasswordConnectCredentials"}
    token = secret_data(capture.by_name("flux-onepassword-token"))
    assert token == {"token": "offline-secret-homelab:onepasswordConnectToken"}


def test_connect_credentials_become_what_op_session_reads() -> None:
    raw = '{"verifier": {"salt": "s"}, "version": "2"}\n'
    encoded = flux_component.connect_session(raw)
    assert base64.b64decode(encoded).decode() == raw.strip()
    assert flux_component.connect_session(encoded) == encoded  # already base64: kept


def test_disabled_flux_registers_nothing() -> None:
    config = home_config()
    config["homelab:flux"]["enabled"] = False
    capture = run_config(config)
    assert flux_resources(capture) == []
    assert capture.of_type(INSTANCE) == []
    config.pop("homelab:flux")
    assert flux_resources(run_config(config)) == []


def test_without_cilium_and_coredns_the_operator_waits_for_nothing() -> None:
    config = home_config()
    config["homelab:cilium"]["enabled"] = False
    config["homelab:coredns"]["enabled"] = False
    capture = run_config(config)
    chart = capture.by_name("flux-operator")
    assert chart.dependencies == [capture.by_name("flux-namespace").urn]


# --- bad config ---------------------------------------------------------------------------------


def with_flux(**changes: Any) -> dict[str, Any]:
    config = home_config()
    for path, value in changes.items():
        target = config["homelab:flux"]
        *parents, last = path.split("__")
        for p in parents:
            target = target[p]
        target[last] = value
    return config


BAD = [
    (
        "scp-like url",
        {"git__url": "git@github.com:example/homelab.git"},
        "homelab:flux.git.url: 'git@github.com:example/homelab.git' is scp-like; "
        "Flux needs ssh://git@github.com/example/homelab.git",
    ),
    (
        "http url",
        {"git__url": "http://github.com/example/homelab.git", "git__auth": "none", "git__knownHosts": None},
        "homelab:flux.git.url: 'http://github.com/example/homelab.git' must start with ssh:// or https://",
    ),
    (
        "ssh auth with https url",
        {"git__url": "https://github.com/example/homelab.git"},
        "homelab:flux.git.url: auth ssh (a deploy key) needs an ssh:// URL, got https://",
    ),
    (
        "token auth with ssh url",
        {"git__auth": "token", "git__knownHosts": None},
        "homelab:flux.git.url: an HTTPS token needs an https:// URL (auth is token), got ssh://",
    ),
    (
        "credentials in the url",
        {"git__url": "https://me:ghp_x@github.com/example/homelab.git", "git__auth": "token", "git__knownHosts": None},
        "homelab:flux.git.url: 'https://me:ghp_x@github.com/example/homelab.git' carries credentials; "
        "they would be stored in plaintext: use auth token instead",
    ),
    (
        "ssh without known hosts",
        {"git__knownHosts": None},
        "homelab:flux.git.knownHosts: auth ssh needs the Git host's public keys (ssh-keyscan <host>)",
    ),
    (
        "known hosts of another host",
        {"git__knownHosts": GITHUB_KNOWN_HOSTS.replace("github.com", "gitlab.com")},
        "homelab:flux.git.knownHosts: no line for github.com (the host of git.url)",
    ),
    (
        "known hosts for a non-default port",
        {"git__url": "ssh://git@git.home.lan:2222/homelab.git"},
        "homelab:flux.git.knownHosts: no line for [git.home.lan]:2222 (the host of git.url)",
    ),
    (
        "bad branch",
        {"git__branch": "feature..x"},
        "homelab:flux.git.branch: 'feature..x' is not a valid Git branch name",
    ),
    (
        "flux version range",
        {"distribution__version": "2.x"},
        "homelab:flux.distribution.version: '2.x' is not an exact Flux version X.Y.Z (no ranges, no 'v')",
    ),
    (
        "operator chart unpinned",
        {"chart__version": ">=0.47.0"},
        "homelab:flux.chart.version: '>=0.47.0' is not an exact chart version (X.Y.Z, no ranges)",
    ),
    (
        "unknown component",
        {"components": ["source-controller", "kustomize-controller", "image-controller"]},
        "homelab:flux.components[2]: Input should be 'source-controller', 'kustomize-controller', "
        "'helm-controller', 'notification-controller', 'image-reflector-controller', "
        "'image-automation-controller' or 'source-watcher' (got 'image-controller')",
    ),
    (
        "sync needs its controllers",
        {"components": ["source-controller", "helm-controller"]},
        "homelab:flux.components: kustomize-controller is needed to sync git.url",
    ),
    ("typo", {"git__brnach": "main"}, "homelab:flux.git.brnach: unknown key (check the spelling)"),
]


@pytest.mark.parametrize(("what", "changes", "line"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_gives_one_line(what: str, changes: dict[str, Any], line: str) -> None:
    config = with_flux(**changes)
    git = config["homelab:flux"]["git"]
    for key in [k for k, v in git.items() if v is None]:
        del git[key]
    assert errors(config) == [line]


class _Recorded(offline.Capture):
    """A Capture that remembers itself, to look at what a failed run registered."""

    last: ClassVar[_Recorded | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _Recorded.last = self


@pytest.mark.parametrize(
    ("auth", "secrets", "line"),
    [
        (
            "ssh",
            {},
            "homelab:flux.git.auth: ssh needs an SSH deploy key (PEM) as a secret: pulumi config set --secret "
            "homelab:gitCredentials (or its 1Password item); for a public repository say auth: none",
        ),
        (
            "token",
            {},
            "homelab:flux.git.auth: token needs an HTTPS token as a secret: pulumi config set --secret "
            "homelab:gitCredentials (or its 1Password item); for a public repository say auth: none",
        ),
        (
            "none",
            {"gitCredentials": "ghp_offline"},
            "homelab:flux.git.auth: none, but a Git credential is given (homelab:gitCredentials): say ssh or token",
        ),
    ],
)
def test_credential_and_auth_must_agree(
    auth: str, secrets: dict[str, str], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = public_repo_config(**secrets)
    git = config["homelab:flux"]["git"]
    if auth == "ssh":
        git.update(url="ssh://git@github.com/example/homelab.git", knownHosts=GITHUB_KNOWN_HOSTS)
    git["auth"] = auth
    _Recorded.last = None
    monkeypatch.setattr(offline, "Capture", _Recorded)
    with pytest.raises(ConfigError) as info:
        run_config(config)
    assert info.value.lines == [line]
    assert _Recorded.last is not None and _Recorded.last.resources == [], "nothing may be registered"


def test_disabled_flux_skips_the_credential_check() -> None:
    config = public_repo_config()
    config["homelab:flux"]["git"]["auth"] = "token"
    config["homelab:flux"]["enabled"] = False
    assert flux_resources(run_config(config)) == []
