"""tools/deploy.sh end to end against a stand-in cluster: the order is what makes a release
safe (Secrets, then everything but the workloads with the migration Job, the Job complete,
only then the Deployment with exactly that digest), and a failed migration rolls nothing out.

The script runs for real on a copy of the repository's deploy/ and tools/ (it edits the
overlay, as kustomize edit does on a runner); `kubectl kustomize` is the real one; the
cluster-facing kubectl is a recording stand-in, the one part that cannot run here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/team/fraudserve@sha256:" + "5e" * 32
FAKE = """#!{python}
import json, os, sys
log = {log!r}
args = sys.argv[1:]
stdin = sys.stdin.read() if "-" in args else ""
files = [open(args[i + 1]).read() for i, a in enumerate(args) if a == "-f" and args[i + 1] != "-"]
with open(log, "a") as out:
    out.write(json.dumps({{"args": args, "stdin": stdin, "files": files}}) + "\\n")
if args[:2] == ["create", "namespace"]:
    print("apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: " + args[2])
elif args[:2] == ["get", "secret"]:
    print('Error from server (NotFound): secrets "x" not found', file=sys.stderr); sys.exit(1)
elif args[:2] == ["get", "job"]:
    print({job_state!r})
elif args[:2] == ["get", "deployment"]:
    print("2")
"""


def run(tmp_path: Path, job_state: str,
        image: str = IMAGE) -> tuple[subprocess.CompletedProcess, list[dict]]:
    work = tmp_path / "repo"
    for part in ("deploy", "tools"):
        shutil.copytree(ROOT / part, work / part,
                        ignore=shutil.ignore_patterns("__pycache__", "checkov"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "kubectl.jsonl"
    fake = bindir / "kubectl"
    fake.write_text(FAKE.format(python=sys.executable, log=str(log), job_state=job_state))
    fake.chmod(0o755)
    # The real kubectl for `kubectl kustomize` sits beside the interpreter (deploy.render).
    env = {**{k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"},
           "PATH": f"{bindir}{os.pathsep}/usr/bin:/bin", "PYTHON": sys.executable,
           "GIT_SHA": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
           "MODEL_A": "fraud_logreg:aaaa", "MODEL_B": "fraud_hgb:bbbb", "PROMETHEUS_URL": "",
           "REPORTS": str(tmp_path / "reports")}
    out = subprocess.run(["bash", str(work / "tools" / "deploy.sh"), "dev", image], cwd=work,
                         env=env, capture_output=True, text=True, timeout=300)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return out, calls


def kinds(text: str) -> list[str]:
    return [d["kind"] for d in yaml.safe_load_all(text) if d]


def test_secrets_then_migration_then_the_digest(tmp_path: Path) -> None:
    out, calls = run(tmp_path, job_state="Complete ")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    verbs = [" ".join(c["args"][:2]) for c in calls]
    creates = [i for i, c in enumerate(calls) if c["args"][:2] == ["create", "-f"]]
    applies = [i for i, c in enumerate(calls) if c["args"][0] == "apply" and c["files"]]
    delete = verbs.index("delete job")
    wait = verbs.index("get job")
    assert len(applies) == 2, verbs
    pre, workloads = (calls[i]["files"][0] for i in applies)
    # The random Secrets exist before anything reads them.
    made = [json.loads(calls[i]["stdin"])["metadata"]["name"] for i in creates]
    assert made == ["fraudserve-salt", "postgres", "fraudserve-secrets"]
    assert max(creates) < delete < applies[0] < wait < applies[1], verbs
    # First everything but the workloads, the migration Job among it ...
    assert "Job" in kinds(pre) and "Deployment" not in kinds(pre)
    # ... then, once the Job completed, the Deployment, by digest, stamped with the release.
    (deployment,) = [d for d in yaml.safe_load_all(workloads) if d]
    assert deployment["kind"] == "Deployment"
    template = deployment["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == IMAGE
    assert template["metadata"]["labels"]["fraudserve.io/model-b"] == "fraud_hgb.bbbb"
    job = next(d for d in yaml.safe_load_all(pre) if d and d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert ["rollout", "status", "deployment/fraudserve", "-n", "fraudserve-dev",
            "--timeout=15m"] in [c["args"] for c in calls]
    assert "PROMETHEUS_URL is not set" in out.stdout


def test_a_failed_migration_rolls_nothing_out(tmp_path: Path) -> None:
    out, calls = run(tmp_path, job_state="Failed ")
    assert out.returncode == 1
    assert "schema migration failed" in out.stdout
    applied = [c["files"][0] for c in calls if c["args"][0] == "apply" and c["files"]]
    assert len(applied) == 1 and "Deployment" not in kinds(applied[0])
    assert not any(c["args"][:1] == ["rollout"] for c in calls)


@pytest.mark.parametrize("image", ["registry.example.com/team/fraudserve:v1",
                                   "registry.example.com/team/fraudserve@sha256:" + "0" * 64])
def test_a_tag_or_the_placeholder_is_refused_before_the_cluster_is_touched(
        tmp_path: Path, image: str) -> None:
    out, calls = run(tmp_path, job_state="Complete ", image=image)
    assert out.returncode != 0
    assert calls == []
