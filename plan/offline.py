"""Run the real program under Pulumi's own mocks and record the resource graph.

No CLI, no credentials, no network: ``run(stack_file)`` reads ``Pulumi.<stack>.yaml``,
feeds its config to the runtime (``secure:`` values become marked-secret
placeholders), runs ``__main__.py`` and returns a :class:`Capture` with every
registered resource, every invoke and the stack outputs.
"""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import provider_pb2, resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from components import talos_patches
from plan import yaml12
from stacks.loader import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "homelab"
REDACTED = "[secret]"


@dataclass
class Resource:
    """One registered resource as the engine would see it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    protect: bool
    additional_secret_outputs: list[str]
    provider: str
    remote: bool
    aliases: int
    version: str = ""
    """Provider plugin version the SDK pins on the resource (empty when none)."""
    replace_on_changes: list[str] = field(default_factory=list)
    """Inputs whose change the program asks the engine to turn into a replacement."""
    delete_before_replace: bool = False


@dataclass
class Invoke:
    """One function call (data source) the program made."""

    token: str
    args: dict[str, Any]


@dataclass
class Capture:
    """Everything one offline run produced."""

    stack: str
    resources: list[Resource] = field(default_factory=list)
    invokes: list[Invoke] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[Resource]:
        """Resources of one type token, in registration order."""
        return [r for r in self.resources if r.type == type_]

    def by_name(self, name: str) -> Resource:
        """The resource with this logical name (names are unique in this program)."""
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def by_urn(self) -> dict[str, Resource]:
        """Index of resources by URN."""
        return {r.urn: r for r in self.resources}


# Fake provider outputs: shaped like the real ones so the program's transforms run.
def _fake_machine_secrets() -> dict[str, Any]:
    pair = {"cert": "offline-cert", "key": "offline-key"}
    return {
        "certs": {
            "etcd": pair,
            "k8s": pair,
            "k8sAggregator": pair,
            "k8sServiceaccount": {"key": "offline-key"},
            "os": pair,
        },
        "cluster": {"id": "offline-cluster-id", "secret": "offline-cluster-secret"},
        "secrets": {"bootstrapToken": "offline.token", "secretboxEncryptionSecret": "offline-secretbox"},
        "trustdinfo": {"token": "offline.trustd"},
    }


FAKE_CLIENT = {"caCertificate": "offline-ca", "clientCertificate": "offline-crt", "clientKey": "offline-key"}
FAKE_KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


def _schematic_id(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    # Image Factory ids are the SHA-256 of the schematic.
    return {"id": hashlib.sha256(str(args.inputs.get("schematic", "")).encode()).hexdigest()}


def _machine_configuration(args: dict[str, Any]) -> dict[str, Any]:
    # Stands in for what talosctl generates: the machine's role and cluster name, then
    # the patches as sent, so the policy pack reads installer images and roles offline.
    # The Kubernetes version shows where talosctl puts it (kubelet and control-plane images), so
    # a version change reaches the applies offline as it does for real.
    version = args.get("kubernetesVersion")
    head = {
        "version": "v1alpha1",
        "machine": {"type": args.get("machineType"), "kubelet": {"image": f"ghcr.io/siderolabs/kubelet:{version}"}},
        "cluster": {
            "clusterName": args.get("clusterName"),
            "apiServer": {"image": f"registry.k8s.io/kube-apiserver:{version}"},
        },
    }
    docs = [talos_patches.to_yaml(head), *(args.get("configPatches") or [])]
    return {
        "machineConfiguration": "# offline: generated from the patches, without the secrets\n---\n" + "---\n".join(docs)
    }


FAKE_ONEPASSWORD_PREFIX = "offline-op-"
"""Every value a fake 1Password item holds starts with this (tests look for leaks by it)."""
# Custom field labels every fake item carries (in one section "offline"), besides the
# built-in fields; reading another label fails as it would against the real vault.
FAKE_ONEPASSWORD_FIELDS = ("token", "age-key", "1password-credentials.json")
_ONEPASSWORD_BUILTINS = ("password", "username", "credential", "noteValue", "privateKey", "privateKeyOpenssh")


def _fake_vault(args: dict[str, Any]) -> dict[str, Any]:
    # 1Password ids are 26 lower-case base-32 characters.
    digest = hashlib.sha256(str(args.get("name") or args.get("uuid")).encode()).hexdigest()
    return {"uuid": args.get("uuid") or digest[:26], "name": args.get("name") or "offline", "description": ""}


def _fake_item(args: dict[str, Any]) -> dict[str, Any]:
    title = args.get("title") or "offline"
    value = f"{FAKE_ONEPASSWORD_PREFIX}{title}-"
    fields = [
        {"id": label, "label": label, "purpose": "", "type": "CONCEALED", "value": value + label}
        for label in FAKE_ONEPASSWORD_FIELDS
    ]
    return {
        "uuid": hashlib.sha256(f"{args.get('vault')}/{title}".encode()).hexdigest()[:26],
        "title": title,
        "category": "password",
        **{name: value + name for name in _ONEPASSWORD_BUILTINS},
        "sections": [{"id": "offline", "label": "offline", "fields": fields}],
    }


def _talosconfig(args: dict[str, Any]) -> dict[str, Any]:
    # Shaped like talosctl's: endpoints and nodes show, so a change of either reaches what reads it.
    context = {"endpoints": args.get("endpoints") or [], "ca": "offline-ca", "crt": "offline-crt", "key": "offline-key"}
    if args.get("nodes"):
        context["nodes"] = args["nodes"]
    name = args.get("clusterName", "offline")
    return {"talosConfig": yaml.safe_dump({"context": name, "contexts": {name: context}}, sort_keys=False)}


def _applied(args: pulumi.runtime.MockResourceArgs) -> dict[str, Any]:
    # How Talos applied the config is only known on the node: offline, the mode asked for.
    config = str(args.inputs.get("machineConfigurationInput"))
    return {
        "resolvedApplyMode": args.inputs.get("applyMode", "auto"),
        "machineConfigurationHash": hashlib.sha256(config.encode()).hexdigest(),
    }


# Extra outputs per resource type (the id under "id"), on top of the echoed inputs.
RESOURCE_OUTPUTS: dict[str, Callable[[pulumi.runtime.MockResourceArgs], dict[str, Any]]] = {
    "talos:machine/secrets:Secrets": lambda _: {
        "machineSecrets": _fake_machine_secrets(),
        "clientConfiguration": FAKE_CLIENT,
    },
    "talos:cluster/kubeconfig:Kubeconfig": lambda _: {
        "kubeconfigRaw": FAKE_KUBECONFIG,
        "kubernetesClientConfiguration": {},
    },
    "talos:imageFactory/schematic:Schematic": _schematic_id,
    "talos:machine/configurationApply:ConfigurationApply": _applied,
    "command:local:Command": lambda _: {"stdout": "", "stderr": ""},
}

# Results per invoke token, on top of the echoed arguments.
CALL_RESULTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "talos:machine/getConfiguration:getConfiguration": _machine_configuration,
    "talos:client/getConfiguration:getConfiguration": _talosconfig,
    # Data-source results carry no secret flag (the program wraps what it picks).
    "onepassword:index/getVault:getVault": _fake_vault,
    "onepassword:index/getItem:getItem": _fake_item,
}


class OfflineMocks(pulumi.runtime.Mocks):
    """Provider behaviour for an offline run: echo inputs, add the outputs the program reads."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        """Echo the inputs plus the type's fake outputs; id is ``<name>-id`` unless the type sets one."""
        extra = RESOURCE_OUTPUTS.get(args.typ)
        state = {**args.inputs, **(extra(args) if extra else {})}
        return str(state.pop("id", f"{args.name}-id")), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Echo the arguments plus the token's fake results."""
        extra = CALL_RESULTS.get(args.token)
        result = {"id": f"{args.token}-id", **args.args, **(extra(args.args) if extra else {})}
        return result, []


