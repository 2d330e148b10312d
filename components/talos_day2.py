"""Day-2 Talos: what ``pulumi up`` does to running nodes besides applying their config.

This module holds the Talos patch the etcd snapshot job needs; the rolling,
health-gated steps (upgrades, reboots, node removal) are wired in
:mod:`components.talos` from the scripts in :mod:`components.talos_steps`.
"""

from __future__ import annotations

from stacks.config.base import Patch
from stacks.config.day2 import ETCD_BACKUP_ROLE, Day2Config


def talos_patches(config: Day2Config) -> list[Patch]:
    """Talos API access for the etcd snapshot job: one role, one namespace, on the control planes that serve it.

    ``machine.features.kubernetesTalosAPIAccess`` lets a ``talos.dev/v1alpha1``
    ServiceAccount in an allowed namespace obtain a Talos client certificate with the
    allowed roles (Talos docs, "Talos API access from Kubernetes"). Only control
    planes run the API server that serves those ServiceAccounts; the setting is
    ignored on workers, so every node gets the same patch.
    """
    if config.etcd_backup is None:
        return []
    access = {
        "enabled": True,
        "allowedRoles": [ETCD_BACKUP_ROLE],
        "allowedKubernetesNamespaces": [config.etcd_backup.namespace],
    }
    return [{"machine": {"features": {"kubernetesTalosAPIAccess": access}}}]
