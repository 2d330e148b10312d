"""The Talos layer's graph, as captured from the real program under mocks."""

from __future__ import annotations

import yaml
from pulumi.runtime import rpc

from plan import offline
from tests.conftest import generated_nodes, home_config, run_config

TALOS_VERSION = home_config()["homelab:cluster"]["talosVersion"]

APPLY = "talos:machine/configurationApply:ConfigurationApply"
BOOTSTRAP = "talos:machine/bootstrap:Bootstrap"
SECRETS = "talos:machine/secrets:Secrets"
KUBECONFIG = "talos:cluster/kubeconfig:Kubeconfig"
GET_CONFIG = "talos:machine/getConfiguration:getConfiguration"


def roles(capture: offline.Capture) -> dict[str, str]:
    """Node host name → machine type, from what the program asked the provider to generate."""
    out = {}
    for inv in capture.invokes:
        if inv.token == GET_CONFIG:
            docs = [yaml.safe_load(p) for p in inv.args["configPatches"]]
            host = next(d["hostname"] for d in docs if d.get("kind") == "HostnameConfig")
            out[host] = inv.args["machineType"]
    return out


def chain_of(capture: offline.Capture) -> list[str]:
    """Control-plane applies in dependency order, following depends_on from the head."""
    cps = {h for h, role in roles(capture).items() if role == "controlplane"}
    applies = {r.urn: r for r in capture.of_type(APPLY) if r.name.split("-apply-", 1)[1] in cps}
    prev = {urn: [d for d in r.dependencies if d in applies] for urn, r in applies.items()}
    heads = [urn for urn, deps in prev.items() if not deps]
    assert len(heads) == 1, f"expected one head of the control-plane chain, got {heads}"
    assert all(len(deps) <= 1 for deps in prev.values()), "a control plane waits on more than one other"
    nxt = {deps[0]: urn for urn, deps in prev.items() if deps}
    chain = [heads[0]]
    while chain[-1] in nxt:
        chain.append(nxt[chain[-1]])
    assert len(chain) == len(applies), "control planes do not form one chain"
    return [applies[u].name for u in chain]


def test_one_apply_per_node(home: offline.Capture) -> None:
    applies = home.of_type(APPLY)
    assert sorted(a.name for a in applies) == sorted(f"home-apply-k8s-{i}" for i in range(6))
    nodes = {n["name"]: n["address"] for n in home_config()["homelab:nodes"]}
    for a in applies:
        address = nodes[a.name.removeprefix("home-apply-")]
        # Configs go to node IPs, never the VIP (it only exists after bootstrap).
        assert a.inputs["node"] == address
        assert a.inputs["endpoint"] == address
        assert a.inputs["applyMode"] == "staged_if_needing_reboot"
        assert rpc.is_rpc_secret(a.inputs["machineConfigurationInput"])


def test_control_planes_form_a_chain_and_workers_do_not_wait(home: offline.Capture) -> None:
    assert chain_of(home) == ["home-apply-k8s-0", "home-apply-k8s-1", "home-apply-k8s-2"]
    urns = {r.urn: r.name for r in home.resources}
    for worker in ("k8s-3", "k8s-4", "k8s-5"):
        deps = {urns[d] for d in home.by_name(f"home-apply-{worker}").dependencies}
        assert not any(d.startswith("home-apply-") for d in deps)


def test_bootstrap_once_on_first_control_plane_after_its_config(home: offline.Capture) -> None:
    (boot,) = home.of_type(BOOTSTRAP)
    assert boot.inputs["node"] == "10.0.10.11"
    assert home.by_name("home-apply-k8s-0").urn in boot.dependencies
    (kubeconfig,) = home.of_type(KUBECONFIG)
    assert boot.urn in kubeconfig.dependencies


def test_machine_secrets_protected_and_secret(home: offline.Capture) -> None:
    (secrets,) = home.of_type(SECRETS)
    assert secrets.protect
    assert set(secrets.additional_secret_outputs) >= {"machineSecrets", "clientConfiguration"}
    assert secrets.inputs["talosVersion"] == TALOS_VERSION