def plain(value: Any) -> Any:
    """Strip Pulumi's wire wrappers for reports: secrets → REDACTED, resources → names, whole numbers as ints."""
    if isinstance(value, Mapping):
        return REDACTED if rpc.is_rpc_secret(value) else {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, pulumi.Resource):
        return f"<resource {value._name}>"
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format has one number type: show 7445, not 7445.0
    return "[unknown]" if value == rpc.UNKNOWN else value


class RecordingMonitor(mocks.MockMonitor):
    """A ``MockMonitor`` that records every registration with its options."""

    def __init__(self, mock: pulumi.runtime.Mocks, capture: Capture) -> None:
        super().__init__(mock)
        self.capture = capture

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        """Register as the mock does, mark ``additionalSecretOutputs`` secret, record the request."""
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _ensure_event_loop()  # type: ignore[no-untyped-call]
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        rid, state = self.mocks.new_resource(
            mocks.MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
            )
        )
        # The engine marks these outputs secret; MockMonitor does not, so do it here.
        for key in request.additionalSecretOutputs:
            if key in state and not rpc.is_rpc_secret(state[key]):
                state[key] = {rpc._special_sig_key: rpc._special_secret_sig, "value": state[key]}
        if urn in self.resources:
            # The engine refuses a second resource with the same URN; so must the plan.
            raise ValueError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, rid or "", state)
        response = resource_pb2.RegisterResourceResponse(
            urn=urn, id=rid or "", object=_sync_await(rpc.serialize_properties(state, {}))
        )
        self.capture.resources.append(
            Resource(
                urn=urn,
                type=request.type,
                name=request.name,
                custom=request.custom,
                parent=request.parent,
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                inputs=inputs,
                protect=bool(request.protect),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                provider=request.provider,
                remote=request.remote,
                aliases=len(request.aliases) + len(request.aliasURNs),
                version=request.version,
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
            )
        )
        return response

    def Invoke(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        """Call the mocks as MockMonitor does, recording the arguments (parsed once)."""
        if request.tok == "pulumi:pulumi:getResource":
            return super().Invoke(request)  # type: ignore[no-untyped-call]
        _ensure_event_loop()  # type: ignore[no-untyped-call]
        args = rpc.deserialize_properties(request.args, keep_unknowns=True)
        self.capture.invokes.append(Invoke(token=request.tok, args=args))
        result, failures = self.mocks.call(mocks.MockCallArgs(token=request.tok, args=args, provider=request.provider))
        return resource_pb2.ResourceInvokeResponse(
            failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures or []],
            **{"return": _sync_await(rpc.serialize_properties(result, {}))},
        )


