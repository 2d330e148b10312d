"""Cloudflare DNS layer: the records of one zone that Pulumi owns.

The zone is given by id, so preview needs no API look-up. Records come from
``homelab:dns.records`` and ``homelab:dns.gatewayRecords`` (the public names of
the Gateways, which external-dns points app routes at); the rules Cloudflare
enforces (proxied records only A/AAAA/CNAME on public addresses, TTL 1 when
proxied) are checked in the config model, before anything is registered.

Provider: the default provider with its own config key
(``pulumi config set --secret cloudflare:apiToken …`` or ``CLOUDFLARE_API_TOKEN``);
the program never handles the token, and the offline plan needs none.

``pulumi_cloudflare`` costs seconds and ~120 MB to import: this module is only
imported when ``homelab:dns`` is configured (see ``stacks.graph``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pulumi

with warnings.catch_warnings():
    # The SDK warns at import time about deprecated resources this program does not use.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_cloudflare as cloudflare

from stacks.config_external import DnsConfig


@dataclass(frozen=True)
class CloudflareDnsArgs:
    """Inputs of :class:`CloudflareDns`: its config section."""

    config: DnsConfig


class CloudflareDns(pulumi.ComponentResource):
    """DNS records in one Cloudflare zone; independent of the cluster, so it deploys in parallel."""

    records: dict[str, cloudflare.DnsRecord]
    """Records by key (``<type>-<full name>``, ``-<n>`` for the n-th of the same name and type)."""

    def __init__(self, name: str, args: CloudflareDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:CloudflareDns", name, None, opts)
        cfg = args.config
        self.records = {}
        for rec in cfg.planned():
            self.records[rec.key] = cloudflare.DnsRecord(
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
