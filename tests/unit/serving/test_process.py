"""A serving process's policy: one OpenMP thread, garbage collection off the request path, the
environment's switches, and refusing to start with one line on stderr."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from fraud.config import PROJECT_ROOT
from fraud.serving import process


def test_one_openmp_thread_unless_the_environment_chose() -> None:
    assert process.thread_defaults({}) == {"OMP_NUM_THREADS": "1"}
    assert process.thread_defaults({"OMP_NUM_THREADS": "4"}) == {}
    assert process.thread_defaults({"OMP_NUM_THREADS": ""}) == {}  # set, even if empty


def test_importing_it_loads_no_numpy_so_the_default_comes_first() -> None:
    """service.py applies thread_defaults before numpy, scipy or scikit-learn load (their
    thread pools read OMP_NUM_THREADS once, when they load)."""
    code = ("import sys, fraud.serving.process; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'numpy', 'scipy', 'sklearn', 'bentoml'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_tune_gc_freezes_start_up_objects_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        timer = process.tune_gc()
        timer.cancel()
        assert gc.get_threshold() == process.GC_THRESHOLD
        assert gc.get_freeze_count() > 0
        assert timer.daemon and timer.interval == process.FREEZE_AGAIN_AFTER_S
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_or_exit_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert process.or_exit(lambda: 42, ValueError) == 42

    def bad() -> None:
        raise ValueError("limits.max_body_bytes must be >= 1 (got 0)")

    with pytest.raises(SystemExit) as stop:
        process.or_exit(bad, KeyError, ValueError)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "fraudserve: limits.max_body_bytes must be >= 1 (got 0)\n"
    with pytest.raises(ValueError):  # not one of the expected errors: not hidden
        process.or_exit(bad, KeyError)


def test_the_environments_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FRAUDSERVE_LEDGER", "FRAUDSERVE_BATCHING", "FRAUDSERVE_COALESCE",
                 "FRAUDSERVE_NOOP"):
        monkeypatch.delenv(name, raising=False)
    assert process.ledger_store() == str(PROJECT_ROOT / "data" / "ledger.sqlite")
    assert not process.batching_enabled() and process.coalescing_enabled()
    assert not process.noop_enabled()
    monkeypatch.setenv("FRAUDSERVE_BATCHING", "1")
    assert process.batching_enabled()
    monkeypatch.setenv("FRAUDSERVE_LEDGER", "postgresql://db/ledger")
    monkeypatch.setenv("FRAUDSERVE_BATCHING", "0")
    monkeypatch.setenv("FRAUDSERVE_COALESCE", "0")
    monkeypatch.setenv("FRAUDSERVE_NOOP", "1")
    assert process.ledger_store() == "postgresql://db/ledger"
    assert not process.batching_enabled() and not process.coalescing_enabled()
    assert process.noop_enabled()
