"""Cloudflare DNS layer: records from config, Cloudflare's proxy and TTL rules, the layer being optional."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import dns
from plan import offline
from stacks.config.external import DnsConfig
from stacks.loader import ConfigError
from tests.conftest import HOME, ROOT, config_problems, home_config, run_config

RECORD = "cloudflare:index/dnsRecord:DnsRecord"


def dns_section(**overrides: Any) -> dict[str, Any]:
    """The home stack's ``homelab:dns`` section with some keys replaced."""
    section: dict[str, Any] = home_config()["homelab:dns"]
    section.update(overrides)
    return section


def errors(section: dict[str, Any]) -> list[str]:
    """The loader's lines for the home config with this ``homelab:dns`` section (empty when valid)."""
    return config_problems({**home_config(), "homelab:dns": section})


def one_record(**record: Any) -> list[str]:
    return errors(dns_section(records=[record], gatewayRecords=[]))


def test_home_records_match_config(home: offline.Capture) -> None:
    cfg = DnsConfig.model_validate(home_config()["homelab:dns"])
    records = home.of_type(RECORD)
    got = {
        r.name: (r.inputs["name"], r.inputs["type"], r.inputs["content"], r.inputs["proxied"], r.inputs["ttl"])
        for r in records
    }
    want = {f"cloudflare-{p.key}": (p.name, p.type, p.content, p.proxied, p.ttl) for p in cfg.planned()}
    assert got == want
    assert len(records) == len(cfg.records) + len(cfg.gateway_records)
    assert {r.inputs["zoneId"] for r in records} == {cfg.zone_id}


def test_records_belong_to_the_component_and_wait_for_nothing(home: offline.Capture) -> None:
    (component,) = home.of_type("homelab:index:CloudflareDns")
    for r in home.of_type(RECORD):
        assert r.parent == component.urn
        assert r.dependencies == [] and not any(r.property_dependencies.values()), r.name


def test_gateway_record_is_an_a_record_with_a_comment(home: offline.Capture) -> None:
    gw = home.by_name("cloudflare-a-external.example.com").inputs
    assert (gw["type"], gw["content"], gw["proxied"], gw["ttl"]) == ("A", "203.0.113.10", True, 1)
    assert "networking/external" in gw["comment"]


def test_apex_is_written_in_full() -> None:
    cfg = DnsConfig.model_validate(dns_section(records=[{"name": "@", "type": "TXT", "content": "x"}]))
    assert [p.name for p in cfg.planned() if p.type == "TXT"] == ["example.com"]


def test_same_name_and_type_get_distinct_stable_keys() -> None:
    recs = [{"name": "rr.example.com", "type": "A", "content": c} for c in ("203.0.113.1", "203.0.113.2")]
    cfg = DnsConfig.model_validate(dns_section(records=recs, gatewayRecords=[]))
    assert [p.key for p in cfg.planned()] == ["a-rr.example.com", "a-rr.example.com-2"]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.0.10.40", "RFC 1918"),
        ("172.20.1.1", "RFC 1918"),
        ("192.168.1.10", "RFC 1918"),
        ("100.64.3.4", "CGNAT, RFC 6598"),
        ("127.0.0.1", "loopback"),
        ("169.254.10.10", "link-local"),
    ],
)
def test_private_address_is_never_proxied(address: str, kind: str) -> None:
    lines = one_record(name="app.example.com", type="A", content=address, proxied=True)
    assert lines == [
        f"homelab:dns.records[0].proxied: {address} is a private address ({kind}); it cannot be proxied by Cloudflare"
    ]


def test_private_ipv6_is_never_proxied() -> None:
    lines = one_record(name="app.example.com", type="AAAA", content="fd00::10", proxied=True)
    assert lines == [
        "homelab:dns.records[0].proxied: fd00::10 is a private address (unique local, RFC 4193); "
        "it cannot be proxied by Cloudflare"
    ]


def test_private_gateway_address_is_never_proxied() -> None:
    gw = {"hostname": "external.example.com", "address": "10.0.10.21", "gateway": "networking/external"}
    assert errors(dns_section(gatewayRecords=[{**gw, "proxied": True}])) == [
        "homelab:dns.gatewayRecords[0].proxied: 10.0.10.21 is a private address (RFC 1918); "
        "it cannot be proxied by Cloudflare"
    ]
    assert errors(dns_section(gatewayRecords=[gw])) == []


