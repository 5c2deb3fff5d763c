"""Stamp an overlay with the release it deploys: the image by digest, the git sha, both models.

    python -m deploy.release models reports/gate/gate_report.json     # model_a=..., model_b=...
    python -m deploy.release stamp --overlay dev --image REPO@sha256:D --git-sha SHA \\
        --model-a fraud_logreg:abc --model-b fraud_hgb:def [--set-image]
    python -m deploy.release check --overlay dev --image REPO@sha256:D

The delivery workflow sets the image with `kustomize edit set image fraudserve=REPO@sha256:D`
in the overlay (kustomize is on GitHub's runners), then `stamp` writes the overlay's
release.yaml: the git sha and both model tags as pod labels (values made label-safe:
`fraud_hgb:abc` -> `fraud_hgb.abc`) and, exactly, as annotations, with the image. `check`
renders the overlay and fails unless every fraudserve container (API and migration Job) runs
exactly that image by digest. `--set-image` does the kustomize edit itself where no kustomize
binary is installed (it writes the same `images:` entry kustomize writes).

Refused: an image by tag (`:v1` can be re-pushed; a digest cannot), and the committed
placeholder digest (all zeros), which names no image.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from deploy.render import OVERLAYS, kustomize

CONTAINER_IMAGE = "fraudserve"   # the image name the base's containers use
PLACEHOLDER = "sha256:" + "0" * 64
DIGEST_REF = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._/:-][a-z0-9]+)*)@(?P<digest>sha256:[0-9a-f]{64})$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
LABELS = {"version": "app.kubernetes.io/version", "git-sha": "fraudserve.io/git-sha",
          "model-a": "fraudserve.io/model-a", "model-b": "fraudserve.io/model-b"}


class ReleaseError(ValueError):
    """The release cannot be stamped or deployed as given."""


def parse_ref(ref: str) -> tuple[str, str]:
    """'registry/name@sha256:<64 hex>' -> (name, digest); anything else is refused."""
    match = DIGEST_REF.match(ref.strip())
    if not match:
        raise ReleaseError(f"image {ref!r} is not `<repository>@sha256:<64 hex>`: deploy by "
                           "digest, never by tag")
    if match["digest"] == PLACEHOLDER:
        raise ReleaseError("the image digest is the committed placeholder (all zeros): set the "
                           "pushed image's digest with `kustomize edit set image`")
    return match["name"], match["digest"]


def label_value(text: str) -> str:
    """A model tag or sha as a label value: ':' and other characters become '.'."""
    value = re.sub(r"[^A-Za-z0-9_.-]", ".", text.strip())[:63].strip("._-")
    if not value or not LABEL_VALUE.match(value):
        raise ReleaseError(f"{text!r} cannot be a label value")
    return value


def gated_models(report: dict[str, Any]) -> dict[str, str]:
    """arm -> tag of the models a passed gate report passed (what the bento pins)."""
    if not report.get("passed"):
        raise ReleaseError("the gate report did not pass")
    tags = {m["arm"]: tag for tag, m in report.get("models", {}).items() if m.get("passed")}
    if set(tags) != {"model_a", "model_b"}:
        raise ReleaseError(f"the gate report passes {sorted(tags)} only")
    return tags


def set_image(overlay: Path, ref: str, binary: str | None = None) -> None:
    """`kustomize edit set image fraudserve=<ref>` in the overlay; without a kustomize binary,
    the same `images:` entry written directly."""
    name, digest = parse_ref(ref)
    binary = binary or shutil.which("kustomize")
    if binary:
        subprocess.run([binary, "edit", "set", "image", f"{CONTAINER_IMAGE}={ref}"],
                       cwd=overlay, check=True, timeout=60)
        return
    path = overlay / "kustomization.yaml"
    doc = yaml.safe_load(path.read_text())
    images = [i for i in doc.get("images", []) if i.get("name") != CONTAINER_IMAGE]
    doc["images"] = [*images, {"name": CONTAINER_IMAGE, "newName": name, "digest": digest}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def release_patch(git_sha: str, models: dict[str, str], ref: str) -> dict[str, Any]:
    """The strategic-merge patch that puts the release on the Deployment's pods."""
    parse_ref(ref)
    if not re.fullmatch(r"[0-9a-f]{7,40}", git_sha):
        raise ReleaseError(f"git sha {git_sha!r} is not hexadecimal")
    labels = {LABELS["version"]: git_sha[:12], LABELS["git-sha"]: git_sha,
              LABELS["model-a"]: label_value(models["model_a"]),
              LABELS["model-b"]: label_value(models["model_b"])}
    annotations = {"fraudserve.io/git-sha": git_sha, "fraudserve.io/image": ref,
                   "fraudserve.io/model-a": models["model_a"],
                   "fraudserve.io/model-b": models["model_b"]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fraudserve"},
            "spec": {"template": {"metadata": {"labels": labels,
                                               "annotations": annotations}}}}


