"""Build the real fraudserve OCI image with `bentoml containerize` and run it with podman.

Marked `container` (slow: minutes). How and why: docs/container.md.

1. Tools: podman, the build backend (buildah by default) and runc. When one is missing the
   test fails if the CI env var is set (install them with tools/container/install_deps.sh),
   and skips otherwise.
2. The local base image (tools/container/base_image.sh, idempotent: debootstraps Debian
   bookworm from the apt mirror, since Docker Hub is out of reach here).
3. The bento, the way `make build` makes it: the session's trained store and gate report
   (tests/conftest.py), then `python -m gating.build`, which refuses ungated models, pins
   both gated tags and bundles the gate report. (FRAUDSERVE_BENTO=<tag> instead reuses a
   bento already in $BENTOML_HOME, e.g. the one `make build` wrote to
   reports/build/bento_tag.txt, and skips training.)
4. `bentoml containerize <bento> --backend buildah --opt from=<local base>`: buildah's
   `--from` replaces the first FROM of the Dockerfile BentoML renders, so neither the
   committed bentofile.yaml (which keeps a public base image for users) nor the bento
   changes.
5. `podman run --network host` with BENTOML_HOST=127.0.0.1 and a free BENTOML_PORT; waits for
   /readyz (the image must become ready on its own, from the gate report it bundles),
   POSTs the seed transaction (fraud.schema.EXAMPLE_TRANSACTION: user_123, amount 250.0,
   hour 23, ...) to /predict and checks for a 200 with fraud_probability in [0, 1].
6. Removes the container and the image by id, pass or fail (the base image stays).

Env knobs: FRAUDSERVE_BENTO, FRAUDSERVE_BASE_IMAGE (default localhost/fraudserve-base:bookworm),
FRAUDSERVE_CONTAINER_BACKEND (buildah or podman), CONTAINERS_CONF (default
tools/container/containers.conf).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from fraud.schema import EXAMPLE_TRANSACTION

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(3000)]

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "container"
PYTHON = sys.executable
BASE_IMAGE = os.environ.get("FRAUDSERVE_BASE_IMAGE", "localhost/fraudserve-base:bookworm")
BACKEND = os.environ.get("FRAUDSERVE_CONTAINER_BACKEND", "buildah")
READY_TIMEOUT_S = 240
BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Bento:
    """A built bento and the environment (BentoML store) it lives in."""

    tag: str
    env: dict[str, str]


def _missing(msg: str) -> None:
    """A prerequisite is absent: a failure under CI, a skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{msg} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(msg)


def _env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("CONTAINERS_CONF", str(TOOLS / "containers.conf"))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return env


def _bentoml() -> list[str]:
    exe = Path(PYTHON).with_name("bentoml")
    return [str(exe)] if exe.exists() else [PYTHON, "-m", "bentoml"]


def _run(
    cmd: list[str],
    timeout: float = 120,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        tail = (proc.stdout[-3000:] + "\n" + proc.stderr[-3000:]).strip()
        pytest.fail(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{tail}", pytrace=False)
    return proc


def _logs(cid: str) -> str:
    out = _run(["podman", "logs", cid], check=False)
    return (out.stdout + out.stderr)[-4000:]


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tools() -> None:
    for binary in ("podman", BACKEND, "runc"):
        if shutil.which(binary) is None:
            _missing(f"`{binary}` not found: run tools/container/install_deps.sh")
    probe = _run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], check=False)
    if probe.returncode != 0:
        pytest.fail(f"podman does not work here:\n{probe.stderr[-2000:]}", pytrace=False)


@pytest.fixture(scope="module")
def base_image(tools: None) -> str:
    if _run(["podman", "image", "exists", BASE_IMAGE], check=False).returncode != 0:
        if shutil.which("debootstrap") is None:
            _missing(
                f"base image {BASE_IMAGE} absent and `debootstrap` not found: "
                "run tools/container/install_deps.sh"
            )
        t0 = time.monotonic()
        _run(["bash", str(TOOLS / "base_image.sh")], timeout=900)
        print(f"base image {BASE_IMAGE} built in {time.monotonic() - t0:.0f}s")
    return BASE_IMAGE


