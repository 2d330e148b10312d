"""The Flux tree under kubernetes/ and its validator (tools/validate_kubernetes.py).

The real tree must pass every check. Each broken case copies a small tree into
tmp_path, breaks one thing and asserts the exact one-line problem.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from plan import offline
from tools import validate_kubernetes as vk

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO.parent / "shared" / "schemas"

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("KUBECTL", "kubectl")) is None,
    reason="kubectl (with kustomize v5) is needed to build the Flux tree",
)


def _schemas() -> Path:
    if not (SCHEMAS / "crds").is_dir():
        pytest.skip("CRD schemas not found at ../shared/schemas/crds (only present next to the project checkout)")
    return SCHEMAS


# --- the real tree ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_render() -> vk.Render:
    return vk.render(REPO)


def test_real_tree_renders_every_kustomization(real_render: vk.Render) -> None:
    assert real_render.problems == []
    names = {ks.name for ks in real_render.kustomizations}
    assert {
        "cluster-apps",
        "external-secrets-stores",
        "ollama",
        "qdrant",
        "tautulli",
        "sabnzbd",
        "maintainerr",
        "cloudnative-pg",
        "barman-cloud",
        "postgres",
        "wikijs",
        "garage",
        "actions-runner-controller",
        "actions-runners",
        "snapshot-controller",
        "snapshot-classes",
        "volsync",
        "volsync-maintenance",
        "envoy-gateway",
        "envoy-gateway-config",
        "external-dns-cloudflare",
        "external-dns-unifi",
        "kube-prometheus-stack",
        "loki",
        "flux-webhook",
        "prometheus-operator-crds",
        "alloy",
        "talos-backup",
    } <= names


@pytest.mark.parametrize(
    "check",
    [
        vk.check_unused_files,
        vk.check_kustomizations,
        vk.check_chart_sources,
        vk.check_external_secrets,
        vk.check_pulumi_owned,
        vk.check_namespaces,
    ],
)
def test_real_tree_passes(real_render: vk.Render, check: object) -> None:
    assert callable(check)
    assert check(real_render) == []


@pytest.mark.parametrize("check", [vk.check_headers, vk.check_plaintext_secrets, vk.check_app_layout])
def test_real_tree_files_pass(check: object) -> None:
    assert callable(check)
    assert check(REPO) == []


def test_real_tree_validates_against_schemas(real_render: vk.Render) -> None:
    assert vk.check_schemas(real_render, _schemas()) == []


def test_real_tree_applies_helmrelease_defaults_and_substitution(real_render: vk.Render) -> None:
    release = next(b for b in real_render.objects if b.kind == "HelmRelease" and b.name == "tautulli")
    assert release.obj["spec"]["upgrade"]["remediation"] == {"retries": 3, "strategy": "rollback"}
    assert release.obj["spec"]["values"]["route"]["app"]["hostnames"] == ["tautulli.example.com"]
    pvc = next(b for b in real_render.objects if b.kind == "PersistentVolumeClaim" and b.name == "tautulli")
    assert pvc.file == "kubernetes/components/volsync/pvc.yaml"
    assert pvc.namespace == "media"
    assert pvc.obj["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_real_tree_declares_the_volsync_snapshot_class(real_render: vk.Render) -> None:
    """VolSync's default VolumeSnapshotClass is in the tree, after the snapshot CRDs and before VolSync."""
    [built] = [b for b in real_render.objects if b.kind == "VolumeSnapshotClass"]
    assert built.name == "csi-ceph-blockpool"
    assert built.namespace == ""
    assert "namespace" not in built.obj["metadata"]
    component = (REPO / "kubernetes/components/volsync/replicationsource.yaml").read_text()
    assert f"${{VOLSYNC_SNAPSHOTCLASS:={built.name}}}" in component
    depends = {ks.name: [d["name"] for d in ks.spec.get("dependsOn") or []] for ks in real_render.kustomizations}
    assert built.kustomization.name == "snapshot-classes"
    assert depends["snapshot-classes"] == ["snapshot-controller"]
    assert "snapshot-classes" in depends["volsync"]


def test_snapshot_class_matches_pulumis_storage_class(real_render: vk.Render, home: offline.Capture) -> None:
    """Driver, Ceph cluster and CSI Secret are those of the ceph-block StorageClass Pulumi's Rook layer makes."""
    [built] = [b for b in real_render.objects if b.kind == "VolumeSnapshotClass"]
    [sc] = [r.inputs for r in home.resources if r.type.endswith(":StorageClass")]
    params = sc["parameters"]
    assert built.obj["driver"] == sc["provisioner"]
    assert built.obj["parameters"] == {
        "clusterID": params["clusterID"],
        "csi.storage.k8s.io/snapshotter-secret-name": params["csi.storage.k8s.io/provisioner-secret-name"],
        "csi.storage.k8s.io/snapshotter-secret-namespace": params["csi.storage.k8s.io/provisioner-secret-namespace"],
    }


def _settings(render_: vk.Render) -> dict[str, str]:
    built = render_.find("ConfigMap", "flux-system", "cluster-settings")
    assert built is not None
    return dict(built.obj["data"])


def _of_kind(render_: vk.Render, kind: str) -> list[vk.BuiltObject]:
    return [b for b in render_.objects if b.kind == kind]


