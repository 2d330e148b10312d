"""The homelab policy pack's rules (CrossGuard), importable without starting a server.

``POLICIES`` is what ``policy/__main__.py`` hands to ``PolicyPack`` and what
``plan/policy.py`` runs over the offline plan. Each rule has a kebab-case
name, a description and an explicit enforcement level; the reason for the level
is in the comment above each rule.

What a policy can see decides how a rule is written:

- Resource validations get the resource's *inputs* with secrets decrypted, its
  URN (which spells the chain of parent types) and options (protect, parent,
  additional secret outputs). Values not known during preview raise
  ``UnknownValueError`` on access; the engine turns that into an advisory note.
- Remediations get the same inputs with secret values wrapped in
  :class:`pulumi_policy.Secret`, so only they can tell plaintext from secret.
- Stack validations get every resource with its outputs, parents and
  dependencies, but no invokes: control planes are counted from the Talos
  applies, not from the ``getConfiguration`` calls.

This module imports only the policy SDK, the standard library and PyYAML: the
Pulumi CLI runs it from the project's virtualenv, outside the program.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, _is_unknown

# libyaml's parser when PyYAML has it: Talos configs are parsed once per node.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Type tokens (as the SDKs register them; CustomResource is ``kubernetes:<apiVersion>:<kind>``).
STACK = "pulumi:pulumi:Stack"
PROVIDER_PREFIX = "pulumi:providers:"
COMPONENT_PREFIX = "homelab:index:"
HELM_CHART_V4 = "kubernetes:helm.sh/v4:Chart"
HELM_RELEASE_V3 = "kubernetes:helm.sh/v3:Release"
K8S_SECRET = "kubernetes:core/v1:Secret"
K8S_NAMESPACE = "kubernetes:core/v1:Namespace"
CEPH_CLUSTER = "kubernetes:ceph.rook.io/v1:CephCluster"
FLUX_INSTANCE = "kubernetes:fluxcd.controlplane.io/v1:FluxInstance"
TALOS_SECRETS = "talos:machine/secrets:Secrets"
TALOS_APPLY = "talos:machine/configurationApply:ConfigurationApply"
TALOS_BOOTSTRAP = "talos:machine/bootstrap:Bootstrap"
CLOUDFLARE_RECORDS = ("cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/record:Record")

# Exact versions only: no ranges (^1.2, ~1.2, >=1), wildcards (1.x) or empty ("latest").
EXACT_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
PSA_LABEL_PREFIX = "pod-security.kubernetes.io/"
PSA_ENFORCE = PSA_LABEL_PREFIX + "enforce"
PSA_LEVELS = ("privileged", "baseline", "restricted")
# Stack outputs whose name says they carry credentials.
CREDENTIAL_NAME_RE = re.compile(
    r"(kubeconfig|talosconfig|token|password|passphrase|secret|private_?key|credential)", re.I
)
# ...or whose value does (PEM keys, kubeconfig/talosconfig client keys).
CREDENTIAL_VALUE_RE = re.compile(r"PRIVATE KEY-----|client-key-data:|\bclient-key:|^\s*key:\s*\S{16,}", re.M)
# Inputs that hold a YAML machine config or patch (Talos): images inside are checked too.
TALOS_YAML_INPUTS = ("machineConfigurationInput", "configPatches")
TALOS_PATCH_ITEM_RE = re.compile(r"^configPatches\.\d+$")
# Option set by runners that hand stack policies the ``Secret`` markers (the offline plan).
SECRET_MARKERS = "secretMarkers"


def _raw(value: Any) -> Any:
    """The object behind pulumi_policy's proxies (they expose it as ``["__target"]``).

    The secrets proxy of a remediation unwraps :class:`Secret` on access; the
    raw target still holds the wrappers.
    """
    if isinstance(value, Mapping | Sequence) and not isinstance(value, str | bytes | dict | list):
        proxy: Any = value
        try:
            return proxy["__target"]
        except (KeyError, TypeError, IndexError):
            return value
    return value


def _get(props: Mapping[str, Any], *path: str) -> Any:
    """``props[a][b]…`` or None when a key is missing. Unknown values raise (the engine reports them)."""
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _children(value: Any) -> Iterator[tuple[str, Any]]:
    """(key, child) pairs of a mapping or list, skipping values unknown during preview."""
    if isinstance(value, Mapping):
        keys: Sequence[Any] = list(value)
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        keys = range(len(value))
    else:
        return
    for key in keys:
        try:
            yield str(key), value[key]
        except UnknownValueError:
            continue


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) below ``value``, depth first."""
    for key, child in _children(value):
        here = f"{path}.{key}" if path else key
        yield here, key, child
        yield from _walk(child, here)


