"""Secret inputs of the platform: credentials the layers need but the program does not generate.

Each value is a Pulumi secret ``Output[str]`` or ``None`` when not configured.
By default they come from ``pulumi config set --secret homelab:<key> …``; the
1Password layer can supply them instead (see components/onepassword.py).
Nothing here is ever stored in plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pulumi

from stacks.config.base import NAMESPACE


@dataclass(frozen=True)
class SecretInputs:
    """Credentials handed to the layers as typed Pulumi inputs."""

    cloudflare_api_token: pulumi.Output[str] | None = None
    """Cloudflare API token for cert-manager DNS-01 (and external-dns)."""
    sops_age_key: pulumi.Output[str] | None = None
    """age private key Flux uses to decrypt SOPS files."""
    git_credentials: pulumi.Output[str] | None = None
    """Flux pull credential for a private repository: SSH deploy key (PEM) or HTTPS token."""
    onepassword_connect_credentials: pulumi.Output[str] | None = None
    """1password-credentials.json for 1Password Connect."""
    onepassword_connect_token: pulumi.Output[str] | None = None
    """Access token External Secrets uses to talk to 1Password Connect."""


def config_key(field_name: str) -> str:
    """The ``homelab:`` config key of a secret input (camelCase, as ``pulumi config set`` takes it)."""
    head, *rest = field_name.split("_")
    return head + "".join(p.capitalize() for p in rest)


SECRET_CONFIG_KEYS = frozenset(config_key(f.name) for f in fields(SecretInputs))


def from_config() -> SecretInputs:
    """Secret inputs set with ``pulumi config set --secret homelab:<key>``; ``None`` where unset."""
    cfg = pulumi.Config(NAMESPACE)
    return SecretInputs(**{f.name: cfg.get_secret(config_key(f.name)) for f in fields(SecretInputs)})


def combine(base: SecretInputs, extra: SecretInputs) -> SecretInputs:
    """``base`` with the inputs ``extra`` supplies filled in (e.g. config secrets + 1Password).

    An input set in both is an error, not a silent override: the loader already
    rejects such a config with one line (see ``loader.parse``).
    """
    names = [f.name for f in fields(SecretInputs)]
    both = [n for n in names if getattr(base, n) is not None and getattr(extra, n) is not None]
    if both:
        raise ValueError(f"secret inputs given twice: {', '.join(config_key(n) for n in both)}")
    picked = {n: getattr(base, n) if getattr(base, n) is not None else getattr(extra, n) for n in names}
    return SecretInputs(**picked)