def test_volsync_backs_up_with_kopia_into_the_nas_repository(real_render: vk.Render) -> None:
    """Every mover is Kopia, writing to the NFS export named in cluster-settings; maintenance covers it."""
    settings = _settings(real_render)
    nfs = {"server": settings["NAS_ADDRESS"], "path": settings["NAS_VOLSYNC_PATH"]}
    sources = _of_kind(real_render, "ReplicationSource")
    destinations = _of_kind(real_render, "ReplicationDestination")
    [maintenance] = _of_kind(real_render, "KopiaMaintenance")
    assert sources and len(sources) == len(destinations)
    for built in [*sources, *destinations]:
        spec = built.obj["spec"]
        assert set(spec) & {"restic", "rclone", "rsync", "rsyncTLS", "syncthing"} == set(), built.ref()
        [volume] = spec["kopia"]["moverVolumes"]
        assert volume == {"mountPath": "repository", "volumeSource": {"nfs": nfs}}, built.ref()
    [volume] = maintenance.obj["spec"]["moverVolumes"]
    assert volume["volumeSource"]["nfs"] == nfs
    repository_urls = set()
    for secret in _of_kind(real_render, "ExternalSecret"):
        data = secret.obj["spec"]["target"].get("template", {}).get("data", {})
        if "KOPIA_REPOSITORY" in data:
            repository_urls.add((data["KOPIA_REPOSITORY"], data["KOPIA_FS_PATH"]))
    # moverVolumes are mounted under /mnt/<mountPath>.
    assert repository_urls == {("filesystem:///mnt/repository", "/mnt/repository")}


def test_volsync_restores_each_pvc_from_its_own_source(real_render: vk.Render) -> None:
    """A backed-up PVC is populated by a ReplicationDestination reading its ReplicationSource's snapshots."""
    sources = {(b.namespace, b.name) for b in _of_kind(real_render, "ReplicationSource")}
    for pvc in _of_kind(real_render, "PersistentVolumeClaim"):
        ref = pvc.obj["spec"].get("dataSourceRef")
        if not ref:
            continue
        assert ref["kind"] == "ReplicationDestination"
        destination = real_render.find("ReplicationDestination", pvc.namespace, ref["name"])
        assert destination is not None, pvc.ref()
        identity = destination.obj["spec"]["kopia"]["sourceIdentity"]
        assert (pvc.namespace, identity["sourceName"]) in sources
        assert identity["sourcePVCName"] == pvc.name


def test_volsync_runs_the_kopia_fork(real_render: vk.Render) -> None:
    release = real_render.find("HelmRelease", "volsync-system", "volsync")
    source = real_render.find("OCIRepository", "volsync-system", "volsync")
    assert release is not None and source is not None
    assert source.obj["spec"]["url"] == "oci://ghcr.io/home-operations/charts-mirror/volsync-perfectra1n"
    values = release.obj["spec"]["values"]
    assert values["image"]["repository"] == "ghcr.io/perfectra1n/volsync"
    for mover in ("kopia", "rclone", "restic", "rsync", "rsync-tls", "syncthing"):
        assert values[mover] == values["image"], mover


BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"


def _secret_targets(render_: vk.Render, namespace: str) -> dict[str, set[str]]:
    """Secrets the tree's ExternalSecrets produce in a namespace, with their keys (from the template)."""
    out: dict[str, set[str]] = {}
    for built in _of_kind(render_, "ExternalSecret"):
        if built.namespace == namespace:
            target = built.obj["spec"]["target"]
            out[target["name"]] = set(target.get("template", {}).get("data", {}))
    return out


def test_postgres_archives_wal_and_backs_up_to_the_object_store(real_render: vk.Render) -> None:
    """WAL archiving and the scheduled backups go through the barman-cloud plugin to an ObjectStore in the tree."""
    [cluster] = _of_kind(real_render, "Cluster")
    [plugin] = cluster.obj["spec"]["plugins"]
    assert plugin["name"] == BARMAN_PLUGIN and plugin["isWALArchiver"] is True
    store = real_render.find("ObjectStore", cluster.namespace, plugin["parameters"]["barmanObjectName"])
    assert store is not None
    configuration = store.obj["spec"]["configuration"]
    assert configuration["endpointURL"] == _settings(real_render)["NAS_S3_ENDPOINT"]
    secrets = _secret_targets(real_render, cluster.namespace)
    for ref in configuration["s3Credentials"].values():
        assert ref["key"] in secrets[ref["name"]]
    [backup] = _of_kind(real_render, "ScheduledBackup")
    assert backup.obj["spec"]["cluster"]["name"] == cluster.name
    assert backup.obj["spec"]["method"] == "plugin"
    assert backup.obj["spec"]["pluginConfiguration"]["name"] == BARMAN_PLUGIN
    assert len(backup.obj["spec"]["schedule"].split()) == 6, "CloudNativePG schedules have a seconds field"
    depends = {ks.name: [d["name"] for d in ks.spec.get("dependsOn") or []] for ks in real_render.kustomizations}
    assert "barman-cloud" in depends[cluster.kustomization.name]
    assert "cloudnative-pg" in depends["barman-cloud"]


def test_github_webhook_reaches_the_flux_receiver(real_render: vk.Render) -> None:
    """A github Receiver with its token from 1Password, routed from the external Gateway."""
    [receiver] = _of_kind(real_render, "Receiver")
    spec = receiver.obj["spec"]
    assert receiver.namespace == "flux-system" and spec["type"] == "github"
    assert {"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"}.items() <= spec["resources"][
        0
    ].items()
    assert "token" in _secret_targets(real_render, "flux-system")[spec["secretRef"]["name"]]
    route = real_render.find("HTTPRoute", "flux-system", "flux-webhook")
    assert route is not None
    assert route.obj["spec"]["hostnames"] == [f"flux-webhook.{_settings(real_render)['PUBLIC_DOMAIN']}"]
    assert route.obj["spec"]["parentRefs"] == [{"name": "external", "namespace": "networking", "sectionName": "https"}]
    [rule] = route.obj["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/hook/"}}]
    assert rule["backendRefs"] == [{"name": "webhook-receiver", "port": 80}]


