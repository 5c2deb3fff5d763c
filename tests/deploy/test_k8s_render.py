"""deploy/k8s: every kustomization renders and every object validates offline.

Built-in kinds: kubernetes-validate (the Kubernetes OpenAPI schemas it bundles, strict, so an
unknown or misspelt field fails). PodMonitor and PrometheusRule are CRDs it has no schema for:
their structure is checked against the minimal schemas in tests/deploy/schemas (ours, not the
Operator's), and the rules inside with `promtool check rules`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from k8s import KUSTOMIZATIONS, SERVING, kinds, name_of, one, render

from deploy import sync
from deploy.render import K8S

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CRDS = {p.stem: json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")}
# The newest schemas the wheel bundles, and an older release still common on managed clusters.
VERSIONS = [kubernetes_validate.latest_version(), "1.30.0"]
ROOT = Path(__file__).resolve().parents[2]


def validate(obj: dict, version: str) -> None:
    if obj["kind"] in CRDS:
        jsonschema.validate(obj, CRDS[obj["kind"]])
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def test_every_kustomization_is_found() -> None:
    assert {name_of(p) for p in KUSTOMIZATIONS} >= {
        "base", "postgres", "overlays/dev", "overlays/prod"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=name_of)
def test_every_object_validates(path: Path, version: str) -> None:
    objects = render(path)
    assert objects
    for obj in objects:
        try:
            validate(obj, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{name_of(path)}: {obj['kind']}/{obj['metadata']['name']}: {exc}")


def test_only_known_kinds_skip_kubernetes_schemas() -> None:
    """Nothing else slips through as 'a CRD': every other kind has a bundled schema."""
    for path in KUSTOMIZATIONS:
        for obj in render(path):
            if obj["kind"] not in CRDS:
                kubernetes_validate.validate(obj, VERSIONS[0], strict=True)
    assert set(CRDS) == {"PodMonitor", "PrometheusRule"}


def test_validators_reject_broken_objects() -> None:
    """The checks above can fail: a misspelt rollout field, a PodMonitor without endpoints and
    a rule without an expression are each refused."""
    base = render(K8S / "base")
    deployment = copy.deepcopy(one(base, "Deployment"))
    deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavalable"] = 0
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, VERSIONS[0])
    monitor = copy.deepcopy(one(base, "PodMonitor"))
    del monitor["spec"]["podMetricsEndpoints"]
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, VERSIONS[0])
    rule = copy.deepcopy(one(base, "PrometheusRule"))
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    with pytest.raises(jsonschema.ValidationError):
        validate(rule, VERSIONS[0])


def test_generated_files_are_current() -> None:
    assert sync.stale() == [], "run `python -m deploy.sync` and commit the result"


def test_sync_check_fails_on_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--check` is not a rubber stamp: a changed alerts file makes it fail."""
    alerts = tmp_path / "alerts.yml"
    text = (ROOT / "configs" / "alerts.yml").read_text().replace("> 0.1", "> 0.2", 1)
    assert text != (ROOT / "configs" / "alerts.yml").read_text()
    alerts.write_text(text)
    real = sync.prometheus_rule
    monkeypatch.setattr(sync, "prometheus_rule", lambda alerts_path=alerts: real(alerts_path))
    assert sync.main(["--check"]) == 1


@pytest.mark.parametrize("path", SERVING, ids=name_of)
def test_prometheus_rule_is_configs_alerts(path: Path) -> None:
    rule = one(render(path), "PrometheusRule")
    alerts = yaml.safe_load((ROOT / "configs" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]


@pytest.mark.parametrize("path", SERVING, ids=name_of)
def test_prometheus_rule_passes_promtool(path: Path, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: `make sysdeps` installs it")
        pytest.skip("promtool not installed")
    groups = one(render(path), "PrometheusRule")["spec"]["groups"]
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}))
    out = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True,
                         text=True, timeout=60)
    n = sum(len(g["rules"]) for g in groups)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{n} rules found" in out.stdout + out.stderr


def test_kinds_per_kustomization() -> None:
    base = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ConfigMap", "Secret", "PodMonitor", "PrometheusRule"}
    by_name = {name_of(p): kinds(render(p)) for p in KUSTOMIZATIONS}
    assert by_name["base"] == base
    assert by_name["postgres"] == {"StatefulSet", "Service", "Secret"}
    assert by_name["overlays/dev"] == base | {"StatefulSet", "Namespace"}
    assert by_name["overlays/prod"] == (base - {"Secret"}) | {"Namespace"}