@pytest.mark.parametrize("address", ["10.0.10.40", "203.0.113.7"])
def test_dns_only_records_may_point_anywhere(address: str) -> None:
    assert one_record(name="nas.example.com", type="A", content=address) == []


def test_public_address_may_be_proxied() -> None:
    assert one_record(name="app.example.com", type="A", content="198.51.100.4", proxied=True) == []


@pytest.mark.parametrize(
    ("ttl", "proxied", "line"),
    [
        (300, True, "300 on a proxied record: Cloudflare always serves proxied records with TTL 1 (automatic)"),
        (30, False, "30 must be 1 (automatic) or 60 to 86400 seconds"),
        (86401, False, "86401 must be 1 (automatic) or 60 to 86400 seconds"),
        (0, False, "0 must be 1 (automatic) or 60 to 86400 seconds"),
    ],
)
def test_ttl_rules(ttl: int, proxied: bool, line: str) -> None:
    lines = one_record(name="app.example.com", type="A", content="198.51.100.4", proxied=proxied, ttl=ttl)
    assert lines == [f"homelab:dns.records[0].ttl: {line}"]


@pytest.mark.parametrize("ttl", [1, 60, 3600, 86400])
def test_valid_ttls(ttl: int) -> None:
    assert one_record(name="app.example.com", type="A", content="198.51.100.4", ttl=ttl) == []


def test_only_address_records_are_proxied() -> None:
    assert one_record(name="example.com", type="TXT", content="hello", proxied=True) == [
        "homelab:dns.records[0].proxied: TXT records cannot be proxied (only A, AAAA and CNAME)"
    ]


@pytest.mark.parametrize(
    ("record", "line"),
    [
        (
            {"type": "A", "content": "2001:db8::1"},
            "records[0].content: '2001:db8::1' is not an IPv4 address (type A)",
        ),
        (
            {"type": "CNAME", "content": "10.0.0.1 "},
            "records[0].content: '10.0.0.1 ' is not a host name (type CNAME points to a name)",
        ),
        ({"type": "MX", "content": "mx.example.net"}, "records[0].priority: is required for MX records"),
        (
            {"type": "TXT", "content": "x", "priority": 10},
            "records[0].priority: only MX records take a priority (this one is TXT)",
        ),
    ],
)
def test_record_shape(record: dict[str, Any], line: str) -> None:
    assert one_record(name="x.example.com", **record) == [f"homelab:dns.{line}"]


def test_names_must_lie_in_the_zone() -> None:
    assert one_record(name="www.exmple.com", type="A", content="198.51.100.4") == [
        "homelab:dns.records[0].name: www.exmple.com is not in zone example.com "
        "(write the full name, or @ for the apex)"
    ]


def test_cname_shares_its_name_with_nothing() -> None:
    recs = [
        {"name": "www.example.com", "type": "CNAME", "content": "external.example.com"},
        {"name": "www.example.com", "type": "TXT", "content": "verify"},
    ]
    assert errors(dns_section(records=recs)) == [
        "homelab:dns.records[1].name: www.example.com already has a CNAME record (records[0]); "
        "a CNAME cannot share its name with any other record"
    ]


def test_gateway_name_cannot_be_repeated_as_a_record() -> None:
    recs = [{"name": "external.example.com", "type": "A", "content": "203.0.113.10", "proxied": True}]
    assert errors(dns_section(records=recs)) == [
        "homelab:dns.records[0].name: A external.example.com → 203.0.113.10 is already gatewayRecords[0]"
    ]