def test_alloy_ships_every_pods_logs_to_loki(real_render: vk.Render) -> None:
    """Alloy runs on every node, tails its node's pods and pushes to the Loki that Grafana reads."""
    alloy = real_render.find("HelmRelease", "observability", "alloy")
    grafana = real_render.find("HelmRelease", "observability", "kube-prometheus-stack")
    loki = real_render.find("HelmRelease", "observability", "loki")
    assert alloy is not None and grafana is not None and loki is not None
    values = alloy.obj["spec"]["values"]
    assert values["controller"]["type"] == "daemonset"
    config = values["alloy"]["configMap"]["content"]
    assert 'field = "spec.nodeName=" + sys.env("NODE_NAME")' in config
    [env] = [e for e in values["alloy"]["extraEnv"] if e["name"] == "NODE_NAME"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    [source] = [d for d in grafana.obj["spec"]["values"]["grafana"]["additionalDataSources"] if d["type"] == "loki"]
    assert f'url = "{source["url"]}/loki/api/v1/push"' in config
    assert source["url"] == f"http://loki.{loki.namespace}.svc.cluster.local:3100"
    assert loki.obj["spec"]["values"]["gateway"]["enabled"] is False, "with the gateway, the service is loki-gateway"


def test_alerts_reach_pushover(real_render: vk.Render) -> None:
    """Alertmanager's global config is the tree's AlertmanagerConfig; its receivers' keys come from 1Password."""
    release = real_render.find("HelmRelease", "observability", "kube-prometheus-stack")
    assert release is not None
    name = release.obj["spec"]["values"]["alertmanager"]["alertmanagerSpec"]["alertmanagerConfiguration"]["name"]
    config = real_render.find("AlertmanagerConfig", release.namespace, name)
    assert config is not None
    spec = config.obj["spec"]
    receivers = {r["name"]: r for r in spec["receivers"]}
    assert receivers[spec["route"]["receiver"]].get("pushoverConfigs"), "the default route must notify someone"
    secrets = _secret_targets(real_render, release.namespace)
    for receiver in receivers.values():
        for pushover in receiver.get("pushoverConfigs", []):
            for ref in (pushover["userKey"], pushover["token"]):
                assert ref["key"] in secrets[ref["name"]]
    severities = {
        rule["labels"]["severity"]
        for rule_file in _of_kind(real_render, "PrometheusRule")
        for group in rule_file.obj["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    silenced = {r["receiver"] for r in spec["route"]["routes"] if not receivers[r["receiver"]].get("pushoverConfigs")}
    assert silenced == {"null"}
    assert severities <= {"critical", "warning"}


def test_kustomize_output_reads_as_go_yaml() -> None:
    """A lone '=' (an AlertmanagerConfig matchType, printed unquoted by kustomize) is a string."""
    assert vk.load_yaml("matchType: =\nvalue: 1\n") == {"matchType": "=", "value": 1}


def _unknown_values(values: object, defaults: object, path: str = "") -> list[str]:
    """Value paths a chart's values.yaml does not have (below a key with an empty or scalar default: anything)."""
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    unknown = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in defaults:
            unknown.append(where)
        else:
            unknown.extend(_unknown_values(value, defaults[key], where))
    return unknown


@pytest.mark.parametrize(
    ("namespace", "release", "chart"),
    [
        ("observability", "alloy", "alloy"),
        ("database", "barman-cloud", "plugin-barman-cloud"),
        ("volsync-system", "volsync", "volsync-perfectra1n"),
    ],
)
def test_new_releases_set_values_their_charts_have(
    real_render: vk.Render, namespace: str, release: str, chart: str
) -> None:
    """Values of the charts added for backups and logs exist in the pinned chart (and pass its schema)."""
    built = real_render.find("HelmRelease", namespace, release)
    assert built is not None
    spec = built.obj["spec"]
    if "chart" in spec:
        version = spec["chart"]["spec"]["version"]
    else:
        source = real_render.find("OCIRepository", namespace, spec["chartRef"]["name"])
        assert source is not None
        version = source.obj["spec"]["ref"]["tag"]
    folder = _schemas() / "charts" / chart / version
    if not folder.is_dir():
        pytest.skip(f"no chart values for {chart} {version} in the shared schemas")
    defaults = yaml.safe_load((folder / "values.yaml").read_text())
    values = spec["values"]
    assert _unknown_values(values, defaults) == []
    if (folder / "values.schema.json").is_file():
        merged = {**defaults, **values}
        jsonschema.validate(merged, json.loads((folder / "values.schema.json").read_text()))


def _nfs_volumes(node: object) -> list[dict[str, object]]:
    """Every NFS volume in an object: pod volumes (``nfs:``) and app-template persistence (``type: nfs``)."""
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        if node.get("type") == "nfs" and "server" in node:
            found.append({"server": node["server"], "path": node["path"]})
        if isinstance(node.get("nfs"), dict):
            found.append({"server": node["nfs"]["server"], "path": node["nfs"]["path"]})
        for value in node.values():
            found.extend(_nfs_volumes(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_nfs_volumes(item))
    return found


def test_bulk_data_comes_from_the_nas_exports(real_render: vk.Render) -> None:
    """Every NFS mount is the NAS at an export named in cluster-settings; media apps mount the library."""
    settings = _settings(real_render)
    exports = {value for key, value in settings.items() if key.startswith("NAS_") and key.endswith("_PATH")}
    mounts = {(b.ref(), str(v["server"]), str(v["path"])) for b in real_render.objects for v in _nfs_volumes(b.obj)}
    assert mounts
    for ref, server, path in mounts:
        assert server == settings["NAS_ADDRESS"], ref
        assert path in exports, f"{ref}: {path} is not a NAS export in cluster-settings"
    assert ("HelmRelease media/sabnzbd", settings["NAS_ADDRESS"], settings["NAS_MEDIA_PATH"]) in mounts


#: What Pulumi's Talos patch must allow (machine.features.kubernetesTalosAPIAccess) for talos-backup.
TALOS_BACKUP_NAMESPACE = "talos-backup"
TALOS_BACKUP_ROLE = "os:etcd:backup"


def test_talos_backup_snapshots_etcd_with_its_own_talos_credentials(real_render: vk.Render) -> None:
    """The CronJob mounts the Secret Talos makes for its talos.dev ServiceAccount, with the etcd backup role only."""
    [account] = [b for b in _of_kind(real_render, "ServiceAccount") if b.obj["apiVersion"] == "talos.dev/v1alpha1"]
    assert account.namespace == TALOS_BACKUP_NAMESPACE
    assert account.obj["spec"]["roles"] == [TALOS_BACKUP_ROLE]
    [cronjob] = [b for b in _of_kind(real_render, "CronJob") if b.namespace == TALOS_BACKUP_NAMESPACE]
    pod = cronjob.obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"].startswith("ghcr.io/siderolabs/talos-backup:v")
    volumes = {v["name"]: v for v in pod["volumes"]}
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/var/run/secrets/talos.dev"]
    assert volumes[mount["name"]]["secret"]["secretName"] == account.name
    env = {e["name"]: e.get("value") for e in container["env"]}
    settings = _settings(real_render)
    assert env["CUSTOM_S3_ENDPOINT"] == settings["NAS_S3_ENDPOINT"]
    assert env["BUCKET"]
    [source] = container["envFrom"]
    keys = _secret_targets(real_render, TALOS_BACKUP_NAMESPACE)[source["secretRef"]["name"]]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AGE_X25519_PUBLIC_KEY"} <= keys
    assert "DISABLE_ENCRYPTION" not in env
    namespace = real_render.find("Namespace", "", TALOS_BACKUP_NAMESPACE)
    assert namespace is not None
    assert namespace.obj["metadata"]["labels"][vk.POD_SECURITY_LABEL] == "restricted"


def test_lan_dns_serves_the_gateways_own_names(real_render: vk.Render) -> None:
    """UniFi's external-dns also reads Services; each Gateway's Service carries its own hostname."""
    unifi = real_render.find("HelmRelease", "networking", "external-dns-unifi")
    cloudflare = real_render.find("HelmRelease", "networking", "external-dns-cloudflare")
    assert unifi is not None and cloudflare is not None
    assert set(unifi.obj["spec"]["values"]["sources"]) == {"gateway-httproute", "service"}
    assert cloudflare.obj["spec"]["values"]["sources"] == ["gateway-httproute"], "public DNS: routes only"
    domain = _settings(real_render)["PUBLIC_DOMAIN"]
    for name in ("internal", "external"):
        gateway = real_render.find("Gateway", "networking", name)
        assert gateway is not None
        annotations = gateway.obj["spec"]["infrastructure"]["annotations"]
        assert annotations["external-dns.alpha.kubernetes.io/hostname"] == f"{name}.{domain}"


def test_runners_use_kubernetes_container_mode_with_a_work_volume(real_render: vk.Render) -> None:
    release = real_render.find("HelmRelease", "actions-runner-system", "homelab-runner")
    assert release is not None
    mode = release.obj["spec"]["values"]["containerMode"]
    assert mode["type"] == "kubernetes"
    assert mode["kubernetesModeWorkVolumeClaim"]["storageClassName"] == _settings(real_render)["STORAGE_CLASS"]


def test_wikijs_replicas_run_in_ha_mode(real_render: vk.Render) -> None:
    release = real_render.find("HelmRelease", "default", "wikijs")
    assert release is not None
    controller = release.obj["spec"]["values"]["controllers"]["wikijs"]
    assert controller["replicas"] == 1 or controller["containers"]["app"]["env"]["HA_ACTIVE"] == "true"


# --- a small tree to break ------------------------------------------------------------------------

_KS = "https://kubernetes-schemas.pages.dev/kustomize.toolkit.fluxcd.io/kustomization_v1.json"
_KZ = "https://json.schemastore.org/kustomization"

MINI: dict[str, str] = {
    "kubernetes/flux/cluster/kustomization.yaml": f"""# yaml-language-server: $schema={_KZ}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [./cluster-settings.yaml, ./ks.yaml]
""",
    "kubernetes/flux/cluster/cluster-settings.yaml": """# yaml-language-server: $schema=https://example.com/cm.json
apiVersion: v1
kind: ConfigMap
metadata: {name: cluster-settings, namespace: flux-system}
data: {DOMAIN: example.com}
""",
    "kubernetes/flux/cluster/ks.yaml": f"""# yaml-language-server: $schema={_KS}
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: cluster-apps, namespace: flux-system}}
spec:
  interval: 30m
  path: ./kubernetes/apps
  prune: true
  sourceRef: {{kind: GitRepository, name: flux-system, namespace: flux-system}}
  patches:
    - target: {{group: kustomize.toolkit.fluxcd.io, kind: Kustomization}}
      patch: |-
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata: {{name: all}}
        spec:
          postBuild:
            substituteFrom: [{{kind: ConfigMap, name: cluster-settings}}]
""",
    "kubernetes/apps/kustomization.yaml": f"""# yaml-language-server: $schema={_KZ}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [./demo]
""",
    "kubernetes/apps/demo/kustomization.yaml": f"""# yaml-language-server: $schema={_KZ}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [./namespace.yaml, ./eso/ks.yaml, ./stores/ks.yaml, ./web/ks.yaml]
""",
    "kubernetes/apps/demo/namespace.yaml": """# yaml-language-server: $schema=https://example.com/ns.json
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels: {pod-security.kubernetes.io/enforce: baseline}
""",
    "kubernetes/apps/demo/eso/ks.yaml": f"""# yaml-language-server: $schema={_KS}
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: eso, namespace: flux-system}}
spec:
  interval: 30m
  targetNamespace: demo
  path: ./kubernetes/apps/demo/eso/app
  prune: true
  sourceRef: {{kind: GitRepository, name: flux-system, namespace: flux-system}}
""",
    "kubernetes/apps/demo/eso/app/kustomization.yaml": f"""# yaml-language-server: $schema={_KZ}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [./ocirepository.yaml, ./helmrelease.yaml]
""",
    "kubernetes/apps/demo/eso/app/ocirepository.yaml": """# yaml-language-server: $schema=https://example.com/oci.json
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: external-secrets}
spec:
  interval: 1h
  url: oci://ghcr.io/external-secrets/charts/external-secrets
  ref: {tag: 0.20.4}
""",
    "kubernetes/apps/demo/eso/app/helmrelease.yaml": """# yaml-language-server: $schema=https://example.com/hr.json
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: external-secrets}
spec:
  interval: 1h
  chartRef: {kind: OCIRepository, name: external-secrets}
""",
    "kubernetes/apps/demo/stores/ks.yaml": f"""# yaml-language-server: $schema={_KS}
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: stores, namespace: flux-system}}
spec:
  interval: 30m
  targetNamespace: demo
  path: ./kubernetes/apps/demo/stores/app
  prune: true
  sourceRef: {{kind: GitRepository, name: flux-system, namespace: flux-system}}
  dependsOn: [{{name: eso}}]
""",
    "kubernetes/apps/demo/stores/app/kustomization.yaml": f"""# yaml-language-server: $schema={_KZ}
# no-helmrelease: only the secret store
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [./clustersecretstore.yaml]
""",
    "kubernetes/apps/demo/stores/app/clustersecretstore.yaml": """# yaml-language-server: $schema=https://example.com/css.json
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: onepassword}
spec:
  provider:
    onepassword:
      connectHost: http://onepassword-connect:8080
      vaults: {homelab: 1}
      auth:
        secretRef:
          connectTokenSecretRef: {name: onepassword-connect-token, key: token, namespace: external-secrets}
""",
    "kubernetes/apps/demo/web/ks.yaml": f"""# yaml-language-server: $schema={_KS}
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {{name: web, namespace: flux-system}}
spec:
  interval: 30m
  targetNamespace: demo
  path: ./kubernetes/apps/demo/web/app
  prune: true
  sourceRef: {{kind: GitRepository, name: flux-system, namespace: flux-system}}
  dependsOn: [{{name: stores}}]
  postBuild:
    substitute: {{APP: web}}
""",
    "kubernetes/apps/demo/web/app/kustomization.yaml": f"""# yaml-language-server: $schema={_KZ}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [./externalsecret.yaml, ./ocirepository.yaml, ./helmrelease.yaml]
""",
    "kubernetes/apps/demo/web/app/ocirepository.yaml": """# yaml-language-server: $schema=https://example.com/oci.json
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: web}
spec:
  interval: 1h
  url: oci://ghcr.io/bjw-s-labs/helm/app-template
  ref: {tag: 4.3.0}
""",
    "kubernetes/apps/demo/web/app/helmrelease.yaml": """# yaml-language-server: $schema=https://example.com/hr.json
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: web}
spec:
  interval: 1h
  chartRef: {kind: OCIRepository, name: web}
  values:
    host: ${APP}.${DOMAIN}
""",
    "kubernetes/apps/demo/web/app/externalsecret.yaml": """# yaml-language-server: $schema=https://example.com/es.json
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: web}
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: onepassword}
  target: {name: web-secret}
  dataFrom:
    - extract: {key: web}
""",
}

WEB = "kubernetes/apps/demo/web"


def make_tree(root: Path, changes: dict[str, str | None] | None = None, *, raw: bool = False) -> Path:
    """Write the mini tree into root with changes (None deletes a file); add the '---' header unless raw."""
    files: dict[str, str | None] = {**MINI, **(changes or {})}
    for rel, text in files.items():
        if text is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if raw and rel in (changes or {}) else "---\n" + text)
    return root


def edit(rel: str, old: str, new: str) -> dict[str, str | None]:
    """A change replacing old by new in one mini-tree file."""
    assert old in MINI[rel]
    return {rel: MINI[rel].replace(old, new)}


def test_mini_tree_is_valid(tmp_path: Path) -> None:
    assert vk.validate(make_tree(tmp_path), _schemas()) == []


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schemas = str(_schemas())
    root = make_tree(tmp_path / "good")
    assert vk.main(["--root", str(root), "--schemas", schemas]) == 0
    broken = make_tree(tmp_path / "bad", edit(f"{WEB}/app/ocirepository.yaml", "{tag: 4.3.0}", "{tag: latest}"))
    assert vk.main(["--root", str(broken), "--schemas", schemas]) == 1
    assert capsys.readouterr().out == f"{WEB}/app/ocirepository.yaml: spec.ref.tag: 'latest' is not an exact version\n"


def test_missing_path(tmp_path: Path) -> None:
    root = make_tree(tmp_path, edit(f"{WEB}/ks.yaml", "demo/web/app", "demo/web/nope"))
    assert vk.render(root).problems == [f"{WEB}/ks.yaml: spec.path: ./kubernetes/apps/demo/web/nope does not exist"]


def test_build_failure_names_the_kustomization(tmp_path: Path) -> None:
    root = make_tree(tmp_path, edit(f"{WEB}/app/kustomization.yaml", "./helmrelease.yaml", "./missing.yaml"))
    [problem] = vk.render(root).problems
    assert problem.startswith(f"{WEB}/ks.yaml: spec.path: kubectl kustomize kubernetes/apps/demo/web/app failed: ")
    assert "missing.yaml" in problem
    assert "\n" not in problem


def test_depends_on_unknown_kustomization(tmp_path: Path) -> None:
    root = make_tree(tmp_path, edit(f"{WEB}/ks.yaml", "[{name: stores}]", "[{name: external-secrets-stores}]"))
    assert vk.check_kustomizations(vk.render(root)) == [
        f"{WEB}/ks.yaml: spec.dependsOn[0].name: no Kustomization named external-secrets-stores"
    ]


def test_depends_on_cycle(tmp_path: Path) -> None:
    stores = "kubernetes/apps/demo/stores/ks.yaml"
    root = make_tree(tmp_path, edit(stores, "[{name: eso}]", "[{name: eso}, {name: web}]"))
    assert vk.check_kustomizations(vk.render(root)) == [f"{stores}: spec.dependsOn: cycle stores -> web -> stores"]


def test_unknown_source_ref(tmp_path: Path) -> None:
    root = make_tree(tmp_path, edit(f"{WEB}/ks.yaml", "name: flux-system, namespace", "name: homelab, namespace"))
    assert vk.check_kustomizations(vk.render(root)) == [
        f"{WEB}/ks.yaml: spec.sourceRef: no GitRepository named homelab in namespace flux-system"
    ]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("{semver: '>=4.0.0'}", "spec.ref.semver: '>=4.0.0' is a range; pin an exact spec.ref.tag"),
        ("{tag: latest}", "spec.ref.tag: 'latest' is not an exact version"),
    ],
)
def test_unpinned_oci_chart(tmp_path: Path, ref: str, expected: str) -> None:
    root = make_tree(tmp_path, edit(f"{WEB}/app/ocirepository.yaml", "{tag: 4.3.0}", ref))
    assert vk.check_chart_sources(vk.render(root)) == [f"{WEB}/app/ocirepository.yaml: {expected}"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("      version: 1.x\n", "spec.chart.spec.version: '1.x' is not an exact version"),
        ("", "spec.chart.spec.version: missing; pin an exact chart version"),
    ],
)
def test_unpinned_helm_repository_chart(tmp_path: Path, version: str, expected: str) -> None:
    chart = (
        "  chart:\n    spec:\n      chart: podinfo\n"
        + version
        + "      sourceRef: {kind: HelmRepository, name: podinfo}\n"
    )
    repository = (
        "# yaml-language-server: $schema=https://example.com/hrepo.json\n"
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata: {name: podinfo}\n"
        "spec: {interval: 1h, url: 'https://stefanprodan.github.io/podinfo'}\n"
    )
    changes = {
        **edit(f"{WEB}/app/helmrelease.yaml", "  chartRef: {kind: OCIRepository, name: web}\n", chart),
        **edit(f"{WEB}/app/kustomization.yaml", "./ocirepository.yaml", "./helmrepository.yaml"),
        f"{WEB}/app/helmrepository.yaml": repository,
        f"{WEB}/app/ocirepository.yaml": None,
    }
    root = make_tree(tmp_path, changes)
    assert vk.check_chart_sources(vk.render(root)) == [f"{WEB}/app/helmrelease.yaml: {expected}"]


