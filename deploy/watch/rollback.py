"""The undo: `kubectl rollout undo`, the one step of the watch that acts on the cluster."""

from __future__ import annotations

import shutil
import subprocess


def undo_command(deployment: str, namespace: str, kubectl: str = "kubectl") -> list[str]:
    """The exact command the watch runs on a breach."""
    return [kubectl, "rollout", "undo", f"deployment/{deployment}", "-n", namespace]


def undo(deployment: str, namespace: str) -> subprocess.CompletedProcess[str]:
    """Roll the Deployment back to its previous revision, with the kubectl found on PATH."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise FileNotFoundError("kubectl is not on PATH: cannot roll back")
    return subprocess.run(undo_command(deployment, namespace, kubectl), capture_output=True,
                          text=True, timeout=120, check=False)
