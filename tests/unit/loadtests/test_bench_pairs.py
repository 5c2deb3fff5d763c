"""`python -m loadtests.bench.pairs`: the pairs' ratios per linger setting, and its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fraud.config import ABConfig
from loadtests.bench.pairs import linger_config, table


def pair(ms: float, predict: float, noop: float, cpu: float, failed: int = 0) -> dict[str, Any]:
    return {"open_load": None, "open_p99_ms": None, "linger_ms": ms, "pair": 0,
            "predict_req_s": predict, "noop_req_s": noop,
            "predict_cpu_ms": cpu, "noop_cpu_ms": 2.0, "rows_per_call": 10.0,
            "failed": failed, "others_cpu_pct": 0.0}


def test_the_table_gives_each_settings_median_and_range_of_pair_ratios() -> None:
    rows = [pair(0, 800, 1000, 2.4), pair(0, 900, 1000, 2.2), pair(0, 450, 900, 3.0, 2)]
    rows += [pair(8, 900, 1000, 2.0)]
    lines = table(rows).splitlines()
    assert lines[2] == ("| 0 | 3 | 0.80x (0.50-0.90) | 1.20x (1.10-1.50) | 800.0 | 10.0 | - | 2 |")
    assert lines[3] == "| 8 | 1 | 0.90x (0.90-0.90) | 1.00x (1.00-1.00) | 900.0 | 10.0 | - | 0 |"
    rows[3].update(open_load=200.0, open_p99_ms=31.0)
    assert table(rows).splitlines()[3].endswith("| 31.0 (31.0-31.0) at 200/s | 0 |")


def test_the_config_is_the_shipped_one_with_the_linger_set(tmp_path: Path) -> None:
    data = yaml.safe_load(linger_config(tmp_path, 3.0).read_text())
    cfg = ABConfig.model_validate(data)
    assert cfg.coalesce.linger_ms == 3.0 and cfg.coalesce.linger_fill == 64
    assert cfg.guardrails.enabled is False


def test_settings_alternate_within_each_round_and_the_rows_are_written(tmp_path: Path) -> None:
    import json

    from loadtests.bench.alternating import alternate

    seen: list[tuple[str, int]] = []

    def measure(setting: str, out: Path, r: int) -> list[dict[str, Any]]:
        seen.append((setting, r))
        assert out.is_dir()
        return [{"setting": setting}]

    rows = alternate("pairs", ["--rounds", "2"], 2, ["a", "b"], measure,
                     lambda rs: f"{len(rs)} rows", tmp_path / "x.json", reports=tmp_path)
    assert seen == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert [r["round"] for r in rows] == [0, 0, 1, 1]
    written = json.loads((tmp_path / "x.json").read_text())
    assert written["command"] == "python -m loadtests.bench.pairs --rounds 2"
    assert written["table"] == "4 rows" and written["rows"] == rows


def test_any_coalesce_key_can_be_varied_and_the_table_names_it(tmp_path: Path) -> None:
    cfg = ABConfig.model_validate(yaml.safe_load(
        linger_config(tmp_path, 16, "linger_fill").read_text()))
    assert cfg.coalesce.linger_fill == 16 and cfg.coalesce.linger_ms == 8.0
    rows = [{**pair(0, 800, 1000, 2.4), "setting": "linger_fill", "linger_fill": 16}]
    assert table(rows).splitlines()[0].startswith("| linger_fill | pairs |")
    assert table(rows).splitlines()[2].startswith("| 16 | 1 | 0.80x")


def test_values_may_be_zero_but_not_negative() -> None:
    import argparse

    import pytest

    from loadtests.bench.pairs import parse_values

    assert parse_values("0,2") == [0.0, 2.0]
    for bad in ("-1", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_values(bad)
