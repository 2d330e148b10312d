"""Config models of the external services: 1Password (``homelab:onepassword``) and Cloudflare DNS (``homelab:dns``).

Both sections are optional: a stack without them plans and deploys the rest, and
the secret inputs then come from ``pulumi config set --secret homelab:<key>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from stacks.config.base import Model, matching


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, AfterValidator(_text)]
"""A string with at least one non-blank character."""


# ---------------------------------------------------------------------------
# 1Password
# ---------------------------------------------------------------------------

# Fields the provider's getItem data source returns at the top level of an item
# (pulumi_onepassword.GetItemResult); any other name is looked up among the
# labels of the item's custom fields.
BUILTIN_ITEM_FIELDS: dict[str, str] = {
    "password": "password",
    "username": "username",
    "credential": "credential",
    "noteValue": "note_value",
    "privateKey": "private_key",
    "privateKeyOpenssh": "private_key_openssh",
    "publicKey": "public_key",
    "url": "url",
    "hostname": "hostname",
    "database": "database",
    "port": "port",
}


class ItemRef(Model):
    """Where one secret lives in 1Password: an item by title, and one of its fields."""

    title: Text = Field(description="Item title, exactly as in 1Password.")
    field: Text = Field(
        "password",
        description=(
            "Field to read: a built-in field (" + ", ".join(BUILTIN_ITEM_FIELDS) + ") or the label of a custom field."
        ),
    )
    section: Text | None = Field(
        None, description="Only look for the custom field in the section with this label (default: any section)."
    )
    vault: Text | None = Field(None, description="Vault name, when it is not homelab:onepassword.vault.")


class OnePasswordItems(Model):
    """Which secret inputs are read from 1Password; one optional entry per input.

    The field names match :class:`stacks.secrets.SecretInputs` (a test keeps them
    equal). An input listed here must not also be set with ``pulumi config set
    --secret homelab:<key>``: the loader rejects the pair, so no value silently
    shadows another.
    """

    cloudflare_api_token: ItemRef | None = Field(None, description="Cloudflare API token for cert-manager DNS-01.")
    sops_age_key: ItemRef | None = Field(None, description="age private key Flux uses to decrypt SOPS files.")
    git_credentials: ItemRef | None = Field(None, description="Flux pull credential: SSH deploy key or HTTPS token.")
    onepassword_connect_credentials: ItemRef | None = Field(
        None, description="1password-credentials.json of 1Password Connect."
    )
    onepassword_connect_token: ItemRef | None = Field(
        None, description="Access token External Secrets uses with 1Password Connect."
    )

    def listed(self) -> dict[str, ItemRef]:
        """The configured entries, by ``SecretInputs`` field name, in declaration order."""
        return {name: ref for name in type(self).model_fields if (ref := getattr(self, name)) is not None}


class OnePasswordBackup(Model):
    """Where the program's own secrets are backed up (disaster recovery without Pulumi state)."""

    vault: Text = Field(description="Vault name for the backup items (keep it separate from everyday vaults).")
    title_prefix: Text | None = Field(None, description="Prefix of the item titles; defaults to the cluster name.")


class OnePasswordConfig(Model):
    """The 1Password layer (``homelab:onepassword``).

    Provider credentials are the provider's own config, never ours:
    ``pulumi config set --secret onepassword:serviceAccountToken …`` (or
    ``onepassword:url`` + ``onepassword:token`` for a Connect server).
    """

    vault: Text = Field(description="Name of the vault the items are read from.")
    items: OnePasswordItems = Field(OnePasswordItems(), description="Secret inputs to read, by input name.")
    backup: OnePasswordBackup | None = Field(
        None, description="Back up Talos machine secrets, talosconfig and kubeconfig into 1Password items."
    )

    def vaults(self) -> list[str]:
        """Every vault name this config reads from or writes to, without repeats, in a stable order."""
        names = [self.vault, *(ref.vault for ref in self.items.listed().values() if ref.vault)]
        if self.backup is not None:
            names.append(self.backup.vault)
        return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------
# Cloudflare DNS
# ---------------------------------------------------------------------------

ZONE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# A DNS name as Cloudflare takes it: letters, digits, '-', '_' (e.g. _dmarc), an optional leading '*' label.
DNS_NAME_RE = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HOSTNAME_RE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")

# Addresses Cloudflare's proxy can never reach: it connects to origins over the
# internet. Named explicitly rather than with ``is_private``, which also covers
# documentation ranges and leaves out CGNAT.
PRIVATE_NETWORKS: tuple[tuple[IPv4Network | IPv6Network, str], ...] = (
    (IPv4Network("10.0.0.0/8"), "RFC 1918"),
    (IPv4Network("172.16.0.0/12"), "RFC 1918"),
    (IPv4Network("192.168.0.0/16"), "RFC 1918"),
    (IPv4Network("100.64.0.0/10"), "CGNAT, RFC 6598"),
    (IPv4Network("127.0.0.0/8"), "loopback"),
    (IPv4Network("169.254.0.0/16"), "link-local"),
    (IPv4Network("0.0.0.0/8"), "this network"),
    (IPv6Network("fc00::/7"), "unique local, RFC 4193"),
    (IPv6Network("fe80::/10"), "link-local"),
    (IPv6Network("::1/128"), "loopback"),
    (IPv6Network("::/128"), "unspecified"),
)

