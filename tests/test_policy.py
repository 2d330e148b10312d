"""The policy pack: each rule with hand-built arguments, then the whole pack over captured graphs."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties, serialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from plan import offline, report, yaml12
from plan import policy as pack
from policy import rules
from tests.conftest import generated_nodes, home_config, run_config

ROOT = Path(__file__).resolve().parent.parent
STACK_URN = "urn:pulumi:home::homelab::pulumi:pulumi:Stack::homelab-home"


def secret(value: Any) -> dict[str, Any]:
    """A value marked secret, as the engine sends it."""
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def urn(type_: str, name: str, parents: tuple[str, ...] = ("homelab:index:Test",)) -> str:
    return f"urn:pulumi:home::homelab::{'$'.join((*parents, type_))}::{name}"


def opts(protect: bool = False, secret_outputs: list[str] | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), secret_outputs or [], None)


def args(type_: str, props: dict[str, Any], name: str = "res", **kw: Any) -> ResourceValidationArgs:
    """Validation arguments as the engine builds them: secrets decrypted, unknowns checked on access."""
    where = kw.pop("urn", None) or urn(type_, name)
    return ResourceValidationArgs(
        type_, unknown_checking_proxy(deserialize_properties(props)), where, name, opts(**kw), None
    )


def remediation_args(type_: str, props: dict[str, Any], name: str = "res") -> ResourceValidationArgs:
    """Remediation arguments: secret values wrapped in Secret behind the SDK's proxy."""
    return ResourceValidationArgs(type_, deserialize_properties(props, True), urn(type_, name), name, opts(), None)


def collector() -> tuple[list[str], Callable[[str, str | None], None]]:
    found: list[str] = []

    def report(message: str, _urn: str | None = None) -> None:
        found.append(message)

    return found, report


def check(policy: ResourceValidationPolicy, a: ResourceValidationArgs) -> list[str]:
    found, report = collector()
    policy.validate(a, report)
    return found


def check_stack(
    policy: StackValidationPolicy, resources: list[PolicyResource], config: dict[str, Any] | None = None
) -> list[str]:
    found, report = collector()
    policy.validate(StackValidationArgs(resources, config), report)
    return found


def res(
    type_: str, name: str, props: dict[str, Any] | None = None, deps: list[PolicyResource] | None = None
) -> PolicyResource:
    return PolicyResource(
        type_, unknown_checking_proxy(props or {}), urn(type_, name), name, opts(), None, None, deps or [], {}
    )


# --- the pack's shape ------------------------------------------------------------------------


def test_every_policy_is_named_described_and_levelled():
    names = [p.name for p in rules.POLICIES]
    assert len(names) == len(set(names))
    for p in rules.POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", p.name), p.name
        assert p.description.endswith(".") and len(p.description) > 20
        assert isinstance(p.enforcement_level, EnforcementLevel)
        assert p.enforcement_level != EnforcementLevel.DISABLED


def test_the_plan_runs_the_pack():
    assert pack.plan_check in report.CHECKS


def test_pack_entry_point_uses_the_rules():
    main = (ROOT / "policy" / "__main__.py").read_text()
    assert "PolicyPack(" in main and "policies=list(POLICIES)" in main
    meta = yaml12.load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"]["name"] == "python"


# --- helm-chart-pinned -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.18.2", "v0.26.1", "45.1.0-rc.1"])
def test_chart_with_exact_version_passes(version):
    assert check(rules.helm_chart_pinned, args(rules.HELM_CHART_V4, {"chart": "cilium", "version": version})) == []


@pytest.mark.parametrize("version", [None, "", "^1.18.0", "~1.18", "1.x", ">=1.0.0", "latest"])
def test_chart_without_exact_version_fails(version):
    props = {"chart": "cilium"} | ({"version": version} if version is not None else {})
    found = check(rules.helm_chart_pinned, args(rules.HELM_CHART_V4, props))
    assert len(found) == 1 and "cilium" in found[0]


