"""The delivery workflow: linted (actionlint), schema-checked (SchemaStore's GitHub workflow
schema bundled in check-jsonschema), and held to its promises: pinned actions, pip cache, the
gate report kept, nothing pushed or deployed from a pull request, the same steps as
tools/pipeline.sh."""

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
SHIPS = ("docker push", "kubectl apply", "kubectl rollout", "deploy.watch")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


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
    assert {"retrain", "full_suite", "deploy", "environment"} <= set(
        on["workflow_dispatch"]["inputs"])


def test_actions_are_pinned_and_pip_is_cached() -> None:
    steps = [s for job in workflow()["jobs"].values() for s in job["steps"]]
    uses = [s["uses"] for s in steps if "uses" in s]
    assert uses and all(PINNED.match(u) for u in uses), [u for u in uses if not PINNED.match(u)]
    pythons = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert pythons and all(s["with"]["cache"] == "pip" for s in pythons)


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


def test_pull_requests_never_push_or_deploy() -> None:
    jobs = workflow()["jobs"]
    for name, job in jobs.items():
        text = yaml.safe_dump(job["steps"])
        if any(word in text for word in SHIPS):
            assert not runs_on_pull_request(jobs, name), name
    running = {n for n in jobs if runs_on_pull_request(jobs, n)}
    assert {"checks", "build", "suite"} <= running, running  # ...but do run up to the build


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
    assert sorted(called) == sorted(order), called
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