def test_chart_source_missing(tmp_path: Path) -> None:
    changes = {
        **edit(f"{WEB}/app/kustomization.yaml", "./ocirepository.yaml, ", ""),
        f"{WEB}/app/ocirepository.yaml": None,
    }
    root = make_tree(tmp_path, changes)
    assert vk.check_chart_sources(vk.render(root)) == [
        f"{WEB}/app/helmrelease.yaml: spec.chartRef: no OCIRepository named web in namespace demo in the tree"
    ]


def test_external_secret_with_wrong_store(tmp_path: Path) -> None:
    root = make_tree(tmp_path, edit(f"{WEB}/app/externalsecret.yaml", "name: onepassword", "name: vault"))
    assert vk.check_external_secrets(vk.render(root)) == [
        f"{WEB}/app/externalsecret.yaml: spec.secretStoreRef: no ClusterSecretStore named vault "
        "(kind ClusterSecretStore); the tree defines: onepassword"
    ]


def test_unsubstituted_variable(tmp_path: Path) -> None:
    root = make_tree(tmp_path, edit(f"{WEB}/app/helmrelease.yaml", "${APP}.${DOMAIN}", "${APP}.${ZONE}"))
    assert vk.render(root).problems == [
        f"{WEB}/app/helmrelease.yaml: HelmRelease web: ${{ZONE}} has no value: set it in {WEB}/ks.yaml "
        "spec.postBuild.substitute or in cluster-settings"
    ]


