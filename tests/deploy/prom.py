"""A real Prometheus (Debian's `prometheus`) scraping given targets every second."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml
from helpers import free_port, prometheus_binary, stop

Target = str | tuple[str, dict[str, str]]


@contextmanager
def prometheus(targets: list[Target], workdir: Path) -> Iterator[str]:
    """Start Prometheus on a free 127.0.0.1 port scraping `targets` (job fraudserve); yield its
    URL once it answers queries; stop it by its process group afterwards.

    A target is "host:port", or ("host:port", labels): the labels go on every series scraped
    from it, as a PodMonitor's podTargetLabels put the pods' labels (namespace,
    pod_template_hash, ...) on theirs. One server may be listed twice with different labels."""
    groups = [{"targets": [t]} if isinstance(t, str) else {"targets": [t[0]], "labels": t[1]}
              for t in targets]
    cfg = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                      "evaluation_interval": "1s"},
           "scrape_configs": [{"job_name": "fraudserve", "metrics_path": "/metrics",
                               "static_configs": groups}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    log = workdir / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "Prometheus not ready after 60 s"
            time.sleep(0.5)
        yield url
    finally:
        stop(proc)


def wait_for_series(url: str, expr: str, timeout: float = 60) -> list[dict]:
    """Poll until `expr` returns a series (the first scrapes have landed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = requests.get(f"{url}/api/v1/query", params={"query": expr},
                                  timeout=5).json()["data"]["result"]
            if result:
                return result
        except (requests.RequestException, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"no series for {expr} after {timeout} s")
