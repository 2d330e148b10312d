"""1Password layer: items read by vault/title/field, backups of the cluster's own secrets, config errors."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest
import yaml
from pulumi.runtime import rpc

from components.onepassword import ItemFieldError, pick_field, talos_secrets_bundle
from plan import offline, report
from stacks.config.external import ItemRef, OnePasswordConfig, OnePasswordItems
from stacks.secrets import SECRET_CONFIG_KEYS, SecretInputs
from tests.conftest import config_problems, home_config, run_config

ITEM = "onepassword:index/item:Item"
GET_ITEM = "onepassword:index/getItem:getItem"
GET_VAULT = "onepassword:index/getVault:getVault"


def section(**overrides: Any) -> dict[str, Any]:
    """The home stack's ``homelab:onepassword`` section with some keys replaced."""
    out: dict[str, Any] = home_config()["homelab:onepassword"]
    out.update(overrides)
    return out


def errors(onepassword: dict[str, Any], extra: dict[str, Any] | None = None) -> list[str]:
    """The loader's lines for the home config with this ``homelab:onepassword`` section."""
    config = {**home_config(), "homelab:onepassword": onepassword, **(extra or {})}
    return config_problems(config)


def unwrap(value: Any) -> Any:
    """The plain value inside a secret wrapper (only after asserting it is one)."""
    assert rpc.is_rpc_secret(value)
    return value["value"]


def vault_uuids(capture: offline.Capture) -> dict[str, str]:
    """Vault name → the uuid the fake getVault returned for it."""
    return {
        i.args["name"]: offline.CALL_RESULTS[GET_VAULT](i.args)["uuid"] for i in capture.invokes if i.token == GET_VAULT
    }


def test_items_mirror_the_secret_inputs() -> None:
    # One config entry per secret input, same names: adding an input without a 1Password entry fails here.
    assert list(OnePasswordItems.model_fields) == [f.name for f in fields(SecretInputs)]


def test_home_reads_each_listed_item_once(home: offline.Capture) -> None:
    cfg = OnePasswordConfig.model_validate(home_config()["homelab:onepassword"])
    reads = [i.args for i in home.invokes if i.token == GET_ITEM]
    titles = [r["title"] for r in reads]
    assert sorted(titles) == sorted({ref.title for ref in cfg.items.listed().values()})
    assert len(titles) == len(set(titles)) < len(cfg.items.listed())  # 1password-connect holds two fields
    assert {r["vault"] for r in reads} == {vault_uuids(home)[cfg.vault]}


def test_vaults_are_looked_up_by_name_once(home: offline.Capture) -> None:
    names = [i.args["name"] for i in home.invokes if i.token == GET_VAULT]
    assert sorted(names) == ["homelab", "homelab-recovery"]


def test_backups_in_the_backup_vault(home: offline.Capture) -> None:
    (component,) = home.of_type("homelab:index:OnePassword")
    items = {r.name: r for r in home.of_type(ITEM)}
    assert set(items) == {f"onepassword-backup-{role}" for role in ("machine-secrets", "talosconfig", "kubeconfig")}
    backup_vault = vault_uuids(home)["homelab-recovery"]
    for item in items.values():
        assert item.parent == component.urn
        assert item.inputs["vault"] == backup_vault
        assert item.inputs["category"] == "secure_note"
        assert rpc.is_rpc_secret(item.inputs["noteValue"]), item.name
        assert "noteValue" in item.additional_secret_outputs
    assert items["onepassword-backup-kubeconfig"].inputs["title"] == "home kubeconfig"


def test_backups_depend_on_what_they_hold(home: offline.Capture) -> None:
    by_urn = home.by_urn()

    def deps(name: str) -> set[str]:
        r = home.by_name(name)
        return {by_urn[u].name for u in r.dependencies if u in by_urn}

    assert deps("onepassword-backup-machine-secrets") == {"home-secrets"}
    assert "home-kubeconfig" in deps("onepassword-backup-kubeconfig")
    assert "home-kubeconfig" not in deps("onepassword-backup-machine-secrets")


def test_machine_secrets_backup_is_a_talosctl_bundle(home: offline.Capture) -> None:
    note = unwrap(home.by_name("onepassword-backup-machine-secrets").inputs["noteValue"])
    bundle = yaml.safe_load(note)  # talosctl reads the bundle as YAML; JSON is YAML
    assert set(bundle) == {"cluster", "secrets", "trustdinfo", "certs"}
    assert set(bundle["certs"]) == {"etcd", "k8s", "k8saggregator", "k8sserviceaccount", "os"}
    assert bundle["certs"]["etcd"] == {"crt": "offline-cert", "key": "offline-key"}
    assert bundle["secrets"] == {"bootstraptoken": "offline.token", "secretboxencryptionsecret": "offline-secretbox"}
    assert bundle["cluster"] == {"id": "offline-cluster-id", "secret": "offline-cluster-secret"}


