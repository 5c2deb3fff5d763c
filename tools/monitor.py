"""`make monitor`: Prometheus (with the alert rules) and the MLflow UI beside a running service.

    python tools/monitor.py --port 3000 [--prometheus-port 9090] [--mlflow-port 5000]

Prometheus scrapes the service on 127.0.0.1:PORT with configs/prometheus.yml and
configs/alerts.yml (a copy of the config with the target and the rules' path filled in is
written to the state directory); the MLflow UI serves MLFLOW_TRACKING_URI (default: the
project's SQLite file). Both listen on 127.0.0.1 only. Ctrl-C (SIGINT) or SIGTERM stops both
process groups and waits for them, so nothing is left running; if either exits on its own,
the other is stopped too and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import yaml

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STOP_TIMEOUT_S = 15.0
# The UI only browses runs: without MLflow 3's job runners it is one process, not nine.
ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def prometheus_config(service_port: int, scrape_interval: str = "15s") -> dict:
    """configs/prometheus.yml aimed at the service on HOST:service_port, rules by full path."""
    cfg = yaml.safe_load((ROOT / "configs" / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval=scrape_interval,
                         scrape_timeout=min(scrape_interval, "10s", key=_seconds))
    cfg["rule_files"] = [str(ROOT / "configs" / "alerts.yml")]
    cfg["scrape_configs"][0]["static_configs"] = [{"targets": [f"{HOST}:{service_port}"]}]
    return cfg


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    raise ValueError(f"unsupported duration {duration!r} (use ms, s, m or h)")


def commands(args: argparse.Namespace, state: Path) -> dict[str, list[str]]:
    """The two command lines, by name."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("prometheus is not installed: run `make sysdeps` (Debian's package)")
    mlflow = Path(sys.executable).parent / "mlflow"
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlruns.db'}"
    config = state / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(args.port, args.scrape_interval)))
    return {
        "prometheus": [prometheus, f"--config.file={config}",
                       f"--storage.tsdb.path={state / 'tsdb'}",
                       f"--web.listen-address={HOST}:{args.prometheus_port}"],
        "mlflow": [str(mlflow), "ui", "--host", HOST, "--port", str(args.mlflow_port),
                   "--workers", "1", "--backend-store-uri", uri],
    }


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we started (by its PID), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run(args: argparse.Namespace) -> int:
    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    cmds = commands(args, state)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, cmd in cmds.items():
            log = open(state / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, cwd=ROOT,
                                           env={**ENV, **os.environ})
            log.close()
            print(f"{name} pid {procs[name].pid} (log: {state / f'{name}.log'})", flush=True)
        urls = {"prometheus": f"http://{HOST}:{args.prometheus_port}",
                "mlflow": f"http://{HOST}:{args.mlflow_port}"}
        ready = {"prometheus": f"{urls['prometheus']}/-/ready",
                 "mlflow": f"{urls['mlflow']}/health"}
        print(f"scraping the service at http://{HOST}:{args.port}/metrics", flush=True)
        pending = set(procs)
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited ({proc.returncode}); see {state / f'{name}.log'}",
                          file=sys.stderr, flush=True)
                    return 1
            for name in sorted(pending):
                if answers(ready[name]):
                    pending.discard(name)
                    print(f"{name} ready: {urls[name]}", flush=True)
            time.sleep(0.5)
    except _Stop:
        print("stopping prometheus and mlflow", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for proc in procs.values():
            stop(proc)
        print("stopped", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=3000, help="the running service's port (3000)")
    p.add_argument("--prometheus-port", type=int, default=9090, help="Prometheus UI (9090)")
    p.add_argument("--mlflow-port", type=int, default=5000, help="MLflow UI (5000)")
    p.add_argument("--scrape-interval", default="15s", help="Prometheus scrape interval (15s)")
    p.add_argument("--state-dir", default=str(ROOT / "reports" / "monitor"),
                   help="generated config, Prometheus data and logs (reports/monitor)")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
