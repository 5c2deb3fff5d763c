"""The rendered objects keep their promises: zero-downtime rollouts, probes on the routes the
service gates, resources, hardening, the network policy, wiring between objects, one image by
digest, the database each overlay uses, and what differs between dev, prod and rollouts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from k8s import SERVING, container, name_of, one, port_number, render, selects

from deploy.render import K8S, OVERLAYS
from deploy.render import render as render_with_image

SERVICE_PORT = 3000  # the bento image's `bentoml serve` port (docs/container.md)
DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?@sha256:[0-9a-f]{64}$")
ROOT = K8S.parents[1]
OVERLAY_PATHS = [OVERLAYS / "dev", OVERLAYS / "prod", OVERLAYS / "rollouts"]


def pod_labels(objects: tuple[dict, ...]) -> dict[str, str]:
    return one(objects, "Deployment", "fraudserve")["spec"]["template"]["metadata"]["labels"]


def pods(objects: tuple[dict, ...]) -> list[tuple[str, dict]]:
    """('Kind/name', pod spec) of every workload."""
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
            for o in objects if o["kind"] in {"Deployment", "StatefulSet", "Job"}]


@pytest.fixture(params=SERVING, ids=name_of)
def objects(request: pytest.FixtureRequest) -> tuple[dict, ...]:
    return render(request.param)


@pytest.fixture(params=OVERLAY_PATHS, ids=name_of)
def overlay(request: pytest.FixtureRequest) -> tuple[dict, ...]:
    return render(request.param)


def test_rollout_never_drops_below_the_wanted_count(objects: tuple[dict, ...]) -> None:
    spec = one(objects, "Deployment", "fraudserve")["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert spec["progressDeadlineSeconds"] > 0
    assert spec.get("minReadySeconds", 0) > 0
    assert spec["selector"]["matchLabels"].items() <= pod_labels(objects).items()


def test_selectors_are_the_ones_released_before(objects: tuple[dict, ...]) -> None:
    """A Deployment's selector is immutable: it stays exactly what earlier releases had."""
    assert one(objects, "Deployment", "fraudserve")["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "fraudserve", "app.kubernetes.io/part-of": "fraudserve",
        "app.kubernetes.io/component": "api"}


def test_probes_use_the_services_routes(objects: tuple[dict, ...]) -> None:
    ctr = container(one(objects, "Deployment", "fraudserve"))
    assert port_number(ctr, "http") == SERVICE_PORT
    ready, live = ctr["readinessProbe"]["httpGet"], ctr["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz" and port_number(ctr, ready["port"]) == SERVICE_PORT
    assert live["path"] == "/livez" and port_number(ctr, live["port"]) == SERVICE_PORT
    startup = ctr["startupProbe"]
    assert startup["httpGet"]["path"] == "/livez"
    # Liveness must not kill a pod that is merely slow to load: the startup probe covers it.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= (
        ctr["livenessProbe"]["periodSeconds"] * ctr["livenessProbe"]["failureThreshold"])


def test_shutdown_outlasts_endpoint_removal(objects: tuple[dict, ...]) -> None:
    pod = one(objects, "Deployment", "fraudserve")["spec"]["template"]["spec"]
    sleep = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(sleep[1])


def test_resources_and_threads(objects: tuple[dict, ...]) -> None:
    for where, pod in pods(objects):
        for ctr in pod["containers"]:
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(ctr["resources"][kind]), (where, kind)
    env = {e["name"]: e for e in container(one(objects, "Deployment", "fraudserve"))["env"]}
    assert env["OMP_NUM_THREADS"]["value"] == "1"