def config_map(config: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """A stack file's ``config:`` mapping as the CLI passes it: values and the secret keys.

    Structured values travel as JSON text; ``secure:`` values (which need the
    stack's passphrase) become placeholders marked secret.
    """
    raw: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            raw[key] = f"offline-secret-{key}"
            secret_keys.append(key)
        else:
            raw[key] = value if isinstance(value, str) else json.dumps(value)
    return raw, secret_keys


def _shown(path: Path) -> str:
    """The stack file as the user named it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def stack_config(stack_file: Path) -> tuple[dict[str, str], list[str]]:
    """Config map and secret keys as the CLI would pass them for this stack file.

    A file the CLI could not read either (YAML syntax, a key given twice, no mapping
    under ``config:``) raises ``ConfigError`` with one ``<file>:<line>:<column>:`` line.
    """
    try:
        data = yaml12.load(stack_file.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError([yaml12.describe_error(err, _shown(stack_file))]) from None
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(config or {}, dict):
        raise ConfigError([f"{_shown(stack_file)}: expected a mapping with a config: mapping of keys to values"])
    return config_map(config or {})


def run(
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str] | None = None,
    program: Path = ROOT / "__main__.py",
) -> Capture:
    """Run ``program`` under mocks with this config; return what it registered.

    Exceptions from the program (e.g. ``ConfigError``) propagate after the
    runtime has settled.
    """
    capture = Capture(stack=stack)
    mock = OfflineMocks()
    monitor = RecordingMonitor(mock, capture)
    settings.ROOT.set(None)
    mocks.set_mocks(mock, project=PROJECT, stack=stack, preview=True, monitor=monitor)
    set_all_config(dict(config), list(secret_keys or []))

    async def outputs() -> None:
        root = settings.get_root_resource()
        for key, value in getattr(root, "outputs", {}).items():
            out = pulumi.Output.from_input(value)
            capture.outputs[key] = await out.future(with_unknowns=True)
            if await out.is_secret():
                capture.secret_outputs.add(key)

    def body() -> Any:
        runpy.run_path(str(program), run_name="__main__")
        return outputs()

    try:
        _sync_await(run_pulumi_func(body))
    finally:
        settings.ROOT.set(None)
        set_all_config({}, [])
    # Registration order depends on thread scheduling; sort for stable reports.
    capture.resources.sort(key=lambda r: r.urn)
    return capture


def stack_name(stack_file: Path) -> str:
    """The stack a file belongs to: ``Pulumi.<stack>.yaml``."""
    return stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")


def run_stack_file(stack_file: Path) -> Capture:
    """Run the program with the config of ``Pulumi.<stack>.yaml``."""
    config, secret_keys = stack_config(stack_file)
    return run(stack_name(stack_file), config, secret_keys)
