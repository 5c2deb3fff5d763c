"""Rendering deploy/k8s with the wheel's kubectl, and looking things up in the result."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from deploy.render import K8S, kustomize

# Every buildable kustomization (components are built inside the overlays that use them).
KUSTOMIZATIONS = sorted(p.parent for p in K8S.rglob("kustomization.yaml")
                        if "kind: Component" not in p.read_text())
SERVING = [p for p in KUSTOMIZATIONS if p.name != "postgres"]  # the ones with fraudserve
OVERLAY_NAMES = ("dev", "prod", "rollouts")


def name_of(path: Path) -> str:
    return str(path.relative_to(K8S))


@cache
def render(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.safe_load_all(kustomize(path)) if d)


def one(objects: tuple[dict, ...], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def kinds(objects: tuple[dict, ...]) -> set[str]:
    return {o["kind"] for o in objects}


def container(deployment: dict, name: str = "fraudserve") -> dict[str, Any]:
    (found,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                if c["name"] == name]
    return found


def port_number(ctr: dict, port: int | str) -> int:
    """A probe's or Service's port (a number or a container port name) as a number."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in ctr["ports"] if p["name"] == port]
    return number


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
