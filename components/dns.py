"""Cloudflare DNS layer: the records of one zone that Pulumi owns.

The zone is given by id, so preview needs no API look-up. Records come from
``homelab:dns.records`` and ``homelab:dns.gatewayRecords`` (the public names of
the Gateways, which external-dns points app routes at); the rules Cloudflare
enforces (proxied records only A/AAAA/CNAME on public addresses, TTL 1 when
proxied) are checked in the config model, before anything is registered.

Provider: the default provider with its own config key
(``pulumi config set --secret cloudflare:apiToken …`` or ``CLOUDFLARE_API_TOKEN``);
the program never handles the token, and the offline plan needs none.

Why not ``pulumi_cloudflare.DnsRecord``: importing ``pulumi_cloudflare`` loads
every one of its ~780 modules and ~12 MB of type definitions (about 2.5 s and
120 MB here) for the one resource this program uses. :class:`DnsRecord` below
registers the same resource (type token, camelCase inputs, provider version)
without that import; ``tests/test_dns.py`` registers both under mocks and checks
that the engine receives identical requests, so an SDK upgrade that changes the
resource fails the tests rather than the deployment. The provider plugin itself
is found as before: from the installed ``pulumi-cloudflare`` package.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import pulumi

from stacks.config.external import DnsConfig

RECORD_TYPE = "cloudflare:index/dnsRecord:DnsRecord"
"""The resource's type token in pulumi-cloudflare 6.x (``cloudflare.DnsRecord``)."""
PROVIDER_VERSION = metadata.version("pulumi-cloudflare")
"""The provider plugin version, as the SDK pins it on every resource (``_utilities.get_version``)."""


class DnsRecord(pulumi.CustomResource):
    """A Cloudflare DNS record, registered as ``pulumi_cloudflare.DnsRecord`` does (see the module doc).

    The SDK class also carries an alias to the 4.x type ``cloudflare:index/record:Record``,
    which only matters to stacks that created records with that older provider.
    """

    def __init__(
        self,
        resource_name: str,
        *,
        zone_id: str,
        name: str,
        type: str,
        content: str,
        ttl: int,
        proxied: bool,
        comment: str | None = None,
        priority: int | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "zoneId": zone_id,
            "name": name,
            "type": type,
            "content": content,
            "ttl": ttl,
            "proxied": proxied,
            "comment": comment,
            "priority": priority,
        }
        opts = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(version=PROVIDER_VERSION), opts)
        super().__init__(RECORD_TYPE, resource_name, props, opts)


@dataclass(frozen=True)
class CloudflareDnsArgs:
    """Inputs of :class:`CloudflareDns`: its config section."""

    config: DnsConfig


class CloudflareDns(pulumi.ComponentResource):
    """DNS records in one Cloudflare zone; independent of the cluster, so it deploys in parallel."""

    records: dict[str, DnsRecord]
    """Records by key (``<type>-<full name>``, ``-<n>`` for the n-th of the same name and type)."""

    def __init__(self, name: str, args: CloudflareDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:CloudflareDns", name, None, opts)
        cfg = args.config
        self.records = {}
        for rec in cfg.planned():
            self.records[rec.key] = DnsRecord(
                f"{name}-{rec.key}",
                zone_id=cfg.zone_id,
                # Full names: the API returns names in full (never '@' or short forms), so
                # anything else diffs on every run (cloudflare/terraform-provider-cloudflare#5517).
                name=rec.name,
                type=rec.type,
                content=rec.content,
                proxied=rec.proxied,
                ttl=rec.ttl,
                priority=rec.priority,
                comment=rec.comment,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"records": {key: r.id for key, r in self.records.items()}})