def _unknown(value: Any) -> bool:
    """True for the engine's "not known during preview" sentinels (the SDK's own test)."""
    return bool(_is_unknown(value))


# --- helm-chart-pinned ----------------------------------------------------------------------
# Mandatory: without an exact version Helm installs whatever is newest when `up`
# runs, so preview and deployment differ and Renovate cannot propose the bump.
def _chart_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (HELM_CHART_V4, HELM_RELEASE_V3):
        return
    version = _get(args.props, "version")
    chart = _get(args.props, "chart")
    if not version:
        report(f"chart {chart!r} has no version: Helm would install the newest release", None)
    elif not EXACT_VERSION_RE.match(str(version)):
        report(f"chart {chart!r} version {version!r} is not an exact version (X.Y.Z)", None)


helm_chart_pinned = ResourceValidationPolicy(
    name="helm-chart-pinned",
    description="Helm charts are pinned to an exact version (X.Y.Z), set in stack config with a renovate comment.",
    validate=_chart_pinned,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- flux-distribution-pinned ---------------------------------------------------------------
# Mandatory: a FluxInstance accepts ranges such as "2.x" and then upgrades Flux on
# its own; the version must move only through a reviewed change.
def _flux_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != FLUX_INSTANCE:
        return
    version = _get(args.props, "spec", "distribution", "version")
    if not version or not EXACT_VERSION_RE.match(str(version)):
        report(f"spec.distribution.version {version!r} is not an exact Flux version (X.Y.Z)", None)


flux_distribution_pinned = ResourceValidationPolicy(
    name="flux-distribution-pinned",
    description="The FluxInstance pins an exact Flux distribution version, not a range.",
    validate=_flux_pinned,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- no-floating-images ---------------------------------------------------------------------
# Mandatory: ':latest' or no tag makes every pull a possible upgrade (an untagged
# Talos installer image would even reinstall a different Talos).
def image_problem(ref: str) -> str | None:
    """Why an image reference floats (untagged or ``:latest``), or None when pinned."""
    ref = ref.strip()
    if not ref or _unknown(ref):
        return None
    name, at, digest = ref.partition("@")
    if at and digest:
        return None  # a digest pins the image whatever the tag says
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag"
    if last.rsplit(":", 1)[1] == "latest":
        return "uses the tag 'latest'"
    return None


def _image_values(value: Any, path: str = "") -> Iterator[tuple[str, str | None]]:
    """(path, problem) for every image reference below ``value``."""
    for here, key, child in _walk(value, path):
        if isinstance(child, str) and (key == "image" or key.endswith("Image")):
            yield here, image_problem(child)
        elif key == "image" and isinstance(child, Mapping):
            repository = _get(child, "repository")
            tag = _get(child, "tag")
            if isinstance(tag, str) and tag.strip() == "latest":
                yield here, "uses the tag 'latest'"
            elif isinstance(repository, str) and not tag and ":" in repository.rsplit("/", 1)[-1]:
                yield here, image_problem(repository)
        elif isinstance(child, str) and (key in TALOS_YAML_INPUTS or TALOS_PATCH_ITEM_RE.match(here)):
            yield from _yaml_images(child, here)


@functools.lru_cache(maxsize=1024)
def _documents(text: str) -> tuple[Any, ...] | None:
    """The YAML documents of a string, None when it is not YAML; parsed once for every rule that reads it.

    Shared between rules: read the result, never change it.
    """
    try:
        return tuple(yaml.load_all(text, Loader=_YAML_LOADER))
    except yaml.YAMLError:
        return None


def _yaml_images(text: str, path: str) -> Iterator[tuple[str, str | None]]:
    """Images inside a YAML string (a Talos machine config or patch, possibly several documents)."""
    if _unknown(text):
        return
    docs = _documents(text)
    if docs is None:
        return
    for i, doc in enumerate(docs):
        if isinstance(doc, Mapping | list):
            yield from _image_values(doc, f"{path}[{i}]")


def _no_floating_images(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for path, problem in _image_values(args.props):
        if problem:
            report(f"{path}: image {problem}; pin a version tag (or a digest)", None)


no_floating_images = ResourceValidationPolicy(
    name="no-floating-images",
    description="Container images carry an exact tag or digest: never ':latest', never untagged.",
    validate=_no_floating_images,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- protect-cluster-state ------------------------------------------------------------------
# Mandatory: deleting the Talos machine secrets loses the cluster's PKI (no node
# accepts a new one), deleting the Ceph cluster loses the data. Neither comes back.
def _is_rook_cluster_chart(args: ResourceValidationArgs) -> bool:
    chart = _get(args.props, "chart")
    return args.resource_type == HELM_CHART_V4 and isinstance(chart, str) and chart.endswith("rook-ceph-cluster")


def _protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    critical = args.resource_type in (TALOS_SECRETS, CEPH_CLUSTER) or _is_rook_cluster_chart(args)
    if critical and not args.opts.protect:
        report(f"{args.name} holds state that cannot be recreated: set protect=True", None)


protect_cluster_state = ResourceValidationPolicy(
    name="protect-cluster-state",
    description="The Talos machine secrets and the Ceph cluster are protected against deletion.",
    validate=_protected,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- talos-secrets-marked-secret ------------------------------------------------------------
# Mandatory: talos.machine.Secrets does not mark its outputs secret, so without
# additional_secret_outputs the cluster's PKI lands in the state in plaintext.
TALOS_SECRET_OUTPUTS = (("machineSecrets", "machine_secrets"), ("clientConfiguration", "client_configuration"))


def _talos_secret_outputs(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != TALOS_SECRETS:
        return
    marked = set(args.opts.additional_secret_outputs or [])
    missing = [camel for camel, snake in TALOS_SECRET_OUTPUTS if camel not in marked and snake not in marked]
    if missing:
        report(f"outputs {', '.join(missing)} are not in additional_secret_outputs", None)


talos_secrets_marked_secret = ResourceValidationPolicy(
    name="talos-secrets-marked-secret",
    description="Talos machine secrets mark machineSecrets and clientConfiguration as secret outputs.",
    validate=_talos_secret_outputs,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- talos-apply-resets-gracefully ----------------------------------------------------------
# Mandatory: ConfigurationApply's on_destroy is a no-op unless reset is set, so a node
# removed from the inventory would stay an etcd member; graceful makes the reset cordon,
# drain and leave etcd first. The value must already be in state when the removal comes
# (terraform-provider-talos, on_destroy docs), so every apply carries it from the start.


def _apply_resets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != TALOS_APPLY:
        return
    on_destroy = args.props.get("onDestroy")
    if _unknown(on_destroy):
        return
    wanted = {"reset": True, "graceful": True}
    got = {k: (on_destroy or {}).get(k) for k in wanted}
    if got != wanted:
        report(f"{args.name}: onDestroy must be {{reset: true, graceful: true}} (got {on_destroy or 'none'})", None)


talos_apply_resets_gracefully = ResourceValidationPolicy(
    name="talos-apply-resets-gracefully",
    description="A Talos config apply resets its node gracefully (cordon, drain, leave etcd) when it is removed.",
    validate=_apply_resets,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- kubernetes-secret-values-secret --------------------------------------------------------
# Remediate: a validation sees values decrypted and cannot tell plaintext from
# secret, but a remediation sees the Secret markers and can fix the state
# without blocking the deployment. The offline plan reports each remediation as a
# failure, because the program itself should pass secrets.
SECRET_VALUE_FIELDS = ("data", "stringData")


def plaintext_secret_keys(props: Mapping[str, Any]) -> list[str]:
    """Paths (``data.key``) of a Kubernetes Secret's values that are not marked secret."""
    raw = _raw(props)
    found: list[str] = []
    for field in SECRET_VALUE_FIELDS:
        value = raw.get(field) if isinstance(raw, Mapping) else None
        if value is None or isinstance(value, Secret):
            continue
        inner = _raw(value)
        if isinstance(inner, Mapping):
            found.extend(f"{field}.{key}" for key, item in inner.items() if not isinstance(item, Secret))
    return found


def _wrap_secret_values(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    if args.resource_type != K8S_SECRET or not plaintext_secret_keys(args.props):
        return None
    raw = _raw(args.props)
    new = dict(raw)
    for field in SECRET_VALUE_FIELDS:
        value = raw.get(field)
        if value is None or isinstance(value, Secret):
            continue
        inner = _raw(value)
        if isinstance(inner, Mapping):
            new[field] = {k: v if isinstance(v, Secret) else Secret(v) for k, v in inner.items()}
    return new


kubernetes_secret_values_secret = ResourceValidationPolicy(
    name="kubernetes-secret-values-secret",
    description="Kubernetes Secret values (data, stringData) are Pulumi secrets, never plaintext in the state.",
    # The SDK's type says awaitable; it accepts a plain return value as well (policy.py, Remediate).
    remediate=cast(Any, _wrap_secret_values),
    enforcement_level=EnforcementLevel.REMEDIATE,
)


# --- credential-outputs-secret --------------------------------------------------------------
# Mandatory: a stack output is printed by `pulumi stack output` and stored in the
# state; a kubeconfig or talosconfig there in plaintext is cluster-admin for anyone
# who reads either. The Python policy SDK hands stack validations decrypted values,
# so the markers are only visible where the runner keeps them (the offline plan sets
# the `secretMarkers` option); elsewhere the rule says it is not applicable.
def _credential_output(name: str, value: Any) -> bool:
    if CREDENTIAL_NAME_RE.search(name):
        return True
    text = value.value if isinstance(value, Secret) else value
    return isinstance(text, str) and not _unknown(text) and bool(CREDENTIAL_VALUE_RE.search(text))


def _outputs_secret(args: StackValidationArgs, report: ReportViolation) -> None:
    if not args.get_config().get(SECRET_MARKERS):
        args.not_applicable("this runner hands stack policies decrypted values; the offline plan checks it")
    for res in args.resources:
        if res.resource_type != STACK:
            continue
        outputs = _raw(res.props)
        for key in list(outputs):
            value = outputs[key]
            if _credential_output(key, value) and not isinstance(value, Secret):
                report(f"stack output {key!r} carries credentials but is not secret: use Output.secret", res.urn)


credential_outputs_secret = StackValidationPolicy(
    name="credential-outputs-secret",
    description="Stack outputs that carry credentials (kubeconfig, talosconfig, tokens, keys) are secret.",
    validate=_outputs_secret,
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            SECRET_MARKERS: {
                "type": "boolean",
                "description": "Set by runners that pass secret values wrapped in pulumi_policy.Secret.",
            }
        }
    ),
)


# --- odd-control-planes ---------------------------------------------------------------------
# Advisory: an even etcd membership tolerates no more failures than one member
# fewer (2 tolerate 0, like 1; 4 tolerate 1, like 3) while adding a member that can
# fail. Not mandatory, because replacing a control plane passes through an even
# count (add the new one, then remove the old one) and must not be blocked.
def _apply_role(res: PolicyResource) -> str | None:
    """The machine type from the apply's machine config, when it is known (not during a first preview)."""
    try:
        text = _get(res.props, "machineConfigurationInput")
    except UnknownValueError:
        return None
    if not isinstance(text, str) or _unknown(text):
        return None
    for doc in _documents(text) or ():
        role = _get(doc, "machine", "type") if isinstance(doc, Mapping) else None
        if isinstance(role, str):
            return "controlplane" if role in ("controlplane", "init") else role
    return None


def control_plane_applies(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    """The ConfigurationApply resources of control-plane nodes.

    The machine config says so once it is known. Before that (the first preview,
    or offline) the graph does: control planes are applied one after another, so
    an apply that depends on another apply, or that another apply or the
    Bootstrap depends on, is a control plane; worker applies stand alone.
    """
    applies = [r for r in resources if r.resource_type == TALOS_APPLY]
    apply_urns = {r.urn for r in applies}
    linked: set[str] = set()
    for r in resources:
        deps = {d.urn for d in r.dependencies} & apply_urns
        if r.resource_type == TALOS_APPLY and deps:
            linked.add(r.urn)
            linked.update(deps)
        elif r.resource_type == TALOS_BOOTSTRAP:
            linked.update(deps)
    out = []
    for r in applies:
        role = _apply_role(r)
        if role == "controlplane" or (role is None and r.urn in linked):
            out.append(r)
    return out


def _odd_control_planes(args: StackValidationArgs, report: ReportViolation) -> None:
    if not any(r.resource_type == TALOS_APPLY for r in args.resources):
        args.not_applicable("no Talos nodes in this stack")
    count = len(control_plane_applies(args.resources))
    if count % 2 == 0:
        report(
            f"{count} control planes: an even etcd membership tolerates no more failures than {count - 1}; "
            "use an odd number",
            None,
        )


odd_control_planes = StackValidationPolicy(
    name="odd-control-planes",
    description="The cluster has an odd number of control planes (etcd quorum).",
    validate=_odd_control_planes,
    enforcement_level=EnforcementLevel.ADVISORY,
)


# --- namespace-pod-security -----------------------------------------------------------------
# Mandatory: Talos enforces pod-security 'baseline' by default; a namespace that
# runs privileged pods (CNI, storage) without its label deploys fine and then its
# pods are rejected at admission, far from the cause. Every namespace says its level.
def _namespace_psa(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != K8S_NAMESPACE:
        return
    labels = _get(args.props, "metadata", "labels") or {}
    enforce = _get(labels, PSA_ENFORCE)
    if enforce is None:
        report(f"namespace {args.name} has no {PSA_ENFORCE} label (one of {', '.join(PSA_LEVELS)})", None)
    for key, value in _children(labels):
        if key.startswith(PSA_LABEL_PREFIX) and not key.endswith("-version") and value not in PSA_LEVELS:
            report(f"label {key}={value!r} is not a pod-security level ({', '.join(PSA_LEVELS)})", None)


namespace_pod_security = ResourceValidationPolicy(
    name="namespace-pod-security",
    description="Every namespace the program creates carries a pod-security.kubernetes.io/enforce label.",
    validate=_namespace_psa,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- cloudflare-private-not-proxied ---------------------------------------------------------
# Mandatory: Cloudflare's proxy cannot reach a private address (visitors get 5xx
# errors) and the record publishes the LAN's layout; it is always a mistake.
# Addresses Cloudflare's edge cannot reach. Documentation ranges (RFC 5737/3849)
# are not here: examples use them as stand-ins for public addresses.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)


def private_address(value: Any) -> bool:
    """True for addresses on a private network (RFC 1918, CGNAT, loopback, link-local, ULA)."""
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in PRIVATE_NETWORKS)


def _private_not_proxied(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in CLOUDFLARE_RECORDS:
        return
    if _get(args.props, "proxied") not in (True, "true"):
        return
    content = _get(args.props, "content") or _get(args.props, "value")
    if private_address(content):
        report(f"record {_get(args.props, 'name')!r} points at private address {content} and is proxied", None)


cloudflare_private_not_proxied = ResourceValidationPolicy(
    name="cloudflare-private-not-proxied",
    description="Cloudflare records pointing at private addresses are never proxied.",
    validate=_private_not_proxied,
    enforcement_level=EnforcementLevel.MANDATORY,
)


# --- resources-in-components ----------------------------------------------------------------
# Mandatory: a resource's URN is fixed when it is created; a stray top-level
# resource moved into its component later needs an alias to avoid a replacement.
# Cheap to fix before the first `up`, costly after. Providers may live at the top.
def component_ancestors(urn: str) -> list[str]:
    """Parent types spelled in a URN (``urn:pulumi:stack::project::a$b$type::name`` → [a, b])."""
    parts = urn.split("::", 3)
    if len(parts) < 4:
        return []
    return parts[2].split("$")[:-1]


def _in_component(args: ResourceValidationArgs, report: ReportViolation) -> None:
    kind = args.resource_type
    if kind == STACK or kind.startswith(PROVIDER_PREFIX) or kind.startswith(COMPONENT_PREFIX):
        return
    if not any(t.startswith(COMPONENT_PREFIX) for t in component_ancestors(args.urn)):
        report(f"{kind} {args.name} is not inside a {COMPONENT_PREFIX}* component: give it parent=<component>", None)


resources_in_components = ResourceValidationPolicy(
    name="resources-in-components",
    description="Every resource lives inside a homelab:index:* component; only providers sit at the top level.",
    validate=_in_component,
    enforcement_level=EnforcementLevel.MANDATORY,
)


POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    helm_chart_pinned,
    flux_distribution_pinned,
    no_floating_images,
    protect_cluster_state,
    talos_secrets_marked_secret,
    talos_apply_resets_gracefully,
    kubernetes_secret_values_secret,
    credential_outputs_secret,
    odd_control_planes,
    namespace_pod_security,
    cloudflare_private_not_proxied,
    resources_in_components,
]
"""Every rule of the pack, in the order they run."""