# https://developers.cloudflare.com/dns/proxy-status/ : only A, AAAA and CNAME records can be proxied.
PROXIABLE = frozenset({"A", "AAAA", "CNAME"})
# https://developers.cloudflare.com/dns/manage-dns-records/reference/ttl/ : 1 is "automatic";
# DNS-only records take 60 s (30 s on Enterprise zones) up to 1 day; proxied records are always automatic.
AUTO_TTL = 1
MIN_TTL = 60
MAX_TTL = 86400


def private_kind(address: IPv4Address | IPv6Address) -> str | None:
    """Why ``address`` cannot be an origin behind Cloudflare's proxy, or ``None`` if it is public."""
    for network, kind in PRIVATE_NETWORKS:
        if address.version == network.version and address in network:
            return kind
    return None


def _dns_name(value: str) -> str:
    value = value.lower().removesuffix(".")
    if value != "@" and not DNS_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a DNS name (letters, digits, '-', '_', a leading '*.' for a wildcard)")
    return value


DnsName = Annotated[str, AfterValidator(_dns_name)]
ZoneId = Annotated[str, matching(ZONE_ID_RE, "a Cloudflare zone id (32 lower-case hex characters)")]


def _ttl_problem(ttl: int, proxied: bool) -> str | None:
    if proxied and ttl != AUTO_TTL:
        return f"{ttl} on a proxied record: Cloudflare always serves proxied records with TTL 1 (automatic)"
    if ttl != AUTO_TTL and not MIN_TTL <= ttl <= MAX_TTL:
        return f"{ttl} must be 1 (automatic) or {MIN_TTL} to {MAX_TTL} seconds"
    return None


class DnsRecordConfig(Model):
    """One DNS record in the zone."""

    name: DnsName = Field(description="Full name inside the zone (e.g. www.example.com), or @ for the apex.")
    type: Literal["A", "AAAA", "CNAME", "TXT", "MX"] = Field(description="Record type.")
    content: Text = Field(description="Address (A/AAAA), target host name (CNAME/MX) or text (TXT).")
    proxied: bool = Field(False, description="Send traffic through Cloudflare's proxy (A/AAAA/CNAME, public only).")
    ttl: int = Field(AUTO_TTL, description="TTL in seconds: 1 = automatic (required when proxied), else 60 to 86400.")
    priority: int | None = Field(None, ge=0, le=65535, description="MX preference (MX records only, required).")
    comment: Text | None = Field(None, description="Note shown in the Cloudflare dashboard.")

    @model_validator(mode="after")
    def _shape(self) -> DnsRecordConfig:
        problems: list[str] = []
        content = self.content
        if self.type in ("A", "AAAA"):
            try:
                address = ip_address(content)
            except ValueError:
                address = None
            want = 4 if self.type == "A" else 6
            if address is None or address.version != want:
                problems.append(f"content: {content!r} is not an IPv{want} address (type {self.type})")
            elif self.proxied and (kind := private_kind(address)):
                problems.append(f"proxied: {content} is a private address ({kind}); it cannot be proxied by Cloudflare")
        elif self.type in ("CNAME", "MX") and not HOSTNAME_RE.match(content.lower().removesuffix(".")):
            problems.append(f"content: {content!r} is not a host name (type {self.type} points to a name)")
        if self.proxied and self.type not in PROXIABLE:
            problems.append(f"proxied: {self.type} records cannot be proxied (only A, AAAA and CNAME)")
        if (why := _ttl_problem(self.ttl, self.proxied)) is not None:
            problems.append(f"ttl: {why}")
        if self.type == "MX" and self.priority is None:
            problems.append("priority: is required for MX records")
        if self.type != "MX" and self.priority is not None:
            problems.append(f"priority: only MX records take a priority (this one is {self.type})")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class GatewayRecordConfig(Model):
    """The public name of a Gateway (A or AAAA by the address).

    external-dns points each app route at this name with a CNAME
    (``external-dns.alpha.kubernetes.io/target`` on the Gateway in
    kubernetes/apps/networking/envoy-gateway), so it is the one record Pulumi
    owns for the Gateway; the routes' records belong to external-dns.
    """

    hostname: DnsName = Field(description="The Gateway's public name, e.g. external.example.com.")
    address: IPv4Address | IPv6Address = Field(
        description="Address the name resolves to: the WAN address forwarded to the Gateway, or its LB address."
    )
    gateway: Text = Field(description="Which Gateway this is, <namespace>/<name>, for the record's comment.")
    proxied: bool = Field(False, description="Send traffic through Cloudflare's proxy (public addresses only).")

    @model_validator(mode="after")
    def _proxy(self) -> GatewayRecordConfig:
        if self.proxied and (kind := private_kind(self.address)):
            raise ValueError(
                f"proxied: {self.address} is a private address ({kind}); it cannot be proxied by Cloudflare"
            )
        return self


