"""Run the policy pack over an offline plan (a :class:`plan.offline.Capture`).

The engine hands a policy pack each resource as wire data; this module builds
the same arguments from the capture and decodes them with pulumi_policy's own
functions, so the rules see what they would see under ``pulumi preview``:

- validations: inputs with secrets decrypted, values unknown during preview as
  the SDK's sentinels (reading one raises, which becomes an advisory note);
- remediations: inputs with secret values wrapped in ``pulumi_policy.Secret``.
  A remediation that would change something is reported as a failure: the
  engine would fix the state, but offline it means the program is wrong;
- stack validations: every resource with parent and dependencies, plus the
  ``pulumi:pulumi:Stack`` resource whose properties are the stack outputs
  (secret ones wrapped in ``Secret``; policies that declare the
  ``secretMarkers`` option are told so).

``plan_check`` is the hook ``make plan`` runs: it prints the violations, writes
``policy.json`` next to the plan, and returns 1 when one is mandatory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import asdict, dataclass
from inspect import isawaitable
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties, serialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from plan.offline import PROJECT, Capture, Resource
from policy.rules import POLICIES, SECRET_MARKERS, STACK

Policy = ResourceValidationPolicy | StackValidationPolicy
BLOCKING = ("mandatory", "remediate")


@dataclass(frozen=True)
class Violation:
    """One finding of one policy."""

    policy: str
    level: str
    """``mandatory``, ``advisory`` or ``remediate`` (a remediation the engine would apply)."""
    message: str
    urn: str | None = None

    @property
    def blocking(self) -> bool:
        """Fails the plan: mandatory violations and needed remediations."""
        return self.level in BLOCKING

    @property
    def resource(self) -> str:
        """The resource's logical name, or the stack."""
        return self.urn.rsplit("::", 1)[-1] if self.urn else "(stack)"

    def line(self) -> str:
        """One line for the terminal."""
        return f"[{self.level}] {self.policy}: {self.resource}: {self.message}"


def _wire(value: Any, names: Mapping[str, str]) -> Any:
    """Capture inputs as wire data: secret markers kept, resource references as URNs."""
    if isinstance(value, pulumi.Resource):
        return names.get(value._name, value._name)
    if isinstance(value, Mapping):
        return {str(k): _wire(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v, names) for v in value]
    return value


def _secret(value: Any) -> dict[str, Any]:
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def stack_urn(capture: Capture) -> str:
    """The URN of the stack resource (the parent of every top-level resource)."""
    return f"urn:pulumi:{capture.stack}::{PROJECT}::{STACK}::{PROJECT}-{capture.stack}"


@dataclass(frozen=True)
class _Entry:
    """One resource in the three shapes the engine would hand out."""

    resource: Resource
    wire: dict[str, Any]
    opts: PolicyResourceOptions
    provider: PolicyProviderResource | None

    def validate_props(self) -> Mapping[str, Any]:
        return unknown_checking_proxy(deserialize_properties(self.wire))

    def remediate_props(self) -> Mapping[str, Any]:
        return deserialize_properties(self.wire, True)


