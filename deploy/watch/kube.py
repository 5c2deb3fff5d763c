"""Which pods are the new release's: the pod-template-hash of the Deployment's current
ReplicaSet (the one whose revision annotation equals the Deployment's), read with kubectl."""

from __future__ import annotations

import json
import shutil
import subprocess

REVISION = "deployment.kubernetes.io/revision"


def kubectl_json(args: list[str], kubectl: str | None = None) -> dict:
    binary = kubectl or shutil.which("kubectl")
    if binary is None:
        raise FileNotFoundError("kubectl is not on PATH")
    out = subprocess.run([binary, *args, "-o", "json"], capture_output=True, text=True,
                         timeout=60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def new_template_hash(deployment: str, namespace: str, kubectl: str | None = None) -> str:
    """The pod-template-hash label of the Deployment's newest ReplicaSet."""
    dep = kubectl_json(["get", "deployment", deployment, "-n", namespace], kubectl)
    revision = dep["metadata"].get("annotations", {}).get(REVISION)
    selector = ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"]["matchLabels"].items())
    sets = kubectl_json(["get", "replicasets", "-n", namespace, "-l", selector], kubectl)
    for rs in sets.get("items", []):
        if rs["metadata"].get("annotations", {}).get(REVISION) == revision:
            return rs["metadata"]["labels"]["pod-template-hash"]
    raise RuntimeError(f"no ReplicaSet of deployment/{deployment} at revision {revision}")