def stamp(overlay: Path, git_sha: str, models: dict[str, str], ref: str) -> Path:
    """Write the overlay's release.yaml (the overlay lists it in its patches)."""
    path = overlay / "release.yaml"
    listed = yaml.safe_load((overlay / "kustomization.yaml").read_text()).get("patches", [])
    if {"path": "release.yaml"} not in listed:
        raise ReleaseError(f"{overlay}/kustomization.yaml does not patch with release.yaml")
    head = ("# The release this overlay deploys: written by `python -m deploy.release stamp`.\n")
    path.write_text(head + yaml.safe_dump(release_patch(git_sha, models, ref), sort_keys=False))
    return path


def fraudserve_images(rendered: str) -> dict[str, str]:
    """'Kind/name' -> image of every container running the fraudserve image."""
    found = {}
    for doc in yaml.safe_load_all(rendered):
        if not doc or doc.get("kind") not in {"Deployment", "Job", "Rollout"}:
            continue
        spec = doc["spec"].get("template", {}).get("spec", {})
        for ctr in spec.get("containers", []):
            if ctr["name"] in {"fraudserve", "migrate"}:
                found[f"{doc['kind']}/{doc['metadata']['name']}/{ctr['name']}"] = ctr["image"]
    return found


def check(overlay: Path, ref: str) -> dict[str, str]:
    """Render the overlay; every fraudserve container must run exactly `ref`."""
    parse_ref(ref)
    images = fraudserve_images(kustomize(overlay))
    wrong = {k: v for k, v in images.items() if v != ref}
    if not images or wrong:
        raise ReleaseError(f"{overlay.name} does not render {ref}: {wrong or 'no containers'}")
    return images


def overlay_dir(name: str) -> Path:
    path = OVERLAYS / name if (OVERLAYS / name).is_dir() else Path(name)
    if not (path / "kustomization.yaml").exists():
        raise ReleaseError(f"no kustomization.yaml in {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="print model_a=<tag> and model_b=<tag>")
    models.add_argument("gate_report", type=Path)
    st = sub.add_parser("stamp", help="write the overlay's release.yaml")
    ck = sub.add_parser("check", help="the overlay renders exactly this image")
    for p in (st, ck):
        p.add_argument("--overlay", required=True)
        p.add_argument("--image", required=True, help="<repository>@sha256:<digest>")
    st.add_argument("--git-sha", required=True)
    st.add_argument("--model-a", required=True)
    st.add_argument("--model-b", required=True)
    st.add_argument("--set-image", action="store_true",
                    help="also set the image (kustomize edit set image, or its equivalent)")
    args = parser.parse_args(argv)
    try:
        if args.command == "models":
            for arm, tag in sorted(gated_models(json.loads(args.gate_report.read_text()))
                                   .items()):
                print(f"{arm}={tag}")
            return 0
        overlay = overlay_dir(args.overlay)
        if args.command == "stamp":
            if args.set_image:
                set_image(overlay, args.image)
            path = stamp(overlay, args.git_sha,
                         {"model_a": args.model_a, "model_b": args.model_b}, args.image)
            print(f"wrote {path}")
            return 0
        for where, image in check(overlay, args.image).items():
            print(f"{where}: {image}")
        return 0
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