def test_pods_are_hardened(objects: tuple[dict, ...]) -> None:
    """Read-only root filesystem, no service-account token, non-root, no capabilities."""
    sa = one(objects, "ServiceAccount", "fraudserve")
    assert sa["automountServiceAccountToken"] is False
    for where, pod in pods(objects):
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for ctr in pod["containers"]:
            ctx = ctr["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where


def test_what_must_be_writable_is_an_emptydir(objects: tuple[dict, ...]) -> None:
    """BentoML writes under its home (bentos/, models/, envs/, tmp/ and the Prometheus
    multiprocess directory at start) and /tmp (the router's UNIX sockets): both are emptyDirs,
    and the home is moved there (the served models come from the bento itself)."""
    deployment = one(objects, "Deployment", "fraudserve")
    pod = deployment["spec"]["template"]["spec"]
    ctr = container(deployment)
    env = {e["name"]: e.get("value") for e in ctr["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    for path in ("/tmp", env["BENTOML_HOME"]):
        volume = volumes[mounts[path]]
        assert "emptyDir" in volume and volume["emptyDir"]["sizeLimit"], path
    assert env["BENTOML_HOME"] != "/home/bentoml/bento"


def test_keys_file_is_0400_and_the_start_refuses_unsafe_modes(objects: tuple[dict, ...]) -> None:
    deployment = one(objects, "Deployment", "fraudserve")
    ctr = container(deployment)
    env = {e["name"]: e for e in ctr["env"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    keys_path = Path(env["FRAUDSERVE_API_KEYS_FILE"]["value"])
    secret = volumes[mounts[str(keys_path.parent)]]["secret"]
    assert secret["secretName"] == "fraudserve-secrets"
    assert secret["defaultMode"] == 0o400
    assert {"key": "api-keys", "path": keys_path.name, "mode": 0o400} in secret["items"]
    assert env["FRAUDSERVE_REQUIRE_KEYS"]["value"] == "1"
    assert env["FRAUDSERVE_REQUIRE_SHARED_LEDGER"]["value"] == "1"


def test_config_wiring(objects: tuple[dict, ...]) -> None:
    deployment = one(objects, "Deployment", "fraudserve")
    ctr = container(deployment)
    env = {e["name"]: e for e in ctr["env"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    ab_path = Path(env["FRAUDSERVE_AB_CONFIG"]["value"])
    config_map = volumes[mounts[str(ab_path.parent)]]["configMap"]["name"]
    data = one(objects, "ConfigMap", config_map)["data"]
    assert ab_path.name in data
    assert yaml.safe_load(data[ab_path.name]) == yaml.safe_load(
        (ROOT / "configs" / "ab.yaml").read_text())


def test_migration_job_runs_the_migrator_with_the_same_image_and_ledger(
        objects: tuple[dict, ...]) -> None:
    api = container(one(objects, "Deployment", "fraudserve"))
    job = one(objects, "Job", "fraudserve-migrate")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["python", "-m", "fraud.store.migrate"]
    assert migrate["image"] == api["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e for e in migrate["env"]}
    assert env["FRAUDSERVE_REQUIRE_SHARED_LEDGER"]["value"] == "1"
    assert {"FRAUDSERVE_MIGRATE_LOCK_TIMEOUT", "FRAUDSERVE_MIGRATE_STATEMENT_TIMEOUT"} <= set(env)
    api_env = {e["name"]: e for e in api["env"]}
    if "valueFrom" in api_env["FRAUDSERVE_LEDGER"]:  # dev, base: both read the Secret's URL
        assert env["FRAUDSERVE_LEDGER"] == api_env["FRAUDSERVE_LEDGER"]


def test_service_podmonitor_and_pdb_select_the_pods(objects: tuple[dict, ...]) -> None:
    labels = pod_labels(objects)
    ctr = container(one(objects, "Deployment", "fraudserve"))
    service = one(objects, "Service", "fraudserve")["spec"]
    assert selects(service["selector"], labels)
    assert {port_number(ctr, p["targetPort"]) for p in service["ports"]} == {SERVICE_PORT}
    monitor = one(objects, "PodMonitor")["spec"]
    assert selects(monitor["selector"]["matchLabels"], labels)
    assert monitor["selector"]["matchLabels"].get("app.kubernetes.io/name") == "fraudserve"
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert port_number(ctr, endpoint["port"]) == SERVICE_PORT
    assert endpoint["path"] == "/metrics"
    # The watch and the canary analysis tell new pods from old by these.
    assert {"pod-template-hash", "rollouts-pod-template-hash",
            "app.kubernetes.io/version"} <= set(monitor["podTargetLabels"])
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    assert selects(pdb["selector"]["matchLabels"], labels)
    job = one(objects, "Job", "fraudserve-migrate")["spec"]["template"]["metadata"]["labels"]
    assert not selects(service["selector"], job) and not selects(
        monitor["selector"]["matchLabels"], job)


def test_monitoring_objects_carry_the_prometheus_selector_label(
        overlay: tuple[dict, ...]) -> None:
    for kind in ("PodMonitor", "PrometheusRule"):
        assert one(overlay, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_network_policy(overlay: tuple[dict, ...]) -> None:
    """In: the ingress controller and Prometheus, on the http port only. Out: DNS, and
    PostgreSQL on 5432 where this overlay's database is. It covers API and migration pods."""
    policy = one(overlay, "NetworkPolicy", "fraudserve")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert selects(policy["podSelector"]["matchLabels"], pod_labels(overlay))
    job = one(overlay, "Job", "fraudserve-migrate")["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["podSelector"]["matchLabels"], job)
    sources = [(p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                p["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
               for rule in policy["ingress"] for p in rule["from"]]
    assert sources == [("ingress-nginx", "ingress-nginx"), ("monitoring", "prometheus")]
    assert all(rule["ports"] == [{"port": "http", "protocol": "TCP"}]
               for rule in policy["ingress"])
    dns, db = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert db["ports"] == [{"port": 5432, "protocol": "TCP"}]
    db_pods = [o["spec"]["template"]["metadata"]["labels"] for o in overlay
               if o["kind"] == "StatefulSet"]
    peers = [p["podSelector"]["matchLabels"] for p in db["to"]]
    if db_pods:  # dev: the StatefulSet
        assert any(selects(peer, db_pods[0]) for peer in peers)
    else:        # prod: CloudNativePG's pooler and instances
        assert peers == [{"cnpg.io/poolerName": one(overlay, "Pooler")["metadata"]["name"]},
                         {"cnpg.io/cluster": one(overlay, "Cluster")["metadata"]["name"]}]


def test_at_least_two_replicas_and_drains_keep_one(objects: tuple[dict, ...]) -> None:
    spec = one(objects, "Deployment", "fraudserve")["spec"]
    hpa = one(objects, "HorizontalPodAutoscaler")["spec"]
    target = hpa["scaleTargetRef"]
    assert target["name"] == "fraudserve"
    workload = one(objects, target["kind"], "fraudserve")
    assert target["apiVersion"] == workload["apiVersion"]
    floor = hpa["minReplicas"]
    assert 2 <= floor <= hpa["maxReplicas"]
    if target["kind"] == "Deployment" and "replicas" in spec:
        assert spec["replicas"] >= 2
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    assert 1 <= pdb["maxUnavailable"] < floor


def test_namespaced_objects_land_in_the_overlays_namespace() -> None:
    for path in OVERLAY_PATHS:
        objects = render(path)
        (ns,) = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
        for obj in objects:
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == ns, obj["metadata"]


# -- one artifact, by digest ---------------------------------------------------------------

def test_prod_renders_the_image_by_digest() -> None:
    """Prod is never deployed by tag: the committed overlay names its image by digest (the
    promote job replaces that digest with the one dev ran), and so does every workload."""
    for path in OVERLAY_PATHS:
        objects = render(path)
        for where, pod in pods(objects):
            for ctr in pod["containers"]:
                assert DIGEST.match(ctr["image"]), (name_of(path), where, ctr["image"])
                assert ctr["imagePullPolicy"] == "IfNotPresent", (where, ctr["name"])
    prod = container(one(render(OVERLAYS / "prod"), "Deployment", "fraudserve"))
    assert "@sha256:" in prod["image"]


def test_render_sets_the_image_by_digest_and_refuses_a_tag() -> None:
    image = "registry.example.com/team/fraudserve@sha256:" + "ab" * 32
    objects = tuple(o for o in yaml.safe_load_all(render_with_image(OVERLAYS / "prod", image))
                    if o)
    assert container(one(objects, "Deployment", "fraudserve"))["image"] == image
    job = one(objects, "Job", "fraudserve-migrate")["spec"]["template"]["spec"]
    assert job["containers"][0]["image"] == image
    for bad in ("registry.example.com/team/fraudserve:0a1b2c3",
                "registry.example.com/team/fraudserve@sha256:" + "0" * 64):
        with pytest.raises(ValueError):
            render_with_image(OVERLAYS / "prod", bad)


def test_no_secret_or_placeholder_is_committed() -> None:
    """No key, password or salt is committed. The one placeholder allowed is the salt in the
    ConfigMap's copy of configs/ab.yaml, because every pod overrides it with FRAUDSERVE_SALT
    from the fraudserve-salt Secret (made at deploy time: deploy/secrets.py), and the service
    refuses the placeholder under FRAUDSERVE_REQUIRE_KEYS=1."""
    for path in OVERLAY_PATHS:
        objects = render(path)
        text = yaml.safe_dump_all(objects).replace("salt: REPLACE-ME-with-a-random-salt", "")
        for word in ("REPLACE", "changeme", "dev-only-not-a-secret"):
            assert word not in text, (name_of(path), word)
        env = {e["name"]: e for e in container(one(objects, "Deployment", "fraudserve"))["env"]}
        assert env["FRAUDSERVE_SALT"]["valueFrom"]["secretKeyRef"] == {
            "name": "fraudserve-salt", "key": "salt"}, name_of(path)


# -- the databases -------------------------------------------------------------------------

def test_dev_database_is_the_statefulset_by_digest() -> None:
    objects = render(OVERLAYS / "dev")
    statefulset = one(objects, "StatefulSet", "postgres")
    service = one(objects, "Service", "postgres")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert selects(service["spec"]["selector"],
                   statefulset["spec"]["template"]["metadata"]["labels"])
    (ctr,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert DIGEST.match(ctr["image"]) and ":17." in ctr["image"], ctr["image"]
    env = {e["name"]: e for e in ctr["env"]}
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    password = Path(env["POSTGRES_PASSWORD_FILE"]["value"])
    secret = volumes[mounts[str(password.parent)]]["secret"]
    assert secret["secretName"] == "postgres"   # made by deploy.secrets, never committed
    assert {"key": "POSTGRES_PASSWORD", "path": password.name} in secret["items"]
    config = [o for o in objects if o["kind"] == "ConfigMap"
              and o["metadata"]["name"].startswith("postgres-start")]
    assert config and "start.sh" in config[0]["data"]
    assert ctr["command"] == ["bash", "/opt/start/start.sh"]


def test_prod_database_is_cloudnativepg_with_backups_pooler_and_tls() -> None:
    objects = render(OVERLAYS / "prod")
    assert not [o for o in objects if o["kind"] == "StatefulSet"]
    cluster = one(objects, "Cluster")["spec"]
    assert cluster["instances"] >= 3 and DIGEST.match(cluster["imageName"])
    (plugin,) = cluster["plugins"]
    assert plugin["isWALArchiver"] is True
    store = one(objects, "ObjectStore")
    assert plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    backup = one(objects, "ScheduledBackup")["spec"]
    assert backup["method"] == "plugin" and backup["cluster"]["name"] == one(
        objects, "Cluster")["metadata"]["name"]
    pooler = one(objects, "Pooler")
    assert pooler["spec"]["cluster"]["name"] == one(objects, "Cluster")["metadata"]["name"]
    assert pooler["spec"]["type"] == "rw"
    api = {e["name"]: e for e in container(one(objects, "Deployment", "fraudserve"))["env"]}
    url = api["FRAUDSERVE_LEDGER"]["value"]
    assert "valueFrom" not in api["FRAUDSERVE_LEDGER"]
    assert f"@{pooler['metadata']['name']}:5432/" in url and "sslmode=verify-ca" in url
    assert url.startswith("postgresql://fraudserve_api@")          # no password in the URL
    assert api["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "fraudserve-db-api"
    job = one(objects, "Job", "fraudserve-migrate")["spec"]["template"]["spec"]
    job_env = {e["name"]: e for e in job["containers"][0]["env"]}
    owner = cluster["bootstrap"]["initdb"]["owner"]
    assert job_env["FRAUDSERVE_LEDGER"]["value"].startswith(
        f"postgresql://{owner}@fraudserve-db-rw:5432/")
    assert "sslmode=verify-full" in job_env["FRAUDSERVE_LEDGER"]["value"]
    # The API role holds no DDL rights: rows only, through default privileges.
    roles = {r["name"]: r for r in cluster["managed"]["roles"]}
    assert not any(roles["fraudserve_api"].get(k) for k in ("superuser", "createdb",
                                                             "createrole"))
    sql = " ".join(cluster["bootstrap"]["initdb"]["postInitApplicationSQL"])
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO fraudserve_api" in sql
    assert "CREATE ON SCHEMA" not in sql.replace("REVOKE CREATE ON SCHEMA", "")


def test_connection_budget_fits_max_connections() -> None:
    """HPA max x API workers x pool size <= what the poolers open <= max_connections (the
    budget docs/kubernetes.md states), read from the manifests and the code."""
    objects = render(OVERLAYS / "prod")
    workers = int(re.search(r'name="FraudDetection", workers=(\d+)',
                            (ROOT / "service.py").read_text())[1])
    pool = int(re.search(r"max_size: int = (\d+)",
                         (ROOT / "fraud" / "store" / "postgres.py").read_text())[1])
    clients = one(objects, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] * workers * pool
    pooler = one(objects, "Pooler")["spec"]
    per_instance = int(pooler["pgbouncer"]["parameters"]["default_pool_size"])
    assert clients <= pooler["instances"] * per_instance, "clients would queue in PgBouncer"
    assert clients <= int(pooler["pgbouncer"]["parameters"]["max_client_conn"])
    server = pooler["instances"] * per_instance + 2 + 5  # + migration Job + operator's own
    max_connections = int(one(objects, "Cluster")["spec"]["postgresql"]["parameters"][
        "max_connections"])
    assert server <= max_connections - 3  # superuser_reserved_connections
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    assert f"{clients} client connections" in docs and f"max_connections {max_connections}" \
        in docs


# -- progressive delivery ------------------------------------------------------------------

def test_rollouts_overlay_canaries_the_deployments_template() -> None:
    objects = render(OVERLAYS / "rollouts")
    rollout = one(objects, "Rollout", "fraudserve")["spec"]
    deployment = one(objects, "Deployment", "fraudserve")["spec"]
    assert rollout["workloadRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "fraudserve", "scaleDown": "progressively"}
    assert deployment["replicas"] == 0
    assert rollout["selector"] == deployment["selector"]
    canary = rollout["strategy"]["canary"]
    weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
    assert weights == sorted(weights) and weights[-1] < 100 and len(weights) >= 2
    assert canary["maxUnavailable"] == 0
    (ref,) = canary["analysis"]["templates"]
    template = one(objects, "AnalysisTemplate", ref["templateName"])["spec"]
    declared = {a["name"] for a in template["args"]}
    passed = {a["name"] for a in canary["analysis"]["args"]}
    assert passed <= declared and {a["name"] for a in template["args"]
                                   if "value" not in a} <= passed
    hashes = {a["name"]: a["valueFrom"]["podTemplateHashValue"]
              for a in canary["analysis"]["args"] if "podTemplateHashValue" in a["valueFrom"]}
    assert hashes == {"canary-hash": "Latest", "stable-hash": "Stable"}
    names = {m["name"] for m in template["metrics"]}
    assert names == {"http-5xx-share", "predict-p95-seconds"}
    for metric in template["metrics"]:
        query = metric["provider"]["prometheus"]["query"]
        assert 'rollouts_pod_template_hash="{{args.canary-hash}}"' in query
        assert 'namespace="{{args.namespace}}"' in query
        # No data (too little traffic) is neither success nor failure: Inconclusive.
        assert metric["successCondition"].startswith("len(result) > 0 && ")
        assert metric["failureCondition"].startswith("len(result) > 0 && ")
        assert metric["failureLimit"] >= 1 and metric["inconclusiveLimit"] >= 1