def test_helm_v3_release_is_checked_too():
    assert check(rules.helm_chart_pinned, args(rules.HELM_RELEASE_V3, {"chart": "x", "version": "1.*"}))


# --- flux-distribution-pinned ----------------------------------------------------------------


def test_flux_instance_version():
    def flux(version: str) -> ResourceValidationArgs:
        return args(rules.FLUX_INSTANCE, {"spec": {"distribution": {"version": version}}})

    assert check(rules.flux_distribution_pinned, flux("2.7.2")) == []
    assert check(rules.flux_distribution_pinned, flux("2.x"))


# --- no-floating-images ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "ghcr.io/siderolabs/installer:v1.13.0",
        "registry.local:5000/app:1.0",
        "nginx@sha256:" + "a" * 64,
        "nginx:latest@sha256:" + "b" * 64,
    ],
)
def test_pinned_image_passes(ref):
    assert rules.image_problem(ref) is None
    assert check(rules.no_floating_images, args("kubernetes:core/v1:Pod", {"spec": {"image": ref}})) == []


@pytest.mark.parametrize(
    ("ref", "why"),
    [("nginx", "no tag"), ("nginx:latest", "latest"), ("registry.local:5000/app", "no tag")],
)
def test_floating_image_fails(ref, why):
    found = check(rules.no_floating_images, args("kubernetes:core/v1:Pod", {"spec": {"containers": [{"image": ref}]}}))
    assert len(found) == 1 and why in found[0] and "spec.containers.0.image" in found[0]


def test_chart_values_repository_and_tag():
    def chart(image: dict[str, Any]) -> ResourceValidationArgs:
        return args(rules.HELM_CHART_V4, {"chart": "x", "version": "1.0.0", "values": {"operator": {"image": image}}})

    assert check(rules.no_floating_images, chart({"repository": "quay.io/cilium/operator", "tag": "v1.18.2"})) == []
    # No tag: the chart's appVersion, pinned by the chart version.
    assert check(rules.no_floating_images, chart({"repository": "quay.io/cilium/operator"})) == []
    assert check(rules.no_floating_images, chart({"repository": "quay.io/cilium/operator", "tag": "latest"}))
    assert check(rules.no_floating_images, chart({"repository": "quay.io/cilium/operator:latest"}))


def test_installer_image_inside_talos_machine_config():
    def apply(image: str) -> ResourceValidationArgs:
        config = f"version: v1alpha1\nmachine:\n  type: worker\n  install:\n    image: {image}\n"
        return args(rules.TALOS_APPLY, {"node": "10.0.10.14", "machineConfigurationInput": secret(config)})

    assert check(rules.no_floating_images, apply("factory.talos.dev/installer/abc:v1.13.0")) == []
    found = check(rules.no_floating_images, apply("factory.talos.dev/installer/abc"))
    assert len(found) == 1 and "machine.install.image" in found[0]


def test_installer_image_inside_talos_config_patches():
    patch = "machine:\n  install:\n    image: ghcr.io/siderolabs/installer:latest\n---\nkind: HostnameConfig\n"
    found = check(rules.no_floating_images, args(rules.TALOS_APPLY, {"configPatches": [patch]}))
    assert len(found) == 1 and "latest" in found[0]


def test_unknown_image_is_skipped_during_preview():
    props = {"spec": {"image": UNKNOWN_STRING_VALUE, "sidecar": {"image": "busybox"}}}
    found = check(rules.no_floating_images, args("kubernetes:core/v1:Pod", props))
    assert len(found) == 1 and "sidecar" in found[0]


# --- protect-cluster-state / talos-secrets-marked-secret -------------------------------------


@pytest.mark.parametrize(
    ("type_", "props"),
    [
        (rules.TALOS_SECRETS, {"talosVersion": "v1.13.0"}),
        (rules.CEPH_CLUSTER, {"spec": {"cephVersion": {"image": "quay.io/ceph/ceph:v19.2.3"}}}),
        (rules.HELM_CHART_V4, {"chart": "rook-ceph-cluster", "version": "1.18.3"}),
    ],
)
def test_cluster_state_must_be_protected(type_, props):
    assert check(rules.protect_cluster_state, args(type_, props, protect=True)) == []
    found = check(rules.protect_cluster_state, args(type_, props, protect=False))
    assert len(found) == 1 and "protect=True" in found[0]