def test_mixed_proxy_status_on_one_name() -> None:
    recs = [
        {"name": "app.example.com", "type": "A", "content": "198.51.100.4", "proxied": True},
        {"name": "app.example.com", "type": "A", "content": "198.51.100.5"},
    ]
    assert errors(dns_section(records=recs, gatewayRecords=[])) == [
        "homelab:dns.records[1].proxied: app.example.com mixes proxied and DNS-only A/AAAA records; "
        "Cloudflare would proxy all of them"
    ]


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ({"zone": "example.com"}, "homelab:dns.zone: unknown key (check the spelling)"),
        (
            {"zoneId": "example.com"},
            "homelab:dns.zoneId: 'example.com' is not a Cloudflare zone id (32 lower-case hex characters)",
        ),
        ({"zoneName": "com"}, "homelab:dns.zoneName: 'com' is not a domain name such as example.com"),
        (
            {"records": [{"name": "a.example.com", "type": "A", "content": "198.51.100.4", "proxy": True}]},
            "homelab:dns.records[0].proxy: unknown key (check the spelling)",
        ),
        (
            {"records": [{"name": "a.example.com", "type": "SRV", "content": "x"}]},
            "homelab:dns.records[0].type: Input should be 'A', 'AAAA', 'CNAME', 'TXT' or 'MX' (got 'SRV')",
        ),
    ],
)
def test_bad_zone_config_gives_one_line(overrides: dict[str, Any], line: str) -> None:
    assert errors(dns_section(**overrides)) == [line]


def test_bad_dns_config_registers_nothing() -> None:
    config = home_config()
    config["homelab:dns"]["records"][0]["proxied"] = "maybe"
    with pytest.raises(ConfigError) as err:
        run_config(config)
    assert err.value.lines == [
        "homelab:dns.records[0].proxied: Input should be a valid boolean, unable to interpret input (got 'maybe')"
    ]


def test_stack_without_dns_has_no_records() -> None:
    config = home_config()
    del config["homelab:dns"]
    capture = run_config(config)
    assert capture.of_type(RECORD) == [] and capture.of_type("homelab:index:CloudflareDns") == []
    assert capture.of_type("talos:machine/configurationApply:ConfigurationApply")


PROBE = """
import json, sys
from pathlib import Path
from plan import offline
capture = offline.run_stack_file(Path(sys.argv[1]))
mods = ("pulumi_cloudflare", "pulumi_onepassword")
print(json.dumps({"types": sorted({r.type for r in capture.resources}), **{m: m in sys.modules for m in mods}}))
"""


def probe(stack_file: str) -> dict[str, Any]:
    """Plan a stack file in a fresh interpreter; report resource types and which SDKs got imported."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, stack_file], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_minimal_stack_imports_neither_sdk() -> None:
    minimal = ROOT / "Pulumi.minimal.yaml"
    data = yaml.safe_load(minimal.read_text())["config"]
    assert "homelab:dns" not in data and "homelab:onepassword" not in data
    result = probe(str(minimal))
    assert result["pulumi_cloudflare"] is False
    assert result["pulumi_onepassword"] is False
    assert "talos:machine/bootstrap:Bootstrap" in result["types"]


def test_home_stack_plans_records_without_the_cloudflare_sdk() -> None:
    # The 1Password SDK is imported because its layer is on: the probe does see imports.
    result = probe(str(HOME))
    assert RECORD in result["types"]
    assert result["pulumi_onepassword"] is True
    assert result["pulumi_cloudflare"] is False


# Registers the same record with the SDK's class and with ours; the engine must see the same request.
PARITY = """
import warnings
warnings.simplefilter("ignore", DeprecationWarning)
import pulumi_cloudflare as cloudflare
from components.dns import DnsRecord

RECORDS = {
    "a": dict(name="a.example.com", type="A", content="203.0.113.1", ttl=1, proxied=True, comment="c"),
    "mx": dict(name="example.com", type="MX", content="mx.example.net", ttl=300, proxied=False, priority=10),
}
for key, args in RECORDS.items():
    args = dict(zone_id="0123456789abcdef0123456789abcdef", **args)
    cloudflare.DnsRecord(f"sdk-{key}", **args)
    DnsRecord(f"ours-{key}", **args)
"""


def test_record_registers_like_the_sdk_resource(tmp_path: Path) -> None:
    program = tmp_path / "parity.py"
    program.write_text(PARITY)
    capture = offline.run("parity", {}, [], program=program)
    assert len(capture.resources) == 4
    for key in ("a", "mx"):
        sdk, ours = capture.by_name(f"sdk-{key}"), capture.by_name(f"ours-{key}")
        assert ours.type == sdk.type == RECORD
        assert ours.inputs == sdk.inputs
        assert (ours.custom, ours.provider, ours.parent) == (sdk.custom, sdk.provider, sdk.parent)
        assert ours.version == sdk.version != ""
    sdk_utilities = importlib.import_module("pulumi_cloudflare._utilities")
    assert sdk_utilities.get_version() == dns.PROVIDER_VERSION