def test_outputs_are_secret(home: offline.Capture) -> None:
    assert {"kubeconfig", "talosconfig"} <= home.secret_outputs


def test_invokes_send_provider_keys(home: offline.Capture) -> None:
    """Invokes don't translate keys: the program must send camelCase itself (pulumi-talos #103/#200/#251)."""
    configs = [i for i in home.invokes if i.token == GET_CONFIG]
    assert len(configs) == 6
    for inv in configs:
        ms = inv.args["machineSecrets"]
        ms = ms["value"] if rpc.is_rpc_secret(ms) else ms
        assert set(ms) == {"certs", "cluster", "secrets", "trustdinfo"}
        assert set(ms["certs"]) == {"etcd", "k8s", "k8sAggregator", "k8sServiceaccount", "os"}
        assert set(ms["secrets"]) >= {"bootstrapToken", "secretboxEncryptionSecret"}
        assert ms["secrets"]["bootstrapToken"] == "offline.token"
        assert set(ms["trustdinfo"]) == {"token"}
        assert inv.args["talosVersion"] == TALOS_VERSION
        assert inv.args["kubernetesVersion"] == home_config()["homelab:cluster"]["kubernetesVersion"]
        assert inv.args["clusterEndpoint"] == "https://10.0.10.10:6443"
    talosconfigs = [i for i in home.invokes if i.token == "talos:client/getConfiguration:getConfiguration"]
    assert len(talosconfigs) == 2  # the stack output's and the day-2 steps'
    for inv in talosconfigs:
        cc = inv.args["clientConfiguration"]
        cc = cc["value"] if rpc.is_rpc_secret(cc) else cc
        assert set(cc) == {"caCertificate", "clientCertificate", "clientKey"}


def test_talosconfig_endpoints_are_control_plane_ips_not_the_vip(home: offline.Capture) -> None:
    output, steps = sorted(
        (i for i in home.invokes if i.token == "talos:client/getConfiguration:getConfiguration"),
        key=lambda i: len(i.args.get("nodes") or []),
        reverse=True,
    )
    for inv in (output, steps):
        assert inv.args["endpoints"] == ["10.0.10.11", "10.0.10.12", "10.0.10.13"]
        assert "10.0.10.10" not in inv.args["endpoints"]
    assert len(output.args["nodes"]) == 6
    # The steps name their nodes themselves: a node added or removed changes none of their inputs.
    assert "nodes" not in steps.args


def test_nothing_checks_health_on_every_preview(home: offline.Capture) -> None:
    # An invoke runs on every preview and up: get_health would hang for ten minutes while a node
    # is down and fail for good while a removed control plane is still an etcd member.
    assert not [i for i in home.invokes if i.token == "talos:cluster/getHealth:getHealth"]


def test_kubernetes_provider_waits_for_kubeconfig(home: offline.Capture) -> None:
    (provider,) = home.of_type("pulumi:providers:kubernetes")
    (kubeconfig,) = home.of_type(KUBECONFIG)
    deps = set(provider.dependencies) | {u for us in provider.property_dependencies.values() for u in us}
    assert kubeconfig.urn in deps
    assert rpc.is_rpc_secret(provider.inputs["kubeconfig"])


def installer_images(capture: offline.Capture) -> set[str]:
    """The installer images the program put in any node's patches."""
    return {
        image
        for i in capture.invokes
        if i.token == GET_CONFIG
        for p in i.args["configPatches"]
        if (image := yaml.safe_load(p).get("machine", {}).get("install", {}).get("image"))
    }


def test_schematic_only_with_extensions() -> None:
    config = home_config()
    config["homelab:cluster"]["extensions"] = []
    capture = run_config(config)
    assert capture.of_type("talos:imageFactory/schematic:Schematic") == []
    images = installer_images(capture)
    assert images == {f"ghcr.io/siderolabs/installer:{TALOS_VERSION}"}