@pytest.mark.parametrize(
    ("on_destroy", "ok"),
    [
        ({"reset": True, "graceful": True, "reboot": False}, True),
        ({"reset": True, "graceful": True}, True),
        ({"reset": True, "graceful": False}, False),
        ({"graceful": True}, False),
        (None, False),
    ],
)
def test_talos_applies_reset_gracefully(on_destroy, ok):
    props = {"node": "10.0.10.14", "applyMode": "auto"}
    if on_destroy is not None:
        props["onDestroy"] = on_destroy
    found = check(rules.talos_apply_resets_gracefully, args(rules.TALOS_APPLY, props))
    assert (found == []) is ok
    if not ok:
        assert "onDestroy must be {reset: true, graceful: true}" in found[0]


def test_other_resources_need_no_protection():
    assert check(rules.protect_cluster_state, args(rules.HELM_CHART_V4, {"chart": "cilium", "version": "1.0.0"})) == []


def test_talos_secrets_outputs_marked_secret():
    props = {"talosVersion": "v1.13.0"}
    ok = args(rules.TALOS_SECRETS, props, secret_outputs=["machineSecrets", "clientConfiguration"])
    assert check(rules.talos_secrets_marked_secret, ok) == []
    half = args(rules.TALOS_SECRETS, props, secret_outputs=["machineSecrets"])
    found = check(rules.talos_secrets_marked_secret, half)
    assert found == ["outputs clientConfiguration are not in additional_secret_outputs"]


# --- kubernetes-secret-values-secret (remediation) -------------------------------------------


def test_remediation_wraps_plaintext_values_only():
    props = {"metadata": {"name": "s"}, "stringData": {"token": secret("s3cr3t"), "user": "admin"}}
    a = remediation_args(rules.K8S_SECRET, props)
    assert rules.plaintext_secret_keys(a.props) == ["stringData.user"]
    new: Any = rules.kubernetes_secret_values_secret.remediate(a)
    assert new is not None
    wire = serialize_properties(new)
    assert rpc.is_rpc_secret(wire["stringData"]["user"]) and wire["stringData"]["user"]["value"] == "admin"
    assert rpc.is_rpc_secret(wire["stringData"]["token"]) and wire["stringData"]["token"]["value"] == "s3cr3t"
    assert wire["metadata"] == {"name": "s"}


@pytest.mark.parametrize(
    "props",
    [
        {"data": {"token": secret("czNjcjN0")}, "stringData": {"a": secret("b")}},
        {"stringData": secret({"token": "s3cr3t"})},
        {"metadata": {"name": "empty"}},
    ],
)
def test_remediation_leaves_secret_values_alone(props):
    a = remediation_args(rules.K8S_SECRET, props)
    assert rules.plaintext_secret_keys(a.props) == []
    assert rules.kubernetes_secret_values_secret.remediate(a) is None


def test_remediation_only_touches_kubernetes_secrets():
    a = remediation_args("kubernetes:core/v1:ConfigMap", {"data": {"k": "v"}})
    assert rules.kubernetes_secret_values_secret.remediate(a) is None


# --- credential-outputs-secret ---------------------------------------------------------------


def stack_resource(outputs: dict[str, Any]) -> PolicyResource:
    return PolicyResource(rules.STACK, deserialize_properties(outputs, True), STACK_URN, "homelab-home", opts(), None,
                          None, [], {})  # fmt: skip


def test_credential_outputs_must_be_secret():
    markers = {rules.SECRET_MARKERS: True}
    ok = stack_resource({"kubeconfig": secret("apiVersion: v1\n"), "endpoint": "https://10.0.10.10:6443"})
    assert check_stack(rules.credential_outputs_secret, [ok], markers) == []
    bad = stack_resource({"kubeconfig": secret("x"), "talosconfig": "context: home\n"})
    found = check_stack(rules.credential_outputs_secret, [bad], markers)
    assert len(found) == 1 and "talosconfig" in found[0]


