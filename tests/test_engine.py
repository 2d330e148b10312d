"""What the program sends for behaviours only the real engine shows (DESIGN.md, "Facts of the real engine").

Each test names the upstream source of the behaviour it guards against.
"""

from __future__ import annotations

import base64

from plan import offline
from tests.conftest import reveal

CHART = "kubernetes:helm.sh/v4:Chart"
NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
PROVIDER = "pulumi:providers:kubernetes"


def test_provider_is_replaced_only_when_the_cluster_is(home: offline.Capture) -> None:
    # pulumi-kubernetes replaces its provider, and so plans to replace every object, when the
    # kubeconfig is unknown at preview, unless clusterIdentifier is set (Provider docs,
    # "clusterIdentifier"); a protected CephCluster then fails the preview (pulumi/pulumi#15969).
    [provider] = home.of_type(PROVIDER)
    assert provider.inputs["clusterIdentifier"] == "home"


def test_nothing_is_adopted(home: offline.Capture) -> None:
    # With upsertExistingObjects, a rename without aliases deletes the object it had adopted.
    [provider] = home.of_type(PROVIDER)
    assert "upsertExistingObjects" not in provider.inputs


def test_charts_get_their_namespace_as_a_plain_string(home: offline.Capture) -> None:
    # A helm.v4 Chart whose namespace is unknown at preview renders no children, so neither the
    # preview nor the policy pack sees its objects: the name is a string, the Namespace a dependency.
    namespaces = {r.inputs["metadata"]["name"]: r.urn for r in home.of_type(NAMESPACE)}
    charts = home.of_type(CHART)
    assert len(charts) == 6
    for chart in charts:
        assert isinstance(chart.inputs["namespace"], str), chart.name
        assert not chart.property_dependencies.get("namespace"), chart.name
        created = namespaces.get(chart.inputs["namespace"])
        if created is not None:
            assert created in chart.dependencies, chart.name
    # Only kube-system (which exists on every cluster) is not created by a layer.
    assert {c.inputs["namespace"] for c in charts} - set(namespaces) == {"kube-system"}


def test_secrets_are_written_as_data(home: offline.Capture) -> None:
    # The API server folds stringData into data and returns no stringData: under server-side apply
    # a Secret written through stringData shows a diff on every preview.
    secrets = home.of_type(SECRET)
    assert len(secrets) >= 5
    for secret in secrets:
        assert "stringData" not in secret.inputs, secret.name
        for key, value in reveal(secret.inputs["data"]).items():
            assert base64.b64encode(base64.b64decode(value, validate=True)).decode() == value, (secret.name, key)
