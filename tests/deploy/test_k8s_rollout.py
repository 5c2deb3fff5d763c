"""The rendered objects keep their promises: zero-downtime rollouts, probes on the routes the
service gates, resources, wiring between objects, and what differs between dev and prod."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from k8s import SERVING, container, name_of, one, port_number, render, selects

from deploy.render import K8S, OVERLAYS
from deploy.render import render as render_with_image

SERVICE_PORT = 3000  # the bento image's `bentoml serve` port (docs/container.md)


def pod_labels(objects: tuple[dict, ...]) -> dict[str, str]:
    return one(objects, "Deployment", "fraudserve")["spec"]["template"]["metadata"]["labels"]


@pytest.fixture(params=SERVING, ids=name_of)
def objects(request: pytest.FixtureRequest) -> tuple[dict, ...]:
    return render(request.param)


def test_rollout_never_drops_below_the_wanted_count(objects: tuple[dict, ...]) -> None:
    spec = one(objects, "Deployment", "fraudserve")["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert spec["progressDeadlineSeconds"] > 0
    assert spec.get("minReadySeconds", 0) > 0
    assert spec["selector"]["matchLabels"].items() <= pod_labels(objects).items()


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
    ctr = container(one(objects, "Deployment", "fraudserve"))
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(ctr["resources"][kind]), kind
    env = {e["name"]: e for e in ctr["env"]}
    assert env["OMP_NUM_THREADS"]["value"] == "1"


def test_secret_and_config_wiring(objects: tuple[dict, ...]) -> None:
    deployment = one(objects, "Deployment", "fraudserve")
    ctr = container(deployment)
    env = {e["name"]: e for e in ctr["env"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}

    ref = env["FRAUDSERVE_LEDGER"]["valueFrom"]["secretKeyRef"]
    keys_path = Path(env["FRAUDSERVE_API_KEYS_FILE"]["value"])
    secret_volume = volumes[mounts[str(keys_path.parent)]]["secret"]
    assert secret_volume["secretName"] == ref["name"] == "fraudserve-secrets"
    assert {"key": "api-keys", "path": keys_path.name} in secret_volume["items"]

    ab_path = Path(env["FRAUDSERVE_AB_CONFIG"]["value"])
    config_map = volumes[mounts[str(ab_path.parent)]]["configMap"]["name"]
    data = one(objects, "ConfigMap", config_map)["data"]
    assert ab_path.name in data
    assert yaml.safe_load(data[ab_path.name]) == yaml.safe_load(
        (K8S.parents[1] / "configs" / "ab.yaml").read_text())

    secrets = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"]
               == ref["name"]]
    for secret in secrets:  # prod renders none: the Secret is made outside git
        assert {ref["key"], "api-keys"} <= set(secret["stringData"])
        entries = secret["stringData"]["api-keys"].replace(",", "\n").split()
        assert entries and all(e.split(":", 1)[0] in {"score", "label", "admin"}
                               for e in entries)


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
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    assert selects(pdb["selector"]["matchLabels"], labels)


def test_at_least_two_replicas_and_drains_keep_one(objects: tuple[dict, ...]) -> None:
    spec = one(objects, "Deployment", "fraudserve")["spec"]
    hpa = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "fraudserve"}
    floor = hpa["minReplicas"]
    assert 2 <= floor <= hpa["maxReplicas"]
    if "replicas" in spec:
        assert spec["replicas"] >= 2
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    assert 1 <= pdb["maxUnavailable"] < floor


def test_namespaced_objects_land_in_the_overlays_namespace() -> None:
    for overlay in OVERLAYS.iterdir():
        objects = render(overlay)
        (ns,) = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
        for obj in objects:
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == ns, obj["metadata"]


def test_dev_ledger_url_reaches_the_dev_database() -> None:
    objects = render(OVERLAYS / "dev")
    url = urlsplit(one(objects, "Secret", "fraudserve-secrets")["stringData"]["ledger-url"])
    db = one(objects, "Secret", "postgres")["stringData"]
    assert url.scheme == "postgresql"
    assert (url.username, url.password, url.path.lstrip("/")) == (
        db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"])
    service = one(objects, "Service", "postgres")
    assert url.hostname == service["metadata"]["name"]
    assert url.port == service["spec"]["ports"][0]["port"]
    statefulset = one(objects, "StatefulSet", "postgres")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert selects(service["spec"]["selector"],
                   statefulset["spec"]["template"]["metadata"]["labels"])


def test_prod_has_no_database_no_placeholder_and_lets_the_hpa_own_replicas() -> None:
    objects = render(OVERLAYS / "prod")
    assert not [o for o in objects if o["kind"] in {"StatefulSet", "Secret"}]
    assert "REPLACE-ME" not in yaml.safe_dump_all(objects)
    assert "replicas" not in one(objects, "Deployment", "fraudserve")["spec"]


def test_render_sets_the_image_to_deploy() -> None:
    image = "registry.example.com/team/fraudserve:0a1b2c3"
    objects = list(yaml.safe_load_all(render_with_image(OVERLAYS / "prod", image)))
    deployment = one(tuple(o for o in objects if o), "Deployment", "fraudserve")
    assert container(deployment)["image"] == image
    assert render_with_image(OVERLAYS / "prod", None) != render_with_image(OVERLAYS / "prod",
                                                                          image)