def test_credential_output_found_by_its_value():
    leaked = stack_resource({"admin": "users:\n- user:\n    client-key-data: LS0tLS1CRUdJTg==\n"})
    found = check_stack(rules.credential_outputs_secret, [leaked], {rules.SECRET_MARKERS: True})
    assert len(found) == 1 and "'admin'" in found[0]


def test_credential_outputs_not_applicable_without_markers():
    # The engine's stack validations see decrypted values: the rule must not guess.
    with pytest.raises(_NotApplicableError):
        check_stack(rules.credential_outputs_secret, [stack_resource({"talosconfig": "x"})])


# --- odd-control-planes ----------------------------------------------------------------------


def talos_nodes(control_planes: int, workers: int) -> list[PolicyResource]:
    """Applies as the Talos layer wires them: control planes chained, bootstrap on the first."""
    out: list[PolicyResource] = []
    previous: PolicyResource | None = None
    first: PolicyResource | None = None
    for i in range(control_planes):
        apply = res(rules.TALOS_APPLY, f"apply-cp{i}", {"machineConfigurationInput": UNKNOWN_STRING_VALUE},
                    [previous] if previous else [])  # fmt: skip
        first = first or apply
        previous = apply
        out.append(apply)
    out.extend(res(rules.TALOS_APPLY, f"apply-w{i}") for i in range(workers))
    if first:
        out.append(res(rules.TALOS_BOOTSTRAP, "bootstrap", {}, [first]))
    return out


@pytest.mark.parametrize(("cps", "workers"), [(1, 0), (1, 3), (3, 3), (5, 7)])
def test_odd_control_planes_pass(cps, workers):
    resources = talos_nodes(cps, workers)
    assert len(rules.control_plane_applies(resources)) == cps
    assert check_stack(rules.odd_control_planes, resources) == []


@pytest.mark.parametrize(("cps", "workers"), [(2, 1), (4, 0)])
def test_even_control_planes_fail(cps, workers):
    found = check_stack(rules.odd_control_planes, talos_nodes(cps, workers))
    assert len(found) == 1 and f"{cps} control planes" in found[0]


def test_control_planes_read_from_known_machine_configs():
    def node(name: str, role: str) -> PolicyResource:
        return res(rules.TALOS_APPLY, name, {"machineConfigurationInput": f"machine:\n  type: {role}\n"})

    three = [node("a", "controlplane"), node("b", "controlplane"), node("c", "init"), node("d", "worker")]
    assert check_stack(rules.odd_control_planes, three) == []
    assert check_stack(rules.odd_control_planes, three[:2])


def test_odd_control_planes_not_applicable_without_talos():
    with pytest.raises(_NotApplicableError):
        check_stack(rules.odd_control_planes, [res("kubernetes:core/v1:Namespace", "ns")])


# --- namespace-pod-security ------------------------------------------------------------------


def namespace(labels: dict[str, str] | None) -> ResourceValidationArgs:
    meta: dict[str, Any] = {"name": "rook-ceph"} | ({"labels": labels} if labels is not None else {})
    return args(rules.K8S_NAMESPACE, {"metadata": meta}, name="rook-ceph-namespace")


def test_namespace_with_pod_security_labels_passes():
    labels = {f"pod-security.kubernetes.io/{m}": "privileged" for m in ("enforce", "audit", "warn")}
    assert check(rules.namespace_pod_security, namespace(labels | {"app": "rook"})) == []


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        (None, "no pod-security.kubernetes.io/enforce"),
        ({"app": "rook"}, "no pod-security.kubernetes.io/enforce"),
        ({"pod-security.kubernetes.io/enforce": "yolo"}, "not a pod-security level"),
    ],
)
def test_namespace_without_valid_labels_fails(labels, why):
    found = check(rules.namespace_pod_security, namespace(labels))
    assert found and why in found[0]


