"""Secret inputs: where each comes from (config or 1Password), and that none is ever unwrapped."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import rpc

from plan import offline
from stacks.loader import ConfigError
from stacks.secrets import SECRET_CONFIG_KEYS, SecretInputs, combine, config_key
from tests.conftest import ROOT, home_config, run_config

# Every value the mocks hand out for a credential contains one of these.
FAKE_MARKERS = (
    offline.FAKE_ONEPASSWORD_PREFIX,  # 1Password items
    "offline-secret-",  # `pulumi config set --secret` values (conftest.run_config, offline.stack_config)
    "offline-cert",
    "offline-key",
    "offline.token",
    "offline-cluster-secret",
    "offline-secretbox",
    "offline-ca",
    "offline-crt",
    "offline.trustd",
)


def plain_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in ``value`` that is *not* inside a secret wrapper, with its path."""
    if rpc.is_rpc_secret(value):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from plain_strings(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from plain_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def leaks(capture: offline.Capture) -> list[str]:
    """Where a fake credential appears unwrapped in a resource input or a plain stack output."""
    found = [
        f"{r.name}{path}"
        for r in capture.resources
        for path, text in plain_strings(r.inputs)
        if any(m in text for m in FAKE_MARKERS)
    ]
    found += [
        f"output {key}"
        for key, value in capture.outputs.items()
        if key not in capture.secret_outputs and any(m in t for _, t in plain_strings(value) for m in FAKE_MARKERS)
    ]
    return found


def test_leak_check_catches_an_unwrapped_value() -> None:
    # The walker must see through structure and stop only at secret wrappers.
    secret = {rpc._special_sig_key: rpc._special_secret_sig, "value": "offline-secret-x"}
    assert list(plain_strings({"a": [secret, {"b": "offline-secret-y"}]})) == [(".a[1].b", "offline-secret-y")]


def test_home_leaks_nothing(home: offline.Capture) -> None:
    assert leaks(home) == []
    assert {"kubeconfig", "talosconfig"} <= home.secret_outputs


def test_config_secrets_leak_nothing() -> None:
    config = home_config()
    del config["homelab:onepassword"]
    config.update({f"homelab:{key}": {"secure": "v1:..."} for key in sorted(SECRET_CONFIG_KEYS)})
    assert leaks(run_config(config)) == []


def secret_values(resource: offline.Resource) -> list[tuple[str, Any]]:
    """(key, value) of what a Secret-like resource carries: Kubernetes data/stringData, 1Password fields."""
    out: list[tuple[str, Any]] = []
    for key in ("data", "stringData"):
        value = resource.inputs.get(key)
        if isinstance(value, dict) and not rpc.is_rpc_secret(value):
            out += [(f"{key}.{k}", v) for k, v in value.items()]
        elif value is not None:
            out.append((key, value))
    for key in ("password", "noteValue"):
        if key in resource.inputs:
            out.append((key, resource.inputs[key]))
    return out


def test_every_kubernetes_secret_and_item_holds_only_secrets(home: offline.Capture) -> None:
    """What reaches the engine is secret, whoever wrapped it.

    The SDKs also mark Secret data and item values secret themselves, so this
    guards the end result (and an SDK upgrade that stops doing so); the layers'
    own wrapping of values they derive is tested with each layer.
    """
    holders = [r for r in home.resources if r.type in ("kubernetes:core/v1:Secret", "onepassword:index/item:Item")]
    assert any(r.type == "onepassword:index/item:Item" for r in holders)
    for r in holders:
        values = secret_values(r)
        assert values, f"{r.name} carries nothing"
        plain = [key for key, v in values if not rpc.is_rpc_secret(v)]
        assert plain == [], f"{r.name}: {plain} not secret"


# A program that builds the real graph and exports the secret inputs it ended up with.
PROBE = """
import pulumi
from dataclasses import fields
from stacks import graph, loader

built = graph.build(loader.load())
for f in fields(built.secrets):
    value = getattr(built.secrets, f.name)
    if value is not None:
        pulumi.export(f.name, value)
"""


def secret_inputs_of(config: dict[str, Any], tmp_path: Path) -> offline.Capture:
    """Run the probe with this stack config; its outputs are the graph's secret inputs."""
    program = tmp_path / "probe.py"
    program.write_text(PROBE)
    return run_config(config, stack="probe", program=program)


def test_home_takes_every_input_from_1password(tmp_path: Path) -> None:
    capture = secret_inputs_of(home_config(), tmp_path)
    assert set(capture.outputs) == {f.name for f in fields(SecretInputs)}
    assert capture.secret_outputs == set(capture.outputs)
    prefix = offline.FAKE_ONEPASSWORD_PREFIX
    assert capture.outputs["cloudflare_api_token"] == f"{prefix}cloudflare-dns01-credential"
    assert capture.outputs["git_credentials"] == f"{prefix}flux-deploy-key-privateKey"
    assert capture.outputs["sops_age_key"] == f"{prefix}sops-age-key"
    assert capture.outputs["onepassword_connect_token"] == f"{prefix}1password-connect-token"


def test_without_1password_inputs_come_from_config(tmp_path: Path) -> None:
    config = home_config()
    del config["homelab:onepassword"]
    config.update({f"homelab:{key}": {"secure": "v1:..."} for key in sorted(SECRET_CONFIG_KEYS)})
    capture = secret_inputs_of(config, tmp_path)
    assert capture.outputs == {f.name: f"offline-secret-homelab:{config_key(f.name)}" for f in fields(SecretInputs)}
    assert capture.secret_outputs == set(capture.outputs)


def test_config_and_1password_combine(tmp_path: Path) -> None:
    config = home_config()
    items = config["homelab:onepassword"]["items"]
    del items["sopsAgeKey"], items["gitCredentials"]
    config["homelab:sopsAgeKey"] = {"secure": "v1:..."}
    config["homelab:gitCredentials"] = {"secure": "v1:..."}
    capture = secret_inputs_of(config, tmp_path)
    assert capture.outputs["sops_age_key"] == "offline-secret-homelab:sopsAgeKey"
    assert capture.outputs["git_credentials"] == "offline-secret-homelab:gitCredentials"
    assert capture.outputs["cloudflare_api_token"].startswith(offline.FAKE_ONEPASSWORD_PREFIX)
    assert capture.secret_outputs == set(capture.outputs) and len(capture.outputs) == 5


def test_an_input_set_both_ways_is_a_config_error() -> None:
    config = home_config()
    config["homelab:sopsAgeKey"] = {"secure": "v1:..."}
    with pytest.raises(ConfigError) as err:
        run_config(config)
    assert err.value.lines == [
        "homelab:sopsAgeKey: also read from 1Password (homelab:onepassword.items.sopsAgeKey); keep one of the two"
    ]


def test_missing_field_fails_the_run_with_its_name(tmp_path: Path) -> None:
    # In a fresh interpreter: a run that fails inside an apply leaves futures behind in this one.
    config = home_config()
    del config["homelab:dns"]  # not needed here; keeps the subprocess fast
    config["homelab:onepassword"]["items"]["sopsAgeKey"]["field"] = "age-identity"
    stack_file = tmp_path / "Pulumi.broken.yaml"
    stack_file.write_text(yaml.safe_dump({"config": config}))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from plan import offline; offline.run_stack_file(Path(sys.argv[1]))",
            str(stack_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "1Password item 'sops' in vault 'homelab' has no field labelled 'age-identity'" in proc.stderr


def test_combine_fills_gaps_and_refuses_overlaps() -> None:
    a = pulumi.Output.secret("a")
    b = pulumi.Output.secret("b")
    merged = combine(SecretInputs(sops_age_key=a), SecretInputs(git_credentials=b))
    assert merged.sops_age_key is a and merged.git_credentials is b and merged.cloudflare_api_token is None
    with pytest.raises(ValueError, match="sopsAgeKey"):
        combine(SecretInputs(sops_age_key=a), SecretInputs(sops_age_key=b))