def test_variable_defaults_and_escapes_need_no_value() -> None:
    text, missing = vk.substitute("a: ${A:=1}\nb: ${B:-x y}\nc: $${C}\nd: ${D}\n", {"D": "4"})
    assert (text, missing) == ("a: 1\nb: x y\nc: ${C}\nd: 4\n", [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apiVersion: v1\n", "line 1: the file must start with '---'"),
        ("---\napiVersion: v1\n", "line 2: missing '# yaml-language-server: $schema=<url>' comment"),
    ],
)
def test_missing_header(tmp_path: Path, text: str, expected: str) -> None:
    rel = "kubernetes/apps/demo/namespace.yaml"
    body = MINI[rel].split("\n", 1)[1]
    root = make_tree(tmp_path, {rel: text + body}, raw=True)
    assert vk.check_headers(root) == [f"{rel}: {expected}"]


def test_plaintext_secret(tmp_path: Path) -> None:
    secret = (
        "# yaml-language-server: $schema=https://example.com/secret.json\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: web-token}\nstringData: {token: hunter2}\n"
    )
    encrypted = secret.replace("web-token", "web-sops") + "sops: {version: 3.10.2}\n"
    root = make_tree(tmp_path, {f"{WEB}/app/secret.yaml": secret, f"{WEB}/app/secret-sops.yaml": encrypted})
    assert vk.check_plaintext_secrets(root) == [
        f"{WEB}/app/secret.yaml: Secret web-token: plaintext data in Git; use an ExternalSecret "
        "(ClusterSecretStore onepassword) or encrypt it with SOPS"
    ]


