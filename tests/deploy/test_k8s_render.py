"""deploy/k8s: every kustomization renders and every object validates offline.

Built-in kinds: kubernetes-validate (the Kubernetes OpenAPI schemas it bundles, strict, so an
unknown or misspelt field fails), on two Kubernetes versions. Custom resources (PodMonitor,
PrometheusRule, Rollout, AnalysisTemplate, CloudNativePG's Cluster, Pooler, ScheduledBackup and
the Barman Cloud plugin's ObjectStore): the schemas their projects publish in their CRDs, copied
in tests/deploy/schemas (SOURCES.md: repository, tag, commit), made strict the same way
(crds.py). The alert rules inside the PrometheusRule also go through `promtool check rules`.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import crds
import jsonschema
import kubernetes_validate
import pytest
import yaml
from k8s import KUSTOMIZATIONS, SERVING, kinds, name_of, one, render

from deploy import sync
from deploy.render import K8S, OVERLAYS

CUSTOM = crds.kinds()
# The newest schemas the wheel bundles, and an older release still common on managed clusters.
VERSIONS = [kubernetes_validate.latest_version(), "1.30.0"]
ROOT = Path(__file__).resolve().parents[2]
BASE = {"ServiceAccount", "Deployment", "Job", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "PodMonitor", "PrometheusRule"}
CNPG = {"Cluster", "Pooler", "ScheduledBackup", "ObjectStore"}


def validate(obj: dict, version: str) -> None:
    if obj["kind"] in CUSTOM:
        assert obj["apiVersion"] == crds.api_version(obj["kind"]), obj["apiVersion"]
        crds.validator(obj["kind"]).validate(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def test_every_kustomization_is_found() -> None:
    assert {name_of(p) for p in KUSTOMIZATIONS} == {
        "base", "postgres", "overlays/dev", "overlays/prod", "overlays/rollouts"}


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


def test_every_custom_kind_rendered_has_its_published_schema() -> None:
    """Nothing slips through as 'a CRD': every other kind has a bundled Kubernetes schema, and
    every committed CRD schema is used by some overlay."""
    rendered = set()
    for path in KUSTOMIZATIONS:
        for obj in render(path):
            rendered.add(obj["kind"])
            if obj["kind"] not in CUSTOM:
                kubernetes_validate.validate(obj, VERSIONS[0], strict=True)
    assert {"PodMonitor", "PrometheusRule", "Rollout", "AnalysisTemplate"} | CNPG == CUSTOM
    assert rendered >= CUSTOM


def test_schema_copies_name_their_source() -> None:
    sources = (crds.SCHEMAS / "SOURCES.md").read_text()
    for kind in CUSTOM:
        comment = crds.load(kind)["$comment"]
        assert " from " in comment and f"| {kind} |" in sources, kind
        repo, tag, commit = comment.split(" from ")[1].split()[:3]
        assert f"{repo} {tag} | {commit} |" in sources, kind


@pytest.mark.parametrize(("kind", "path", "field"), [
    ("Deployment", ["spec", "strategy", "rollingUpdate"], "maxUnavalable"),
    ("PodMonitor", ["spec", "podMetricsEndpoints", 0], "scrapeTimout"),
    ("PrometheusRule", ["spec", "groups", 0], "intervall"),
    ("Rollout", ["spec", "strategy", "canary"], "maxSurgee"),
    ("AnalysisTemplate", ["spec", "metrics", 0], "failureLimitt"),
    ("Cluster", ["spec"], "instancess"),
    ("Pooler", ["spec", "pgbouncer"], "poolMod"),
    ("ScheduledBackup", ["spec"], "schedul"),
    ("ObjectStore", ["spec", "configuration"], "destinationPat"),
])
def test_validators_reject_a_misspelt_field(kind: str, path: list, field: str) -> None:
    """The checks above can fail: one misspelt field in each kind is refused (a CRD alone
    would let the API server drop it silently)."""
    obj = copy.deepcopy(one(render(OVERLAYS / "rollouts"), kind))
    node = obj
    for key in path:
        node = node[key]
    node[field] = 1
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(obj, VERSIONS[0])


def test_validators_reject_missing_required_fields() -> None:
    prod = render(OVERLAYS / "prod")
    monitor = copy.deepcopy(one(prod, "PodMonitor"))
    monitor["spec"]["podMetricsEndpoints"][0]["port"] = 3000  # a port NAME, not a number
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, VERSIONS[0])
    rule = copy.deepcopy(one(prod, "PrometheusRule"))
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    with pytest.raises(jsonschema.ValidationError):
        validate(rule, VERSIONS[0])
    pooler = copy.deepcopy(one(prod, "Pooler"))
    pooler["spec"]["pgbouncer"]["poolMode"] = "statement"  # not one PgBouncer mode CNPG allows
    with pytest.raises(jsonschema.ValidationError):
        validate(pooler, VERSIONS[0])


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
    by_name = {name_of(p): kinds(render(p)) for p in KUSTOMIZATIONS}
    assert by_name["base"] == BASE
    assert by_name["postgres"] == {"StatefulSet", "Service", "ConfigMap", "NetworkPolicy"}
    assert by_name["overlays/dev"] == BASE | {"StatefulSet", "Namespace"}
    assert by_name["overlays/prod"] == BASE | CNPG | {"Namespace"}
    assert by_name["overlays/rollouts"] == by_name["overlays/prod"] | {
        "Rollout", "AnalysisTemplate"}
    for name, found in by_name.items():  # no Secret is ever committed: all made at deploy time
        assert "Secret" not in found, name


def test_base_is_what_overlays_build_on() -> None:
    assert (K8S / "components" / "cnpg" / "kustomization.yaml").exists()