def test_schematic_gives_factory_installer(home: offline.Capture) -> None:
    (schematic,) = home.of_type("talos:imageFactory/schematic:Schematic")
    spec = yaml.safe_load(schematic.inputs["schematic"])
    assert spec["customization"]["systemExtensions"]["officialExtensions"] == [
        "siderolabs/intel-ucode",
        "siderolabs/i915",
    ]
    images = installer_images(home)
    (image,) = images
    assert image.startswith("factory.talos.dev/installer/") and image.endswith(f":{TALOS_VERSION}")


def test_five_control_planes_and_seven_workers() -> None:
    config = home_config()
    config["homelab:nodes"] = generated_nodes(5, 7)
    capture = run_config(config, stack="big")
    assert len(capture.of_type(APPLY)) == 12
    assert chain_of(capture) == [f"home-apply-node-{i}" for i in range(5)]
    (boot,) = capture.of_type(BOOTSTRAP)
    assert boot.inputs["node"] == "10.0.10.100"


def test_apply_mode_from_config() -> None:
    config = home_config()
    config["homelab:cluster"]["applyMode"] = "reboot"
    capture = run_config(config)
    assert {a.inputs["applyMode"] for a in capture.of_type(APPLY)} == {"reboot"}


def test_first_apply_goes_to_the_maintenance_address_and_nothing_else_does() -> None:
    """A machine in maintenance mode answers at its DHCP lease: only its apply dials there."""
    config = home_config()
    config["homelab:nodes"][0]["maintenanceAddress"] = "10.0.10.201"  # the first control plane
    config["homelab:nodes"][4]["maintenanceAddress"] = "10.0.10.205"  # a worker
    capture = run_config(config)
    first, worker = capture.by_name("home-apply-k8s-0"), capture.by_name("home-apply-k8s-4")
    assert (first.inputs["endpoint"], first.inputs["node"]) == ("10.0.10.201", "10.0.10.11")
    assert (worker.inputs["endpoint"], worker.inputs["node"]) == ("10.0.10.205", "10.0.10.15")
    others = [a for a in capture.of_type(APPLY) if a.name not in {first.name, worker.name}]
    assert others and all(a.inputs["endpoint"] == a.inputs["node"] for a in others)
    # Everything after the first apply talks to the node's own address.
    (boot,) = capture.of_type(BOOTSTRAP)
    (kubeconfig,) = capture.of_type(KUBECONFIG)
    for r in (boot, kubeconfig):
        assert (r.inputs["node"], r.inputs["endpoint"]) == ("10.0.10.11", "10.0.10.11")
    sent = str([i.args for i in capture.invokes]) + str([r.inputs for r in capture.resources if r.type != APPLY])
    assert "10.0.10.201" not in sent and "10.0.10.205" not in sent


def test_removing_the_maintenance_address_changes_only_the_endpoint() -> None:
    """After bootstrap the key is removed: the same apply, same config, another endpoint.

    terraform-provider-talos v0.11.0 (pkg/talos/talos_machine_configuration_apply_resource.go)
    sets no RequiresReplace on any attribute: an endpoint change is an Update that re-sends
    the config to the new endpoint; no Delete (which would run on_destroy's reset), no Create.
    The program must not turn it into a replacement either (no replaceOnChanges, no alias).
    """
    config = home_config()
    config["homelab:nodes"][3]["maintenanceAddress"] = "10.0.10.204"
    before, after = run_config(config), run_config(home_config())

    def apply_of(capture: offline.Capture) -> offline.Resource:
        return capture.by_name("home-apply-k8s-3")

    def config_of(capture: offline.Capture) -> list[str]:
        (args,) = [i.args for i in capture.invokes if i.token == GET_CONFIG and "k8s-3" in str(i.args)]
        return list(args["configPatches"])

    a, b = apply_of(before), apply_of(after)
    assert a.urn == b.urn
    changed = {k for k in {*a.inputs, *b.inputs} if str(a.inputs.get(k)) != str(b.inputs.get(k))}
    assert changed == {"endpoint"}
    assert (a.inputs["endpoint"], b.inputs["endpoint"]) == ("10.0.10.204", "10.0.10.14")
    assert config_of(before) == config_of(after)
    for r in (a, b):
        assert r.replace_on_changes == [] and not r.delete_before_replace and r.aliases == 0