# --- cloudflare-private-not-proxied ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "proxied", "bad"),
    [
        ("10.0.10.50", True, True),
        ("192.168.1.2", True, True),
        ("100.64.1.1", True, True),
        ("fd00::1", True, True),
        ("10.0.10.50", False, False),
        ("203.0.113.10", True, False),
        ("home.example.com", True, False),
    ],
)
def test_private_addresses_never_proxied(content, proxied, bad):
    props = {"name": "app.example.com", "type": "A", "content": content, "proxied": proxied}
    for type_ in rules.CLOUDFLARE_RECORDS:
        assert bool(check(rules.cloudflare_private_not_proxied, args(type_, props))) is bad


# --- resources-in-components -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "parents", "bad"),
    [
        ("kubernetes:core/v1:Namespace", ("homelab:index:Cilium",), False),
        ("kubernetes:core/v1:ConfigMap", ("homelab:index:Flux", "kubernetes:helm.sh/v4:Chart"), False),
        ("homelab:index:Cilium", (), False),
        ("pulumi:providers:kubernetes", (), False),
        ("pulumi:providers:kubernetes", ("pulumi:pulumi:Stack",), False),
        ("kubernetes:core/v1:Namespace", (), True),  # the engine's URN of a top-level resource
        ("kubernetes:core/v1:Namespace", ("pulumi:pulumi:Stack",), True),  # the mocks' spelling
        ("kubernetes:core/v1:Secret", ("kubernetes:helm.sh/v4:Chart",), True),
    ],
)
def test_resources_live_in_components(type_, parents, bad):
    a = args(type_, {}, name="thing", urn=urn(type_, "thing", parents))
    assert bool(check(rules.resources_in_components, a)) is bad


# --- the whole pack over captured graphs -----------------------------------------------------


def blocking(capture: offline.Capture) -> list[pack.Violation]:
    return [v for v in pack.run(capture) if v.blocking]


def with_resource(capture: offline.Capture, pick: Callable[[offline.Resource], bool], change) -> offline.Capture:
    """A copy of ``capture`` with the first resource ``pick`` selects changed by ``change(resource)``."""
    target = next((r for r in capture.resources if pick(r)), None)
    assert target is not None, "the home graph lacks the resource this test breaks"
    changed = dataclasses.replace(target, inputs=copy.deepcopy(target.inputs))
    change(changed)
    resources = [changed if r is target else r for r in capture.resources]
    return dataclasses.replace(capture, resources=resources, secret_outputs=set(capture.secret_outputs))


def of_type(type_: str) -> Callable[[offline.Resource], bool]:
    return lambda r: r.type == type_


def policies_hit(capture: offline.Capture) -> set[str]:
    return {v.policy for v in pack.run(capture)}


def test_home_has_no_blocking_violation(home):
    assert blocking(home) == []


def test_pack_sees_the_whole_home_graph(home):
    # Guards the check above: the pack saw the real graph, not an empty one.
    runner = pack.Runner(home)
    assert len(runner.entries) == len(home.resources) > 10
    assert any(r.type == rules.TALOS_SECRETS and r.protect for r in home.resources)


def test_unprotected_talos_secrets_caught(home):
    def unprotect(r):
        r.protect = False

    broken = with_resource(home, of_type(rules.TALOS_SECRETS), unprotect)
    found = blocking(broken)
    assert [v.policy for v in found] == ["protect-cluster-state"]
    assert found[0].resource.endswith("-secrets")


def test_unprotected_ceph_cluster_caught(home):
    def unprotect(r):
        r.protect = False

    found = blocking(with_resource(home, of_type(rules.CEPH_CLUSTER), unprotect))
    assert [v.policy for v in found] == ["protect-cluster-state"]


def test_latest_ceph_image_caught(home):
    def float_image(r):
        r.inputs["spec"]["cephVersion"]["image"] = "quay.io/ceph/ceph:latest"

    found = blocking(with_resource(home, of_type(rules.CEPH_CLUSTER), float_image))
    assert [v.policy for v in found] == ["no-floating-images"] and "spec.cephVersion.image" in found[0].message