def test_pulumi_owned_layer_in_tree(tmp_path: Path) -> None:
    changes = {**edit(f"{WEB}/app/ocirepository.yaml", "bjw-s-labs/helm/app-template", "cilium/charts/cilium")}
    root = make_tree(tmp_path, changes)
    assert vk.check_pulumi_owned(vk.render(root)) == [
        f"{WEB}/app/helmrelease.yaml: HelmRelease demo/web: cilium is deployed by Pulumi (Cilium layer); "
        "remove it from the Flux tree"
    ]


def test_namespace_without_pod_security_label(tmp_path: Path) -> None:
    rel = "kubernetes/apps/demo/namespace.yaml"
    root = make_tree(tmp_path, edit(rel, "pod-security.kubernetes.io/enforce: baseline", "team: web"))
    assert vk.check_namespaces(vk.render(root)) == [
        f"{rel}: metadata.labels: Namespace demo needs pod-security.kubernetes.io/enforce set to one of "
        "baseline, privileged, restricted"
    ]


def test_app_without_helmrelease_or_reason(tmp_path: Path) -> None:
    rel = "kubernetes/apps/demo/stores/app/kustomization.yaml"
    root = make_tree(tmp_path, edit(rel, "# no-helmrelease: only the secret store\n", ""))
    assert vk.check_app_layout(root) == [
        "kubernetes/apps/demo/stores/app/helmrelease.yaml: missing: add one, or say why the app has none with a "
        "'# no-helmrelease: <reason>' comment in app/kustomization.yaml"
    ]