@dataclass(frozen=True)
class PlannedRecord:
    """A record as it is sent to Cloudflare: full name, defaults filled in, a stable logical name."""

    key: str
    """Logical name suffix: ``<type>-<name>``, plus ``-<n>`` for the n-th record of the same name and type."""
    source: str
    """The config path it came from, e.g. ``records[2]``."""
    name: str
    type: str
    content: str
    proxied: bool
    ttl: int
    comment: str
    priority: int | None = None


DEFAULT_COMMENT = "managed by homelab (Pulumi)"


class DnsConfig(Model):
    """The Cloudflare DNS layer (``homelab:dns``).

    The zone is given by id so preview needs no API look-up. The provider's token
    is its own config: ``pulumi config set --secret cloudflare:apiToken …``.
    """

    zone_id: ZoneId = Field(description="Cloudflare zone id (32 hex characters, from the zone overview page).")
    zone_name: DnsName = Field(description="The zone's domain, e.g. example.com; every record name lies inside it.")
    records: tuple[DnsRecordConfig, ...] = Field((), description="Records of the zone that Pulumi owns.")
    gateway_records: tuple[GatewayRecordConfig, ...] = Field(
        (), description="Public names of the Gateways (targets of external-dns CNAMEs)."
    )

    def _full_name(self, name: str) -> str:
        return self.zone_name if name == "@" else name

    def planned(self) -> list[PlannedRecord]:
        """Every record to create, gateway records first, with full names and stable keys."""
        raw: list[tuple[str, str, str, str, bool, int, str, int | None]] = []
        for i, g in enumerate(self.gateway_records):
            rtype = "A" if g.address.version == 4 else "AAAA"
            comment = f"{DEFAULT_COMMENT}: Gateway {g.gateway}"
            raw.append((f"gatewayRecords[{i}]", g.hostname, rtype, str(g.address), g.proxied, AUTO_TTL, comment, None))
        for i, r in enumerate(self.records):
            comment = r.comment or DEFAULT_COMMENT
            name = self._full_name(r.name)
            raw.append((f"records[{i}]", name, r.type, r.content, r.proxied, r.ttl, comment, r.priority))
        seen: dict[tuple[str, str], int] = {}
        out: list[PlannedRecord] = []
        for source, name, rtype, content, proxied, ttl, comment, priority in raw:
            n = seen[(name, rtype)] = seen.get((name, rtype), 0) + 1
            key = f"{rtype.lower()}-{name}" + (f"-{n}" if n > 1 else "")
            out.append(PlannedRecord(key, source, name, rtype, content, proxied, ttl, comment, priority))
        return out

    @model_validator(mode="after")
    def _zone(self) -> DnsConfig:
        problems: list[str] = []
        zone = self.zone_name
        if zone == "@" or "." not in zone or zone.startswith("*"):
            raise ValueError(f"zoneName: {zone!r} is not a domain name such as example.com")
        planned = self.planned()
        field_of = {"records": "name", "gatewayRecords": "hostname"}
        by_name: dict[str, list[PlannedRecord]] = {}
        for rec in planned:
            where = f"{rec.source}.{field_of[rec.source.split('[')[0]]}"
            if rec.name != zone and not rec.name.endswith("." + zone):
                problems.append(f"{where}: {rec.name} is not in zone {zone} (write the full name, or @ for the apex)")
                continue
            same = by_name.setdefault(rec.name, [])
            for other in same:
                if (other.type, other.content.lower()) == (rec.type, rec.content.lower()):
                    problems.append(f"{where}: {rec.type} {rec.name} → {rec.content} is already {other.source}")
                elif "CNAME" in (rec.type, other.type):
                    problems.append(
                        f"{where}: {rec.name} already has a {other.type} record ({other.source}); "
                        "a CNAME cannot share its name with any other record"
                    )
            same.append(rec)
        # https://developers.cloudflare.com/dns/proxy-status/proxied-records/ : if one A/AAAA record of
        # a name is proxied, Cloudflare proxies all of them; say so instead of letting it happen.
        for name, recs in by_name.items():
            addr = [r for r in recs if r.type in ("A", "AAAA")]
            if len({r.proxied for r in addr}) > 1:
                first = next(r for r in addr if r.proxied != addr[0].proxied)
                problems.append(
                    f"{first.source}.proxied: {name} mixes proxied and DNS-only A/AAAA records; "
                    "Cloudflare would proxy all of them"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self
