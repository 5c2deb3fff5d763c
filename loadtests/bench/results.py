"""The bench's results file: everything the table says, and enough to trace every figure.

One JSON document per run: the machine (cores, CPU model, Python/BentoML/scikit-learn
versions), the exact command line, the git commit of the benched checkout, the settings, every
phase, the in-process baseline, each service's start-up and memory, the summary table as
printed, the targets and the notes. `load` reads one back into the objects the table is made
from, so `python -m loadtests.bench.table` can rebuild the table from a committed file.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from loadtests.bench.baseline import RawModel
from loadtests.bench.phase import Phase, ServiceRun, Settings
from loadtests.bench.proc import TreeMemory
from loadtests.bench.report import TARGETS

SCHEMA = 2  # 1: the single-module bench (no machine, command, commit or services)


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """The 'model name' of /proc/cpuinfo (first CPU), or None where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    import psutil

    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
            "memory_mb": round(psutil.virtual_memory().total / 2**20),
            "python": platform.python_version(), "bentoml": _version("bentoml"),
            "scikit_learn": _version("scikit-learn")}


def git_commit(where: Path) -> dict[str, Any]:
    """HEAD of the checkout at `where` and whether its tracked files differ from it."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": None if status is None else bool(status)}


@dataclass
class Results:
    """One run, as written to bench.json (and --out)."""

    settings: Settings
    configs: dict[str, str | None]  # on / off / shadow: the config names of the phases
    phases: list[Phase]
    raw_model: RawModel | None
    services: list[ServiceRun]
    summary: list[dict[str, str]]
    notes: list[str]
    command: str
    git: dict[str, Any]
    machine: dict[str, Any]
    started: str = ""
    finished: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    targets: dict[str, float] = field(default_factory=lambda: dict(TARGETS))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "command": self.command, "git": self.git, "machine": self.machine,
            "started": self.started, "finished": self.finished, "settings": asdict(self.settings),
            "configs": self.configs, "targets": self.targets, "summary": self.summary,
            "services": [asdict(v) for v in self.services],
            "phases": [{**asdict(p), "key": p.key, "rows_per_s": p.rows_per_s}
                       for p in self.phases],
            "raw_model": asdict(self.raw_model) if self.raw_model else None,
            "notes": self.notes}

    def write(self, *paths: Path) -> None:
        text = json.dumps(self.to_json(), indent=2) + "\n"
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def _fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = cls.__dataclass_fields__  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in names}


def _memory(data: dict[str, Any] | None) -> TreeMemory | None:
    return TreeMemory(**_fields(TreeMemory, data)) if data else None


def load(path: Path) -> Results:
    """A results file back into objects (figures derived from others are recomputed)."""
    data = json.loads(Path(path).read_text())
    if data.get("schema", 1) < SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema', 1)}, this bench reads {SCHEMA}")
    services = [ServiceRun(**{**_fields(ServiceRun, v), "memory_ready": _memory(
        v.get("memory_ready")), "memory_end": _memory(v.get("memory_end"))})
        for v in data.get("services", [])]
    raw = data.get("raw_model")
    return Results(
        settings=Settings(**_fields(Settings, data["settings"])), configs=data["configs"],
        phases=[Phase(**_fields(Phase, p)) for p in data["phases"]],
        raw_model=RawModel(**raw) if raw else None, services=services,
        summary=data.get("summary", []), notes=data.get("notes", []),
        command=data.get("command", ""), git=data.get("git", {}),
        machine=data.get("machine", {}), started=data.get("started", ""),
        finished=data.get("finished", ""), targets={**TARGETS, **data.get("targets", {})})