def test_unused_manifest(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {f"{WEB}/app/pvc.yaml": MINI["kubernetes/apps/demo/namespace.yaml"]})
    assert vk.check_unused_files(vk.render(root)) == [
        f"{WEB}/app/pvc.yaml: unused: no Flux Kustomization builds it (list it in a kustomization.yaml "
        "reachable from kubernetes/flux/cluster)"
    ]


def test_schema_invalid_custom_resource(tmp_path: Path) -> None:
    rel = "kubernetes/apps/demo/stores/app/clustersecretstore.yaml"
    root = make_tree(tmp_path, edit(rel, "connectHost:", "connectHostname:"))
    assert vk.check_schemas(vk.render(root), _schemas()) == [
        f"{rel}: ClusterSecretStore onepassword: spec.provider.onepassword: 'connectHost' is a required property",
        f"{rel}: ClusterSecretStore onepassword: spec.provider.onepassword: Additional properties are not allowed "
        "('connectHostname' was unexpected)",
    ]


def test_schema_invalid_builtin_kind(tmp_path: Path) -> None:
    rel = "kubernetes/apps/demo/namespace.yaml"
    root = make_tree(tmp_path, edit(rel, "  name: demo\n", "  name: demo\n  lables: {team: web}\n"))
    assert vk.check_schemas(vk.render(root), _schemas()) == [
        f"{rel}: Namespace demo: metadata: Additional properties are not allowed ('lables' was unexpected)"
    ]


def test_schema_invalid_after_helmrelease_defaults(tmp_path: Path) -> None:
    """The HelmRelease defaults patched in by cluster-apps are validated with each HelmRelease."""
    rel = "kubernetes/flux/cluster/ks.yaml"
    patch = (
        "            substituteFrom: [{kind: ConfigMap, name: cluster-settings}]\n"
        "          patches:\n"
        "            - target: {group: helm.toolkit.fluxcd.io, kind: HelmRelease}\n"
        "              patch: |-\n"
        "                apiVersion: helm.toolkit.fluxcd.io/v2\n"
        "                kind: HelmRelease\n"
        "                metadata: {name: all}\n"
        "                spec: {install: {crds: Always}}\n"
    )
    root = make_tree(
        tmp_path, edit(rel, "            substituteFrom: [{kind: ConfigMap, name: cluster-settings}]\n", patch)
    )
    assert vk.check_schemas(vk.render(root), _schemas()) == [
        f"kubernetes/apps/demo/{app}/app/helmrelease.yaml: HelmRelease demo/{name}: spec.install.crds: 'Always' "
        "is not one of ['Skip', 'Create', 'CreateReplace']"
        for app, name in (("eso", "external-secrets"), ("web", "web"))
    ]


# --- CRDs before the objects that need them ------------------------------------------------------

_ROUTE = """# yaml-language-server: $schema=https://example.com/route.json
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: internal, namespace: networking, sectionName: https}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"""


def test_crd_order_mini_tree_passes(tmp_path: Path) -> None:
    assert vk.check_crd_order(vk.render(make_tree(tmp_path))) == []


def test_object_without_a_crd_provider(tmp_path: Path) -> None:
    changes = {
        **edit(f"{WEB}/app/kustomization.yaml", "./helmrelease.yaml]", "./helmrelease.yaml, ./httproute.yaml]"),
        f"{WEB}/app/httproute.yaml": _ROUTE,
    }
    assert vk.check_crd_order(vk.render(make_tree(tmp_path, changes))) == [
        f"{WEB}/app/httproute.yaml: HTTPRoute demo/web: no Kustomization in the tree installs the "
        "gateway.networking.k8s.io CRDs"
    ]


def test_dependency_on_the_crd_provider_missing(tmp_path: Path) -> None:
    """The web app's ExternalSecret needs eso's CRDs; without stores in between, nothing orders them."""
    root = make_tree(tmp_path, edit(f"{WEB}/ks.yaml", "  dependsOn: [{name: stores}]\n", ""))
    assert vk.check_crd_order(vk.render(root)) == [
        f"{WEB}/ks.yaml: spec.dependsOn: web applies ExternalSecret demo/web (external-secrets.io); "
        "depend on eso, which installs its CRDs"
    ]


def test_crds_and_their_objects_in_one_kustomization(tmp_path: Path) -> None:
    changes = {
        **edit(
            "kubernetes/apps/demo/eso/app/kustomization.yaml", "./helmrelease.yaml]", "./helmrelease.yaml, ./es.yaml]"
        ),
        "kubernetes/apps/demo/eso/app/es.yaml": MINI[f"{WEB}/app/externalsecret.yaml"].replace(
            "name: web}", "name: eso}"
        ),
    }
    assert vk.check_crd_order(vk.render(make_tree(tmp_path, changes))) == [
        "kubernetes/apps/demo/eso/app/es.yaml: ExternalSecret demo/eso: the external-secrets.io CRDs are installed "
        "by the same Kustomization (eso); move it to one that depends on eso"
    ]


@pytest.mark.parametrize(
    ("values", "groups"),
    [
        ({"route": {"app": {"hostnames": ["a"]}}}, {"gateway.networking.k8s.io"}),
        ({"grafana": {"route": {"main": {"enabled": False}}}}, set()),
        ({"monitoring": {"serviceMonitor": {"enabled": True}}}, {"monitoring.coreos.com"}),
        ({"serviceMonitor": {"enabled": False}, "webhook": {"serviceMonitor": {"enabled": False}}}, set()),
        ({"serviceMonitor": {"app": {"endpoints": []}}}, {"monitoring.coreos.com"}),
        ({"monitoring": {"podMonitorEnabled": True}}, {"monitoring.coreos.com"}),
        ({"env": [{"name": "route", "value": "x"}]}, set()),
    ],
)
def test_values_that_render_custom_resources(values: dict[str, object], groups: set[str]) -> None:
    assert vk.values_groups(values) == groups