class Runner:
    """The pack over one capture."""

    def __init__(self, capture: Capture, policies: Sequence[Policy] = POLICIES) -> None:
        self.capture = capture
        self.policies = list(policies)
        names = {r.name: r.urn for r in capture.resources}
        by_urn = {r.urn: r for r in capture.resources}
        self.stack_urn = stack_urn(capture)
        self.entries: list[_Entry] = []
        for r in capture.resources:
            wire = _wire(r.inputs, names)
            provider_urn = r.provider.rsplit("::", 1)[0] if r.provider else ""
            prov = by_urn.get(provider_urn)
            provider = (
                PolicyProviderResource(
                    prov.type, deserialize_properties(_wire(prov.inputs, names)), prov.urn, prov.name
                )
                if prov
                else None
            )
            opts = PolicyResourceOptions(
                protect=r.protect,
                ignore_changes=[],
                delete_before_replace=None,
                aliases=[],
                custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                additional_secret_outputs=list(r.additional_secret_outputs),
                parent=r.parent or None,
            )
            self.entries.append(_Entry(r, wire, opts, provider))
        outputs = {
            k: _secret(_wire(v, names)) if k in capture.secret_outputs else _wire(v, names)
            for k, v in capture.outputs.items()
        }
        self.stack_wire = outputs

    def stack_args(self, config: Mapping[str, Any] | None = None) -> StackValidationArgs:
        """Every resource (and the stack with its outputs) as a stack policy sees them."""
        no_opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
        stack = PolicyResource(STACK, deserialize_properties(self.stack_wire, True), self.stack_urn,
                               f"{PROJECT}-{self.capture.stack}", no_opts, None, None, [], {})  # fmt: skip
        resources: dict[str, PolicyResource] = {self.stack_urn: stack}
        for e in self.entries:
            r = e.resource
            resources[r.urn] = PolicyResource(
                r.type, e.validate_props(), r.urn, r.name, e.opts, e.provider, None, [], {}
            )
        for e in self.entries:
            res = resources[e.resource.urn]
            res.parent = resources.get(e.resource.parent)
            res.dependencies = [resources[d] for d in e.resource.dependencies if d in resources]
            res.property_dependencies = {
                k: [resources[d] for d in v if d in resources] for k, v in e.resource.property_dependencies.items()
            }
        return StackValidationArgs(list(resources.values()), config)

    def _config(self, policy: Policy) -> dict[str, Any] | None:
        schema = policy.config_schema
        if schema is not None and SECRET_MARKERS in schema.properties:
            return {SECRET_MARKERS: True}
        return None

    def run(self) -> list[Violation]:
        """Every violation of every enabled policy."""
        found: list[Violation] = []
        for policy in self.policies:
            level = policy.enforcement_level or EnforcementLevel.ADVISORY
            if level == EnforcementLevel.DISABLED:
                continue
            if isinstance(policy, StackValidationPolicy):
                self._stack(policy, level, found)
            else:
                for entry in self.entries:
                    self._resource(policy, level, entry, found)
        return found

    @staticmethod
    def _settle(result: Any) -> Any:
        if result is not None and isawaitable(result):
            loop = asyncio.new_event_loop()
            try:
                return loop.run_until_complete(_as_coroutine(result))
            finally:
                loop.close()
        return result

    def _resource(
        self, policy: ResourceValidationPolicy, level: EnforcementLevel, entry: _Entry, found: list[Violation]
    ) -> None:
        r = entry.resource
        if level == EnforcementLevel.REMEDIATE and policy.has_remediation():
            args = ResourceValidationArgs(
                r.type, entry.remediate_props(), r.urn, r.name, entry.opts, entry.provider, self._config(policy)
            )
            try:
                new = self._settle(policy.remediate(args))
            except _NotApplicableError:
                new = None
            if new:
                changed = newly_secret(entry.wire, serialize_properties(new))
                what = ", ".join(changed) if changed else "properties"
                message = f"plaintext values the engine would mark secret: {what}"
                found.append(Violation(policy.name, "remediate", message, r.urn))
        if not policy.has_validation():
            return
        shown = "mandatory" if level == EnforcementLevel.REMEDIATE else level.value

        def report(message: str, urn: str | None = None) -> None:
            found.append(Violation(policy.name, shown, message, r.urn))

        args = ResourceValidationArgs(
            r.type, entry.validate_props(), r.urn, r.name, entry.opts, entry.provider, self._config(policy)
        )
        try:
            self._settle(policy.validate(args, report))
        except UnknownValueError as err:
            found.append(Violation(policy.name, "advisory", f"can't run during preview: {err.message}", r.urn))
        except _NotApplicableError:
            pass

    def _stack(self, policy: StackValidationPolicy, level: EnforcementLevel, found: list[Violation]) -> None:
        shown = "mandatory" if level == EnforcementLevel.REMEDIATE else level.value

        def report(message: str, urn: str | None = None) -> None:
            found.append(Violation(policy.name, shown, message, urn or None))

        try:
            self._settle(policy.validate(self.stack_args(self._config(policy)), report))
        except UnknownValueError as err:
            found.append(Violation(policy.name, "advisory", f"can't run during preview: {err.message}"))
        except _NotApplicableError:
            pass


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def newly_secret(before: Any, after: Any, path: str = "") -> list[str]:
    """Paths that a remediation turned from plaintext into secrets (both in wire form)."""
    if rpc.is_rpc_secret(before):
        return []
    if rpc.is_rpc_secret(after):
        return [path or "(all)"]
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        out: list[str] = []
        for key, value in after.items():
            out.extend(newly_secret(before.get(key), value, f"{path}.{key}" if path else str(key)))
        return out
    return []


def run(capture: Capture, policies: Sequence[Policy] = POLICIES) -> list[Violation]:
    """Every violation the pack finds in this capture."""
    return Runner(capture, policies).run()


def plan_check(capture: Capture, out: Path) -> int:
    """``make plan`` hook: print violations, write ``policy.json``; 1 when one is blocking."""
    violations = run(capture)
    blocking = [v for v in violations if v.blocking]
    print()
    print(
        f"policy pack: {len(POLICIES)} policies over {len(capture.resources)} resources: "
        f"{len(blocking)} blocking, {len(violations) - len(blocking)} advisory"
    )
    for v in sorted(violations, key=lambda v: (not v.blocking, v.policy, v.resource)):
        print(f"  {v.line()}")
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "policies": [
            {"name": p.name, "enforcementLevel": (p.enforcement_level or EnforcementLevel.ADVISORY).value}
            for p in POLICIES
        ],
        "violations": [asdict(v) for v in violations],
    }
    (out / "policy.json").write_text(json.dumps(report, indent=2) + "\n")
    return 1 if blocking else 0
