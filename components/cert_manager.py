"""cert-manager layer: the jetstack chart with its CRDs, and Let's Encrypt ClusterIssuers (Cloudflare DNS-01).

Facts this follows:
- The chart installs its CRDs with ``crds.enabled: true`` (since v1.15; ``installCRDs``
  is deprecated); ``crds.keep`` stops a chart removal from deleting every
  Certificate with its CRD (cert-manager chart values.yaml).
- The startupapicheck Job is a post-install Helm hook; helm.v4.Chart runs no hooks,
  and Pulumi itself waits for the webhook Deployment, so the Job is left out.
- A ClusterIssuer reads its solver Secret from the cluster resource namespace,
  which defaults to cert-manager's own namespace (chart value
  ``clusterResourceNamespace``): the Cloudflare token Secret lives there.
- helm.v4.Chart runs no hooks, and a ready webhook Deployment does not mean its
  ``caBundle`` is injected yet (cainjector does that afterwards): ClusterIssuers
  created right then fail with "x509: certificate signed by unknown authority".
  pulumi-kubernetes' ``pulumi.com/waitFor`` annotation makes the webhook
  configurations wait until every webhook has a ``caBundle``
  (https://www.pulumi.com/registry/packages/kubernetes/api-docs/yaml/v2/configgroup/,
  "waitFor"; chart values ``webhook.*WebhookConfigurationAnnotations``), and the
  issuers depend on the chart, which waits for its children.
- The DNS-01 self check asks public resolvers: a home LAN often answers its own
  zone from a split-horizon resolver that never sees the TXT record
  (https://cert-manager.io/docs/configuration/acme/dns01/#setting-nameservers-for-dns01-self-check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as k8s_helpers
from stacks.config.platform import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, CertManagerConfig, IssuersConfig

TOKEN_KEY = "api-token"

CA_BUNDLE_WAIT = {"pulumi.com/waitFor": "jsonpath={.webhooks[*].clientConfig.caBundle}"}
"""Wait until cainjector has put a CA bundle into every webhook (see the module docstring)."""
"""Key of the Cloudflare token in its Secret."""


def chart_values(config: CertManagerConfig) -> dict[str, Any]:
    """Chart values from the typed config, with ``config.values`` merged over them."""
    values: dict[str, Any] = {
        "crds": {"enabled": True, "keep": True},
        "startupapicheck": {"enabled": False},
        "webhook": {
            "validatingWebhookConfigurationAnnotations": dict(CA_BUNDLE_WAIT),
            "mutatingWebhookConfigurationAnnotations": dict(CA_BUNDLE_WAIT),
        },
    }
    if config.dns01_recursive_nameservers:
        values["dns01RecursiveNameservers"] = ",".join(config.dns01_recursive_nameservers)
        values["dns01RecursiveNameserversOnly"] = True
    return k8s_helpers.deep_merge(values, config.values)


def issuer_spec(issuers: IssuersConfig, server: str, account_key_secret: str) -> dict[str, Any]:
    """``ClusterIssuer.spec``: ACME with one Cloudflare DNS-01 solver for the configured zones."""
    return {
        "acme": {
            "server": server,
            "email": issuers.email,
            "privateKeySecretRef": {"name": account_key_secret},
            "solvers": [
                {
                    "selector": {"dnsZones": list(issuers.dns_zones)},
                    "dns01": {
                        "cloudflare": {
                            "apiTokenSecretRef": {"name": issuers.token_secret_name, "key": TOKEN_KEY},
                        }
                    },
                }
            ],
        }
    }


@dataclass(frozen=True)
class CertManagerArgs:
    """Inputs of :class:`CertManager`: its config section, the Cloudflare token and what the chart waits for."""

    config: CertManagerConfig
    cloudflare_api_token: pulumi.Input[str] | None = None
    """Required when the issuers are enabled (checked in the wiring, before anything is registered)."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What the chart waits for (the CNI): its pods need a pod network."""


class CertManager(pulumi.ComponentResource):
    """cert-manager from its chart, plus production and staging Let's Encrypt ClusterIssuers when configured.

    ``opts.provider`` (the cluster's Kubernetes provider) is passed to every child.
    """

    namespace: k8s.core.v1.Namespace
    chart: k8s.helm.v4.Chart
    """The chart, CRDs included; ClusterIssuers wait for it."""
    token_secret: k8s.core.v1.Secret | None
    issuers: dict[str, k8s.apiextensions.CustomResource]
    """ClusterIssuers by name (empty when the issuers are off)."""

    def __init__(self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:index:CertManager", name, None, opts)
        config = args.config
        provider = opts.provider if opts else None

        self.namespace = k8s_helpers.namespace(
            f"{name}-namespace",
            config.namespace,
            # cert-manager's pods run as non-root with no capabilities (chart securityContext).
            "restricted",
            pulumi.ResourceOptions(parent=self, provider=provider),
        )
        ns_name = self.namespace.metadata.name
        self.chart = k8s_helpers.chart(
            f"{name}-chart",
            config.chart,
            config.namespace,
            chart_values(config),
            pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(args.depends_on)),
            namespace=self.namespace,
        )

        self.token_secret = None
        self.issuers = {}
        issuers = config.issuers
        if config.issuers_enabled and issuers is not None:
            if args.cloudflare_api_token is None:
                raise ValueError("issuers are enabled but no Cloudflare API token was given")
            self.token_secret = k8s.core.v1.Secret(
                f"{name}-cloudflare-token",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=issuers.token_secret_name, namespace=ns_name),
                type="Opaque",
                # Secret whatever its source: the value must never be stored in plaintext.
                data={TOKEN_KEY: k8s_helpers.secret_data(args.cloudflare_api_token)},
                opts=pulumi.ResourceOptions(parent=self, provider=provider),
            )
            # The CRDs come with the chart; an issuer without its token Secret stays not Ready.
            after = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.chart, self.token_secret])
            for role, issuer_name, server in (
                ("production", issuers.production_name, LETSENCRYPT_PRODUCTION),
                ("staging", issuers.staging_name, LETSENCRYPT_STAGING),
            ):
                self.issuers[issuer_name] = k8s.apiextensions.CustomResource(
                    f"{name}-issuer-{role}",
                    api_version="cert-manager.io/v1",
                    kind="ClusterIssuer",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=issuer_name),
                    spec=issuer_spec(issuers, server, f"{issuer_name}-account-key"),
                    opts=after,
                )
        self.register_outputs({"namespace": ns_name, "issuers": list(self.issuers)})