@pytest.fixture(scope="module")
def bento(
    base_image: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Bento:
    given = os.environ.get("FRAUDSERVE_BENTO")
    if given:
        env = _env()
        if _run([*_bentoml(), "get", given, "-o", "json"], check=False, env=env).returncode:
            home = env.get("BENTOML_HOME") or "~/bentoml"
            _missing(f"FRAUDSERVE_BENTO={given} is not in the BentoML store at {home}")
        return Bento(given, env)
    # The session's trained store and passed gate report (shared with the service tests).
    store = request.getfixturevalue("trained_store")
    report = request.getfixturevalue("gate_report")
    env = _env(store.env(FRAUDSERVE_GATE_REPORT=str(report)))
    tag_file = tmp_path_factory.mktemp("container-build") / "bento_tag.txt"
    t0 = time.monotonic()
    _run(
        [PYTHON, "-m", "gating.build", "--tag-file", str(tag_file)],
        timeout=900,
        env=env,
    )
    tag = tag_file.read_text().strip()
    print(f"bento {tag} built in {time.monotonic() - t0:.0f}s")
    return Bento(tag, env)


# One image and one container for the module's tests (they only read from it): each
# `bentoml containerize` took ~80 s of CI.
@pytest.fixture(scope="module")
def image(base_image: str, bento: Bento) -> Iterator[str]:
    tag = f"localhost/fraudserve-test:{uuid.uuid4().hex[:10]}"
    cmd = [*_bentoml(), "containerize", bento.tag, "--backend", BACKEND, "-t", tag]
    cmd += ["--opt", f"from={base_image}"]
    t0 = time.monotonic()
    try:
        _run(cmd, timeout=BUILD_TIMEOUT_S, env=bento.env)
        build_s = time.monotonic() - t0
        size = int(_run(["podman", "image", "inspect", "--format", "{{.Size}}", tag]).stdout)
        print(f"containerize {bento.tag} -> {tag}: {build_s:.0f}s, {size / 1e6:.0f} MB")
        yield tag
    finally:
        _run(["podman", "rmi", "-f", tag], check=False)


@pytest.fixture(scope="module")
def server(image: str) -> Iterator[str]:
    port = _free_loopback_port()
    name = f"fraudserve-test-{uuid.uuid4().hex[:10]}"
    run = ["podman", "run", "-d", "--name", name, "--network", "host"]
    run += ["-e", "BENTOML_HOST=127.0.0.1", "-e", f"BENTOML_PORT={port}"]
    run += ["-e", "BENTOML_DO_NOT_TRACK=true", image]
    cid = _run(run).stdout.strip()
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            state = _run(
                ["podman", "inspect", "--format", "{{.State.Running}}", cid], check=False
            ).stdout.strip()
            if state != "true":
                pytest.fail(f"container exited before /readyz:\n{_logs(cid)}", pytrace=False)
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                pytest.fail(
                    f"/readyz not 200 after {READY_TIMEOUT_S}s:\n{_logs(cid)}", pytrace=False
                )
            time.sleep(1)
        print(f"container ready in {time.monotonic() - t0:.0f}s on {url}")
        yield url
    finally:
        _run(["podman", "rm", "-f", "-t", "10", cid], check=False)


def test_image_serves_predict(server: str) -> None:
    resp = requests.post(f"{server}/predict", json=EXAMPLE_TRANSACTION, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "fraud_probability" in body, body
    prob = body["fraud_probability"]
    assert isinstance(prob, int | float) and not isinstance(prob, bool), body
    assert 0.0 <= prob <= 1.0, body


def test_image_serves_the_model_card_make_build_bundled(server: str) -> None:
    """The card in the image is the one `make build` wrote for the gated models ("build"),
    not one the service had to make at start-up."""
    resp = requests.get(f"{server}/model-card", headers={"Accept": "application/json"},
                        timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Model-Card-Source"] == "build", resp.headers
    card = resp.json()
    served = requests.get(f"{server}/health", timeout=30).json()["models"]
    assert {m["tag"] for m in card["models"]} == set(served.values()), (card, served)


def test_the_bento_ships_the_product_and_no_simulation_or_benchmark(bento: Bento) -> None:
    """The bento's source holds service.py and fraud/'s packages, and nothing of simulations/
    or loadtests/ (they are not part of the product: bentofile.yaml includes fraud/ only)."""
    info = json.loads(_run([*_bentoml(), "get", bento.tag, "-o", "json"], env=bento.env).stdout)
    home = Path(bento.env.get("BENTOML_HOME") or Path.home() / "bentoml")
    name, version = bento.tag.split(":")
    src = home / "bentos" / name / version / "src"
    assert src.is_dir(), f"no bento source at {src} ({info.get('tag')})"
    files = {p.relative_to(src).as_posix() for p in src.rglob("*.py")}
    assert "service.py" in files
    for package in ("api", "serving", "experiment", "stats", "store", "report", "config"):
        assert f"fraud/{package}/__init__.py" in files, f"fraud/{package} is not in the bento"
    shipped = sorted(f for f in files if f.startswith(("simulations/", "loadtests/", "tests/"))
                     or "simulation" in f or "bench" in f)
    assert shipped == [], f"the bento ships non-product modules: {shipped}"
