"""cert-manager layer: chart values, ClusterIssuers after the CRDs, the token Secret, optional parts, config errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pulumi.runtime import rpc

from plan import offline
from stacks.loader import ConfigError
from tests.conftest import config_errors as parse_errors
from tests.conftest import home_config, run_config

ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
SECRET = "kubernetes:core/v1:Secret"
PROD = "https://acme-v02.api.letsencrypt.org/directory"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
TOKEN_LINE = (
    "homelab:cloudflareApiToken: required by homelab:certManager.issuers (set it with pulumi config set --secret "
    "homelab:cloudflareApiToken …, or list it in homelab:onepassword.items), or set certManager.issuers.enabled: false"
)


def children(capture: offline.Capture, component: str) -> list[offline.Resource]:
    """Resources whose parent is the named component."""
    parent = capture.by_name(component).urn
    return [r for r in capture.resources if r.parent == parent]


def closure(capture: offline.Capture, name: str) -> set[str]:
    """Names of everything a resource waits for, directly or transitively (dependencies and parents' inputs)."""
    by_urn = capture.by_urn()
    todo, seen = [capture.by_name(name).urn], set[str]()
    while todo:
        res = by_urn[todo.pop()]
        deps = set(res.dependencies)
        for urns in res.property_dependencies.values():
            deps.update(urns)
        for dep in deps - seen:
            if dep in by_urn:
                seen.add(dep)
                todo.append(dep)
    return {by_urn[u].name for u in seen}


def test_chart_values_and_source_from_config(home: offline.Capture) -> None:
    section = home_config()["homelab:certManager"]
    chart = home.by_name("cert-manager-chart")
    assert chart.inputs["chart"] == section["chart"]["chart"] == "cert-manager"
    assert chart.inputs["version"] == section["chart"]["version"]
    assert chart.inputs["repositoryOpts"]["repo"] == section["chart"]["repository"]
    assert chart.inputs["namespace"] == "cert-manager"
    values = chart.inputs["values"]
    # CRDs come with the chart (current key), and survive a chart removal.
    assert values["crds"] == {"enabled": True, "keep": True}
    assert "installCRDs" not in values
    assert values["startupapicheck"] == {"enabled": False}
    assert values["dns01RecursiveNameservers"] == "1.1.1.1:53,1.0.0.1:53"
    assert values["dns01RecursiveNameserversOnly"] is True


def test_children_use_the_cluster_provider_and_the_component(home: offline.Capture) -> None:
    provider = home.by_name("kubernetes")
    kids = children(home, "cert-manager")
    assert home.by_name("cert-manager").type == "homelab:index:CertManager"
    assert sorted(r.name for r in kids) == [
        "cert-manager-chart",
        "cert-manager-cloudflare-token",
        "cert-manager-issuer-production",
        "cert-manager-issuer-staging",
        "cert-manager-namespace",
    ]
    for res in kids:
        assert res.provider.startswith(provider.urn + "::"), res.name


def test_namespace_is_labelled(home: offline.Capture) -> None:
    ns = home.by_name("cert-manager-namespace")
    assert ns.inputs["metadata"]["name"] == "cert-manager"
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_issuers_wait_for_the_crds_and_the_token(home: offline.Capture) -> None:
    chart = home.by_name("cert-manager-chart")
    secret = home.by_name("cert-manager-cloudflare-token")
    section = home_config()["homelab:certManager"]["issuers"]
    servers = {}
    for issuer in home.of_type(ISSUER):
        assert set(issuer.dependencies) >= {chart.urn, secret.urn}
        acme = issuer.inputs["spec"]["acme"]
        servers[issuer.inputs["metadata"]["name"]] = acme["server"]
        assert acme["email"] == section["email"]
        (solver,) = acme["solvers"]
        assert solver["selector"] == {"dnsZones": section["dnsZones"]}
        assert solver["dns01"]["cloudflare"]["apiTokenSecretRef"] == {
            "name": secret.inputs["metadata"]["name"],
            "key": "api-token",
        }
        assert acme["privateKeySecretRef"]["name"].startswith(issuer.inputs["metadata"]["name"])
    assert servers == {"letsencrypt-production": PROD, "letsencrypt-staging": STAGING}


def test_token_secret_value_is_a_pulumi_secret(home: offline.Capture) -> None:
    secret = home.by_name("cert-manager-cloudflare-token")
    assert secret.type == SECRET
    assert secret.inputs["metadata"] == {"name": "cloudflare-api-token", "namespace": "cert-manager"}
    assert rpc.is_rpc_secret(secret.inputs["data"])
    assert offline.plain(secret.inputs["data"]) == offline.REDACTED
    # data, not stringData: the API server returns no stringData, so server-side apply would diff it forever.
    assert "stringData" not in secret.inputs
    token = base64.b64decode(secret.inputs["data"]["value"]["api-token"]).decode()
    assert token == "offline-op-cloudflare-dns01-credential"


def test_webhooks_wait_for_their_ca_bundle(home: offline.Capture) -> None:
    # helm.v4 runs no hooks and a ready webhook Deployment does not mean cainjector has filled the
    # caBundle; issuers created before it fail with "x509: certificate signed by unknown authority".
    webhook = home.by_name("cert-manager-chart").inputs["values"]["webhook"]
    wait = {"pulumi.com/waitFor": "jsonpath={.webhooks[*].clientConfig.caBundle}"}
    assert webhook["validatingWebhookConfigurationAnnotations"] == wait
    assert webhook["mutatingWebhookConfigurationAnnotations"] == wait


def test_chart_waits_for_cilium_only(home: offline.Capture) -> None:
    chart = home.by_name("cert-manager-chart")
    assert {home.by_urn()[d].name for d in chart.dependencies} == {"cilium-chart", "cert-manager-namespace"}
    waits_for = closure(home, "cert-manager-issuer-production")
    assert "cilium-chart" in waits_for
    assert not {n for n in waits_for if n.startswith(("rook", "coredns", "spegel", "flux"))}
    assert not {n for n in closure(home, "rook-storageclass") if n.startswith("cert-manager")}


def test_custom_resources_match_their_crds(home: offline.Capture, schemas: Path) -> None:
    schema = json.loads((schemas / "crds/cert-manager.io/clusterissuer_v1.json").read_text())
    issuers = home.of_type(ISSUER)
    assert len(issuers) == 2
    for issuer in issuers:
        jsonschema.validate(offline.plain(issuer.inputs), schema)
    broken = offline.plain(issuers[0].inputs)
    broken["spec"]["acme"]["solvers"][0]["dns01"]["cloudflare"]["apiTokenSecretRf"] = {"name": "x"}
    with pytest.raises(jsonschema.ValidationError, match="apiTokenSecretRf"):
        jsonschema.validate(broken, schema)


def test_disabled_layer_registers_nothing() -> None:
    config = home_config()
    config["homelab:certManager"]["enabled"] = False
    capture = run_config(config)
    assert not [r for r in capture.resources if r.name.startswith("cert-manager")]
    assert not capture.of_type(ISSUER)
    assert capture.of_type("homelab:index:Rook"), "the other layers stay"


def test_issuers_off_need_no_token() -> None:
    config = home_config()
    config["homelab:certManager"]["issuers"]["enabled"] = False
    del config["homelab:onepassword"]["items"]["cloudflareApiToken"]
    capture = run_config(config)
    assert capture.by_name("cert-manager-chart")
    assert not capture.of_type(ISSUER)
    assert not [r for r in capture.resources if r.name == "cert-manager-cloudflare-token"]


def test_missing_token_is_one_line_and_registers_nothing() -> None:
    config = home_config()
    del config["homelab:onepassword"]["items"]["cloudflareApiToken"]
    with pytest.raises(ConfigError) as info:
        run_config(config)
    assert info.value.lines == [TOKEN_LINE]


def test_token_from_pulumi_config_secret() -> None:
    config = home_config()
    del config["homelab:onepassword"]["items"]["cloudflareApiToken"]
    config["homelab:cloudflareApiToken"] = {"secure": "v1:placeholder"}
    capture = run_config(config)
    secret = capture.by_name("cert-manager-cloudflare-token")
    assert rpc.is_rpc_secret(secret.inputs["data"])


def test_extra_values_merge_over_generated_ones() -> None:
    config = home_config()
    config["homelab:certManager"]["values"] = {"replicaCount": 2, "crds": {"keep": False}}
    config["homelab:certManager"]["dns01RecursiveNameservers"] = []
    values = run_config(config).by_name("cert-manager-chart").inputs["values"]
    assert values["replicaCount"] == 2
    assert values["crds"] == {"enabled": True, "keep": False}
    assert "dns01RecursiveNameservers" not in values


@pytest.mark.parametrize(
    ("issuers", "line"),
    [
        (
            {"email": "not-an-address", "dnsZones": ["example.com"]},
            "homelab:certManager.issuers.email: 'not-an-address' is not an e-mail address",
        ),
        (
            {"email": "a@example.com", "dnsZones": []},
            "homelab:certManager.issuers.dnsZones: Tuple should have at least 1 item after validation, not 0",
        ),
        (
            {"email": "a@example.com", "dnsZones": ["Example.com"]},
            "homelab:certManager.issuers.dnsZones[0]: 'Example.com' is not an RFC 1123 host name "
            "(lower-case letters, digits, '-', '.')",
        ),
        (
            {"email": "a@example.com", "dnsZone": ["example.com"]},
            "homelab:certManager.issuers.dnsZone: unknown key (check the spelling)",
        ),
    ],
)
def test_bad_issuer_config(issuers: dict[str, Any], line: str) -> None:
    config = home_config()
    config["homelab:certManager"]["issuers"] = issuers
    lines = parse_errors(config)
    assert line in lines
    assert all(x.startswith("homelab:certManager.issuers.") for x in lines)


def test_bad_chart_version_and_nameserver() -> None:
    config = home_config()
    config["homelab:certManager"]["chart"]["version"] = "^1.21"
    config["homelab:certManager"]["dns01RecursiveNameservers"] = ["1.1.1.1"]
    assert parse_errors(config) == [
        "homelab:certManager.chart.version: '^1.21' is not an exact chart version (X.Y.Z, no ranges)",
        "homelab:certManager.dns01RecursiveNameservers[0]: '1.1.1.1' is not host:port of a recursive resolver "
        "(e.g. 1.1.1.1:53)",
    ]
