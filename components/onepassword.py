"""1Password layer: read the cluster's secret inputs from items; back up the cluster's own secrets.

Reads: each secret input listed in ``homelab:onepassword.items`` is read with the
provider's ``getItem`` data source (vault by name → uuid with ``getVault``, item by
title, then one field). Data-source results are not marked secret (the bridge does
not mark sensitive data-source attributes, and mocks mark nothing), so every value
is wrapped with ``pulumi.Output.secret`` the moment it is picked: it stays a secret
all the way into the Kubernetes Secrets that consume it.

Backups: the Talos machine secrets (as the ``secrets.yaml`` bundle ``talosctl gen
secrets`` writes, in JSON, which YAML readers accept), the talosconfig and the
kubeconfig become Secure Note items in the backup vault. With them the cluster can
be managed again without Pulumi state: ``talosctl gen config --with-secrets``, or
``pulumi import talos:machine/secrets:Secrets <name> secrets.yaml`` into a new stack.
The items are ``retain_on_delete``: a backup outlives the stack that wrote it.

Provider: the default provider, configured by the provider's own keys
(``onepassword:serviceAccountToken``, or ``onepassword:url`` + ``onepassword:token``
for Connect; or ``OP_SERVICE_ACCOUNT_TOKEN``). The program never sees the
credential, so it can neither leak nor store it, and the offline plan needs none.
An explicit ``onepassword.Provider`` would make us read the token ourselves; there
is only one 1Password account here, so nothing calls for one.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_onepassword as onepassword

from components.talos import provider_machine_secrets
from stacks.config.external import BUILTIN_ITEM_FIELDS, ItemRef, OnePasswordConfig
from stacks.secrets import SecretInputs

TAGS = ["homelab", "pulumi"]
"""Tags on the backup items, so they are easy to find (and to tell from hand-made items)."""


class ItemFieldError(pulumi.RunError):
    """An item has no such field: a one-line error, no traceback."""


def _get(obj: Any, key: str) -> Any:
    """Read ``key`` from an SDK output object or a plain dict (both shapes reach us)."""
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def pick_field(ref: ItemRef, vault: str, item: Any) -> str:
    """The value of ``ref.field`` in a ``getItem`` result: a built-in field, else a custom field by label."""
    where = f"1Password item {ref.title!r} in vault {vault!r}"
    builtin = BUILTIN_ITEM_FIELDS.get(ref.field)
    if builtin is not None and ref.section is None:
        value = _get(item, builtin)
        if not value:
            raise ItemFieldError(f"{where}: its {ref.field} field is empty")
        return str(value)
    sections: Sequence[Any] = _get(item, "sections") or []
    for section in sections:
        if ref.section is not None and _get(section, "label") != ref.section:
            continue
        for field in _get(section, "fields") or []:
            if _get(field, "label") == ref.field:
                return str(_get(field, "value") or "")
    in_section = f" in section {ref.section!r}" if ref.section else ""
    raise ItemFieldError(f"{where} has no field labelled {ref.field!r}{in_section}")


def talos_secrets_bundle(machine_secrets: Mapping[str, Any]) -> dict[str, Any]:
    """Talos machine secrets in the layout of ``talosctl gen secrets`` (``secrets.yaml``).

    The bundle's YAML keys are the Go field names in lower case
    (siderolabs/talos pkg/machinery/config/generate/secrets: Bundle, Certs, ...);
    certificates and keys are the same base64 PEM strings the provider returns.
    """
    p = provider_machine_secrets(machine_secrets)
    certs = p["certs"]

    def pair(c: Mapping[str, Any]) -> dict[str, Any]:
        return {"crt": c["cert"], "key": c["key"]}

    secrets = {
        "bootstraptoken": p["secrets"]["bootstrapToken"],
        "secretboxencryptionsecret": p["secrets"]["secretboxEncryptionSecret"],
    }
    if p["secrets"].get("aescbcEncryptionSecret"):
        secrets["aescbcencryptionsecret"] = p["secrets"]["aescbcEncryptionSecret"]
    return {
        "cluster": {"id": p["cluster"]["id"], "secret": p["cluster"]["secret"]},
        "secrets": secrets,
        "trustdinfo": {"token": p["trustdinfo"]["token"]},
        "certs": {
            "etcd": pair(certs["etcd"]),
            "k8s": pair(certs["k8s"]),
            "k8saggregator": pair(certs["k8sAggregator"]),
            "k8sserviceaccount": {"key": certs["k8sServiceaccount"]["key"]},
            "os": pair(certs["os"]),
        },
    }


@dataclass(frozen=True)
class OnePasswordArgs:
    """Inputs of :class:`OnePassword`: its config section, and what to back up."""

    config: OnePasswordConfig
    cluster_name: str
    """Default title prefix of the backup items."""
    machine_secrets: pulumi.Input[Any] | None = None
    talosconfig: pulumi.Input[str] | None = None
    kubeconfig: pulumi.Input[str] | None = None


class OnePassword(pulumi.ComponentResource):
    """Secret inputs read from 1Password items, and backup items of the cluster's own secrets."""

    secrets: SecretInputs
    """The inputs listed in config (secret Outputs); the others are ``None``."""
    backups: dict[str, onepassword.Item]
    """Backup items by role: ``machine-secrets``, ``talosconfig``, ``kubeconfig``."""

    def __init__(self, name: str, args: OnePasswordArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:OnePassword", name, None, opts)
        cfg = args.config
        invoke = pulumi.InvokeOptions(parent=self)
        # One look-up per vault name: getItem and Item take the vault's uuid.
        vault_ids: dict[str, pulumi.Output[str]] = {
            vault: onepassword.get_vault_output(name=vault, opts=invoke).uuid for vault in cfg.vaults()
        }

        items: dict[tuple[str, str], pulumi.Output[Any]] = {}  # one read per item, however many fields
        read: dict[str, pulumi.Output[str]] = {}
        for input_name, ref in cfg.items.listed().items():
            vault = ref.vault or cfg.vault
            if (vault, ref.title) not in items:
                items[(vault, ref.title)] = onepassword.get_item_output(
                    vault=vault_ids[vault], title=ref.title, opts=invoke
                )
            item = items[(vault, ref.title)]
            picked = item.apply(functools.partial(pick_field, ref, vault))
            read[input_name] = pulumi.Output.secret(picked)
        self.secrets = SecretInputs(**read)

        self.backups = {}
        if cfg.backup is not None:
            prefix = cfg.backup.title_prefix or args.cluster_name
            contents: dict[str, tuple[str, pulumi.Input[str] | None]] = {
                "machine-secrets": (
                    f"{prefix} Talos secrets.yaml",
                    None
                    if args.machine_secrets is None
                    else pulumi.Output.from_input(args.machine_secrets).apply(
                        lambda ms: json.dumps(talos_secrets_bundle(ms), indent=2, sort_keys=True)
                    ),
                ),
                "talosconfig": (f"{prefix} talosconfig", args.talosconfig),
                "kubeconfig": (f"{prefix} kubeconfig", args.kubeconfig),
            }
            for role, (title, value) in contents.items():
                if value is None:
                    continue
                self.backups[role] = onepassword.Item(
                    f"{name}-backup-{role}",
                    vault=vault_ids[cfg.backup.vault],
                    title=title,
                    category="secure_note",
                    note_value=pulumi.Output.secret(value),
                    tags=TAGS,
                    # A backup is for when the stack is gone: deleting the stack keeps it.
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                )
        self.register_outputs({"backups": {role: item.id for role, item in self.backups.items()}})