def test_real_tree_waits_for_crds_not_for_releases(real_render: vk.Render) -> None:
    """Nothing depends on kube-prometheus-stack for its CRDs; they come first, from a chart of their own."""
    depends = {ks.name: [d["name"] for d in ks.spec.get("dependsOn") or []] for ks in real_render.kustomizations}
    assert [name for name, deps in depends.items() if "kube-prometheus-stack" in deps] == []
    assert depends["prometheus-operator-crds"] == []
    release = real_render.find("HelmRelease", "observability", "kube-prometheus-stack")
    assert release is not None and release.obj["spec"]["values"]["crds"]["enabled"] is False
    assert vk.check_crd_order(real_render) == []


def test_secret_store_gate_checks_ready(real_render: vk.Render) -> None:
    [stores] = [ks for ks in real_render.kustomizations if ks.name == "external-secrets-stores"]
    [expr] = stores.spec["healthCheckExprs"]
    assert (expr["apiVersion"], expr["kind"]) == ("external-secrets.io/v1", "ClusterSecretStore")
    assert expr["current"] == "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')"
    assert {"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore", "name": "onepassword"} in stores.spec[
        "healthChecks"
    ]


# --- the project's own CRD schemas (tools/schemas/crds) -----------------------------------------------

STORES = "kubernetes/apps/demo/stores/app"
SNAPSHOT_CLASS = f"{STORES}/volumesnapshotclass.yaml"
_SNAPSHOT_CLASS = """# yaml-language-server: $schema=https://example.com/vsc.json
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: csi-ceph-blockpool}
driver: rook-ceph.rbd.csi.ceph.com
deletionPolicy: Delete
parameters: {clusterID: rook-ceph}
"""


def with_snapshot_class(old: str = "", new: str = "") -> dict[str, str | None]:
    """The mini tree plus a VolumeSnapshotClass (old replaced by new in it), built by the stores Kustomization."""
    assert old in _SNAPSHOT_CLASS
    listed = "[./clustersecretstore.yaml, ./volumesnapshotclass.yaml]"
    return {
        **edit(f"{STORES}/kustomization.yaml", "[./clustersecretstore.yaml]", listed),
        SNAPSHOT_CLASS: _SNAPSHOT_CLASS.replace(old, new) if old else _SNAPSHOT_CLASS,
    }


def test_project_schema_validates_volume_snapshot_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path, with_snapshot_class())
    assert vk.check_schemas(vk.render(root), _schemas()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("deletionPolicy: Delete", "deletionPolicy: Keep", "deletionPolicy: 'Keep' is not one of ['Delete', 'Retain']"),
        ("driver: rook-ceph.rbd.csi.ceph.com\n", "", "(root): 'driver' is a required property"),
        ("{clusterID: rook-ceph}", "{clusterID: 1}", "parameters.clusterID: 1 is not of type 'string'"),
        (
            "deletionPolicy: Delete\n",
            "deletionPolicy: Delete\nspec: {driver: x}\n",
            "(root): Additional properties are not allowed ('spec' was unexpected)",
        ),
    ],
)
def test_invalid_volume_snapshot_class(tmp_path: Path, old: str, new: str, expected: str) -> None:
    root = make_tree(tmp_path, with_snapshot_class(old, new))
    assert vk.check_schemas(vk.render(root), _schemas()) == [
        f"{SNAPSHOT_CLASS}: VolumeSnapshotClass csi-ceph-blockpool: {expected}"
    ]


def test_shared_schema_comes_before_the_project_one(tmp_path: Path) -> None:
    """A project schema for a kind the shared folder has is never used (this one would reject everything)."""
    local = tmp_path / "local"
    shadow = local / "crds" / "external-secrets.io" / "clustersecretstore_v1.json"
    shadow.parent.mkdir(parents=True)
    shadow.write_text('{"not": {}}')
    root = make_tree(tmp_path / "tree")
    assert vk.check_schemas(vk.render(root), _schemas(), local) == []


def test_kind_without_schema_anywhere(tmp_path: Path) -> None:
    """Without the project schema, a VolumeSnapshotClass has no schema in either folder and is reported."""
    root = make_tree(tmp_path / "tree", with_snapshot_class())
    schemas = _schemas()
    local = tmp_path / "local"
    (local / "crds").mkdir(parents=True)
    assert vk.check_schemas(vk.render(root), schemas, local) == [
        f"{SNAPSHOT_CLASS}: VolumeSnapshotClass csi-ceph-blockpool: apiVersion: no schema for VolumeSnapshotClass "
        f"snapshot.storage.k8s.io/v1 (not a Kubernetes {vk.KUBERNETES_VERSION} kind and no CRD schema in "
        f"{schemas / 'crds'} or {local / 'crds'})"
    ]


def test_group_with_project_schemas_but_not_this_kind(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path, with_snapshot_class("v1\nkind: VolumeSnapshotClass", "v1beta1\nkind: VolumeSnapshotClass")
    )
    local = vk.LOCAL_SCHEMAS / "crds" / "snapshot.storage.k8s.io"
    assert vk.check_schemas(vk.render(root), _schemas()) == [
        f"{SNAPSHOT_CLASS}: VolumeSnapshotClass csi-ceph-blockpool: apiVersion: no schema for VolumeSnapshotClass "
        f"snapshot.storage.k8s.io/v1beta1 in {local}"
    ]


def test_project_schemas_are_json_schemas() -> None:
    """Every project schema is a valid JSON schema, named <group>/<kind>_<version>.json."""
    files = sorted((vk.LOCAL_SCHEMAS / "crds").rglob("*.json"))
    assert files
    for path in files:
        schema = json.loads(path.read_text())
        jsonschema.validators.validator_for(schema).check_schema(schema)
        assert path.stem.rpartition("_")[0] == schema["properties"]["kind"]["enum"][0].lower()
        group, version = path.parent.name, path.stem.rpartition("_")[2]
        assert schema["properties"]["apiVersion"]["enum"] == [f"{group}/{version}"]