def test_latest_image_in_talos_config_caught(home):
    config = "machine:\n  type: worker\n  install:\n    image: ghcr.io/siderolabs/installer:latest\n"

    def float_image(r):
        r.inputs["machineConfigurationInput"] = secret(config)

    broken = with_resource(home, of_type(rules.TALOS_APPLY), float_image)
    assert "no-floating-images" in {v.policy for v in blocking(broken)}


def test_latest_image_in_chart_values_caught(home):
    def float_image(r):
        r.inputs.setdefault("values", {})["image"] = {"repository": "quay.io/x/y", "tag": "latest"}

    broken = with_resource(home, of_type(rules.HELM_CHART_V4), float_image)
    assert "no-floating-images" in {v.policy for v in blocking(broken)}


def test_unpinned_chart_caught(home):
    def unpin(r):
        r.inputs["version"] = "^1.0.0"

    broken = with_resource(home, of_type(rules.HELM_CHART_V4), unpin)
    assert "helm-chart-pinned" in {v.policy for v in blocking(broken)}


def test_two_control_planes_caught():
    config = home_config()
    config["homelab:nodes"] = generated_nodes(2, 1)
    found = [v for v in pack.run(run_config(config)) if v.policy == "odd-control-planes"]
    assert len(found) == 1 and found[0].level == "advisory" and "2 control planes" in found[0].message


def test_unlabelled_namespace_caught(home):
    def unlabel(r):
        r.inputs["metadata"].pop("labels", None)

    broken = with_resource(home, of_type(rules.K8S_NAMESPACE), unlabel)
    assert [v.policy for v in blocking(broken)] == ["namespace-pod-security"]


def test_plaintext_kubernetes_secret_caught(home):
    def leak(r):
        field = "stringData" if "stringData" in r.inputs else "data"
        r.inputs[field] = {"token": "plaintext"}

    broken = with_resource(home, of_type(rules.K8S_SECRET), leak)
    found = blocking(broken)
    assert len(found) == 1 and found[0].level == "remediate" and found[0].message.endswith(".token")


def test_plaintext_stack_output_caught(home):
    broken = dataclasses.replace(home, secret_outputs=set(home.secret_outputs) - {"talosconfig"})
    found = blocking(broken)
    assert [v.policy for v in found] == ["credential-outputs-secret"] and "talosconfig" in found[0].message


def test_proxied_private_record_caught(home):
    def point_inside(r):
        r.inputs["content"] = "10.0.10.50"
        r.inputs["proxied"] = True

    broken = with_resource(home, of_type(rules.CLOUDFLARE_RECORDS[0]), point_inside)
    assert [v.policy for v in blocking(broken)] == ["cloudflare-private-not-proxied"]


def test_stray_top_level_resource_caught(home):
    stray = offline.Resource(
        urn="urn:pulumi:home::homelab::pulumi:pulumi:Stack$kubernetes:core/v1:ConfigMap::stray",
        type="kubernetes:core/v1:ConfigMap",
        name="stray",
        custom=True,
        parent=pack.stack_urn(home),
        dependencies=[],
        property_dependencies={},
        inputs={"data": {"a": "b"}},
        protect=False,
        additional_secret_outputs=[],
        provider="",
        remote=False,
        aliases=0,
    )
    broken = dataclasses.replace(home, resources=[*home.resources, stray])
    found = blocking(broken)
    assert [(v.policy, v.resource) for v in found] == [("resources-in-components", "stray")]


def test_unknown_value_becomes_an_advisory_note(home):
    def unknown_version(r):
        r.inputs["version"] = rpc.UNKNOWN

    broken = with_resource(home, of_type(rules.HELM_CHART_V4), unknown_version)
    notes = [v for v in pack.run(broken) if v.policy == "helm-chart-pinned"]
    assert len(notes) == 1 and notes[0].level == "advisory" and "during preview" in notes[0].message


