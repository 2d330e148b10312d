"""Config section of day-2 operations: ``homelab:day2``.

How ``pulumi up`` rolls changes over the nodes (Talos upgrades, staged-config
reboots), how long each bounded wait may take, and the Talos API access the
etcd snapshot job (the ``talos-backup`` app in the Flux tree) needs.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from stacks.config.base import Model, NonEmpty, matching

# Go's time.ParseDuration, as talosctl reads --wait-timeout / --timeout.
DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h))+$")
Duration = Annotated[str, matching(DURATION_RE, "a duration such as 90s, 10m or 1h30m")]

ETCD_BACKUP_ROLE = "os:etcd:backup"
"""The Talos API role that may take etcd snapshots and nothing else (Talos docs, "Talos API access from Kubernetes")."""


class EtcdBackupConfig(Model):
    """Talos API access for the etcd snapshot job (``machine.features.kubernetesTalosAPIAccess``)."""

    namespace: NonEmpty = Field(
        "talos-backup", description="Namespace whose talos.dev ServiceAccounts may take etcd snapshots."
    )


class Day2Config(Model):
    """Rolling, health-gated day-2 steps of ``pulumi up`` (``homelab:day2``)."""

    worker_batch: int = Field(
        1,
        ge=1,
        description="Workers without OSD disks upgraded or rebooted at a time; control planes and OSD nodes "
        "always go one at a time.",
    )
    health_timeout: Duration = Field("10m", description="Bound of each health check (talosctl health --wait-timeout).")
    upgrade_timeout: Duration = Field("30m", description="Bound of one node's Talos upgrade (talosctl --timeout).")
    ceph_timeout: Duration = Field("30m", description="Bound of each wait for Ceph HEALTH_OK around a reboot.")
    api_timeout: Duration = Field("15m", description="Bound of the wait for the API server's /readyz after bootstrap.")
    etcd_backup: EtcdBackupConfig | None = Field(
        None, description="Let the etcd snapshot job in this namespace call the Talos API (os:etcd:backup)."
    )


def seconds(duration: str) -> int:
    """A Go duration (``1h30m``) in whole seconds, rounded up."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = sum(float(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h)", duration))
    return max(1, -int(-total // 1))