def test_bundle_keeps_the_aescbc_secret_when_there_is_one() -> None:
    ms = offline._fake_machine_secrets()
    ms["secrets"]["aescbcEncryptionSecret"] = "aescbc"
    assert talos_secrets_bundle(ms)["secrets"]["aescbcencryptionsecret"] == "aescbc"


def test_plan_shows_items_redacted(home: offline.Capture) -> None:
    graph = report.graph_json(home)
    items = [r for r in graph["resources"] if r["type"] == ITEM]
    assert len(items) == 3
    assert all(r["inputs"]["noteValue"] == offline.REDACTED for r in items)
    assert offline.FAKE_ONEPASSWORD_PREFIX not in json.dumps(graph)


def test_no_backup_section_no_items() -> None:
    config = home_config()
    del config["homelab:onepassword"]["backup"]
    capture = run_config(config)
    assert capture.of_type(ITEM) == []
    assert [i.args["name"] for i in capture.invokes if i.token == GET_VAULT] == ["homelab"]


def test_stack_without_onepassword_reads_nothing() -> None:
    config = home_config()
    del config["homelab:onepassword"]
    # The secret inputs then come from `pulumi config set --secret homelab:<key>`.
    config.update({f"homelab:{key}": {"secure": "v1:..."} for key in sorted(SECRET_CONFIG_KEYS)})
    capture = run_config(config)
    assert capture.of_type("homelab:index:OnePassword") == [] and capture.of_type(ITEM) == []
    assert not [i for i in capture.invokes if i.token.startswith("onepassword:")]


ITEM_RESULT = {
    "password": "pw",
    "credential": "",
    "sections": [
        {"label": "connect", "fields": [{"label": "token", "value": "tok-1"}]},
        {"label": "other", "fields": [{"label": "token", "value": "tok-2"}]},
    ],
}


@pytest.mark.parametrize(
    ("ref", "value"),
    [
        (ItemRef(title="x"), "pw"),
        (ItemRef(title="x", field="token"), "tok-1"),
        (ItemRef(title="x", field="token", section="other"), "tok-2"),
    ],
)
def test_pick_field(ref: ItemRef, value: str) -> None:
    assert pick_field(ref, "homelab", ITEM_RESULT) == value


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            ItemRef(title="x", field="credential"),
            "1Password item 'x' in vault 'homelab': its credential field is empty",
        ),
        (ItemRef(title="x", field="nope"), "1Password item 'x' in vault 'homelab' has no field labelled 'nope'"),
        (
            ItemRef(title="x", field="token", section="missing"),
            "1Password item 'x' in vault 'homelab' has no field labelled 'token' in section 'missing'",
        ),
    ],
)
def test_pick_field_errors_name_item_and_field(ref: ItemRef, message: str) -> None:
    with pytest.raises(ItemFieldError) as err:
        pick_field(ref, "homelab", ITEM_RESULT)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("onepassword", "line"),
    [
        (section(vaultName="homelab"), "homelab:onepassword.vaultName: unknown key (check the spelling)"),
        (section(vault="  "), "homelab:onepassword.vault: must not be empty"),
        (
            section(items={"sopsAgeKey": {"title": ""}}),
            "homelab:onepassword.items.sopsAgeKey.title: must not be empty",
        ),
        (
            section(items={"sopsAgeKey": {"title": "sops", "field": " "}}),
            "homelab:onepassword.items.sopsAgeKey.field: must not be empty",
        ),
        (
            section(items={"sopsKey": {"title": "sops"}}),
            "homelab:onepassword.items.sopsKey: unknown key (check the spelling)",
        ),
        (
            section(items={"sopsAgeKey": {"title": "sops", "feild": "age-key"}}),
            "homelab:onepassword.items.sopsAgeKey.feild: unknown key (check the spelling)",
        ),
        (section(backup={}), "homelab:onepassword.backup.vault: is required"),
    ],
)
def test_bad_config_gives_one_line(onepassword: dict[str, Any], line: str) -> None:
    assert errors(onepassword) == [line]


def test_home_section_is_valid() -> None:
    assert errors(section()) == []