def test_plan_check_prints_and_fails_on_blocking(home, tmp_path, capsys):
    assert pack.plan_check(home, tmp_path / "ok") == 0
    assert json.loads((tmp_path / "ok" / "policy.json").read_text())["violations"] == [
        dataclasses.asdict(v) for v in pack.run(home)
    ]

    def unprotect(r):
        r.protect = False

    broken = with_resource(home, of_type(rules.TALOS_SECRETS), unprotect)
    assert pack.plan_check(broken, tmp_path / "bad") == 1
    out = capsys.readouterr().out
    assert "[mandatory] protect-cluster-state" in out and "1 blocking" in out
    report = json.loads((tmp_path / "bad" / "policy.json").read_text())
    assert {p["name"] for p in report["policies"]} == {p.name for p in rules.POLICIES}


def test_remediation_secret_markers_reach_the_policy():
    # The runner hands remediations Secret-wrapped values (the engine's shape), validations plain ones.
    capture = offline.Capture(stack="t")
    capture.resources.append(
        offline.Resource(
            urn=urn(rules.K8S_SECRET, "s"),
            type=rules.K8S_SECRET,
            name="s",
            custom=True,
            parent="",
            dependencies=[],
            property_dependencies={},
            inputs={"stringData": {"a": secret("x"), "b": "y"}},
            protect=False,
            additional_secret_outputs=[],
            provider="",
            remote=False,
            aliases=0,
        )
    )
    entry = pack.Runner(capture).entries[0]
    assert isinstance(rules._raw(rules._raw(entry.remediate_props())["stringData"])["a"], Secret)
    assert entry.validate_props()["stringData"]["a"] == "x"
    assert pack.newly_secret(entry.wire, {"stringData": {"a": secret("x"), "b": secret("y")}}) == ["stringData.b"]


# --- the pack as the Pulumi CLI runs it ------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    """``policy/__main__.py`` started as the CLI starts it (working directory policy/), over gRPC."""
    proc = subprocess.Popen(
        [sys.executable, "__main__.py"], cwd=ROOT / "policy", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def struct(props: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(props)
    return out


def test_pack_serves_every_policy(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "homelab"
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in rules.POLICIES)


def test_pack_reports_mandatory_violation_to_the_engine(analyzer):
    request = analyzer_pb2.AnalyzeRequest(
        type=rules.K8S_NAMESPACE,
        properties=struct({"metadata": {"name": "rook-ceph"}}),
        urn=urn(rules.K8S_NAMESPACE, "rook-namespace"),
        name="rook-namespace",
        options=analyzer_pb2.AnalyzerResourceOptions(parent=urn("homelab:index:Rook", "rook", ())),
    )
    diagnostics = analyzer.Analyze(request).diagnostics
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [
        ("namespace-pod-security", analyzer_pb2.MANDATORY)
    ]


def test_pack_remediates_plaintext_secret_values(analyzer):
    props = {"stringData": {"token": secret("s3cr3t"), "user": "admin"}}
    request = analyzer_pb2.AnalyzeRequest(
        type=rules.K8S_SECRET, properties=struct(props), urn=urn(rules.K8S_SECRET, "s"), name="s"
    )
    (remediation,) = analyzer.Remediate(request).remediations
    assert remediation.policyName == "kubernetes-secret-values-secret"
    fixed = json_format.MessageToDict(remediation.properties)["stringData"]
    assert fixed["user"] == secret("admin") and fixed["token"] == secret("s3cr3t")


def test_latest_installer_from_a_node_patch_caught_end_to_end():
    """A user patch that floats the installer reaches the policy through the generated machine config."""
    config = home_config()
    config["homelab:nodes"][3]["patches"] = [{"machine": {"install": {"image": "ghcr.io/siderolabs/installer:latest"}}}]
    found = [v for v in blocking(run_config(config)) if v.policy == "no-floating-images"]
    assert len(found) == 1 and "machine.install.image" in found[0].message
    assert found[0].urn is not None and found[0].urn.endswith("home-apply-k8s-3")
