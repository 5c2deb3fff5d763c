"""The bench's alternating pairs (loadtests/bench/report_pairs.py): ratios of figures taken
seconds apart, the targets read on their median, variants through their own pairs."""

from __future__ import annotations

import pytest

from loadtests.bench import driver
from loadtests.bench.baseline import RawModel
from loadtests.bench.phase import PAIRED, PAIRED_OPEN, RAW, Phase, Settings
from loadtests.bench.plan import plan
from loadtests.bench.report import summary_rows
from loadtests.bench.report_pairs import pairs_of, spread

ON, ADAPTIVE, SHADOW = "default", "adaptive batching", "shadow on"
S = Settings(loads=[100.0, 200.0], seconds=10, clients=50, batch_rows=500, batch_clients=4,
             warmup=1, pairs=3)


def _closed(config: str, endpoint: str, rps: float, cpu: float, mode: str = "closed") -> Phase:
    return Phase(config, endpoint, mode, None, 50, 1, 8.0, ok=int(rps * 8), throughput=rps,
                 server_cpu_ms_per_req=cpu)


def _pairs(config: str, figures: list[tuple[float, float, float, float]]) -> list[Phase]:
    """(predict req/s, predict CPU, noop req/s, noop CPU) per pair, in run order."""
    out = []
    for p_rps, p_cpu, n_rps, n_cpu in figures:
        out += [_closed(config, "/predict", p_rps, p_cpu, PAIRED),
                _closed(config, "/noop", n_rps, n_cpu, PAIRED)]
    return out


def _single(config: str, rps: float, cpu: float, noop_rps: float, noop_cpu: float
            ) -> list[Phase]:
    return [_closed(config, "/predict", rps, cpu), _closed(config, "/noop", noop_rps, noop_cpu)]


def _rows(phases: list[Phase]) -> dict[str, dict[str, str]]:
    return {r["figure"]: r for r in summary_rows(phases, None, S, ON, ADAPTIVE, SHADOW)}


def test_each_pair_compares_its_own_predict_and_noop_in_run_order() -> None:
    # The machine slows down between pairs: each ratio still compares neighbours.
    pairs = pairs_of(_pairs(ON, [(900, 2.0, 1000, 2.0), (450, 4.4, 500, 4.0),
                                 (800, 2.2, 1000, 2.0)]), ON)
    assert pairs is not None
    assert pairs.speed == pytest.approx([0.9, 0.9, 0.8])
    assert pairs.cpu == pytest.approx([1.0, 1.1, 1.1])
    assert pairs.speed_median == pytest.approx(0.9) and pairs.cpu_median == pytest.approx(1.1)
    assert spread(pairs.speed) == "0.90x (0.80-0.90)"
    assert pairs_of(_pairs(ON, []), ON) is None
    assert pairs_of(_pairs(ON, [(900, 2.0, 0, 2.0)]), ON) is None  # /noop served nothing


def test_the_noop_targets_are_read_on_the_pairs_median_and_the_single_phases_keep_no_verdict(
) -> None:
    # The single phases a minute apart say 0.60x (the machine slowed in between); the pairs,
    # seconds apart, say 0.95x, 0.92x, 0.85x.
    phases = (_single(ON, 600, 2.4, 1000, 2.0)
              + _pairs(ON, [(950, 2.1, 1000, 2.0), (920, 2.2, 1000, 2.0), (850, 2.5, 1000, 2.0)]))
    rows = _rows(phases)
    single = rows["/predict peak req/s (50 clients, closed loop), default"]
    assert single["ratio"] == "0.60x"
    assert single["target"] == ">= 0.9x /noop (read on the pairs)"  # no ok, no MISSED
    speed = rows["/predict peak / /noop peak, median of 3 alternating pairs, 8 s each, default"]
    assert (speed["measured"], speed["ratio"], speed["target"]) == (
        "0.92x (0.85-0.95)", "0.92x", ">= 0.9x ok")
    cpu = rows["server CPU per request / /noop's, median of 3 alternating pairs, 8 s each, "
               "default"]
    assert (cpu["measured"], cpu["target"]) == ("1.10x (1.05-1.25)", "<= 1.15x ok")
    slower = _rows(_single(ON, 600, 2.4, 1000, 2.0)
                   + _pairs(ON, [(850, 2.4, 1000, 2.0)] * 3))
    assert slower["/predict peak / /noop peak, median of 3 alternating pairs, 8 s each, "
                  "default"]["target"] == ">= 0.9x MISSED"
    assert slower["server CPU per request / /noop's, median of 3 alternating pairs, 8 s each, "
                  "default"]["target"] == "<= 1.15x MISSED"


def test_a_run_without_pairs_judges_its_single_phases_as_before() -> None:
    rows = _rows(_single(ON, 850, 2.4, 1000, 2.0))
    assert rows["/predict peak req/s (50 clients, closed loop), default"]["target"] == \
        ">= 0.9x /noop MISSED"
    assert not any("alternating pairs" in figure for figure in rows)


def test_variants_are_compared_through_their_own_pairs() -> None:
    base = _pairs(ON, [(900, 2.2, 1000, 2.0)] * 3)
    # adaptive batching ran on a machine half as fast: its own /noop says so
    adaptive = _pairs(ADAPTIVE, [(430, 4.6, 500, 4.0)] * 3)
    shadow = _pairs(SHADOW, [(820, 2.6, 1000, 2.0)] * 3)
    rows = _rows(base + adaptive + shadow)
    a = rows["/predict peak / /noop peak, median of 3 alternating pairs, 8 s each, "
             "adaptive batching"]
    assert (a["measured"], a["baseline"], a["ratio"]) == ("0.86x (0.86-0.86)", "default 0.90x",
                                                          "0.96x")
    assert a["target"] == "default >= adaptive batching: default/adaptive batching 1.05x ok"
    h = rows["/predict peak / /noop peak, median of 3 alternating pairs, 8 s each, shadow on"]
    assert (h["ratio"], h["target"]) == ("0.91x", "within 10% of shadow off ok")
    slow_shadow = _rows(base + _pairs(SHADOW, [(700, 3.0, 1000, 2.0)] * 3))
    assert slow_shadow["/predict peak / /noop peak, median of 3 alternating pairs, 8 s each, "
                       "shadow on"]["target"] == "within 10% of shadow off MISSED"
    faster = _rows(base + _pairs(ADAPTIVE, [(950, 2.1, 1000, 2.0)] * 3))
    assert faster["/predict peak / /noop peak, median of 3 alternating pairs, 8 s each, "
                  "adaptive batching"]["target"].endswith("MISSED")


def test_the_plan_pairs_the_services_compared_with_noop_and_the_flags_bound_them() -> None:
    args = driver.parse_args([])
    assert (args.pairs, args.pair_seconds) == (6, 5.0)
    assert driver.parse_args(["--quick"]).pair_seconds == 2.0
    _, steps = plan(args, {})
    assert {s.config for s in steps if s.paired} == {ON, ADAPTIVE, SHADOW}
    for bad in (["--pairs", "-1"], ["--pair-seconds", "0"]):
        with pytest.raises(SystemExit):
            driver.parse_args(bad)


def _tails(config: str, p99s: list[float], failed: int = 0) -> list[Phase]:
    return [Phase(config, "/predict", PAIRED_OPEN, 200.0, None, 1, 8.0, ok=1600, failed=failed,
                  throughput=200.0, p99=ms) for ms in p99s]


def test_the_p99_at_the_top_load_compares_the_medians_of_the_open_loops_between_pairs(
) -> None:
    base = _pairs(ON, [(900, 2.2, 1000, 2.0)] * 3) + _tails(ON, [21.0, 40.0, 25.0])
    adaptive = _pairs(ADAPTIVE, [(850, 2.4, 1000, 2.0)] * 3)
    figure = ("/predict p99 ms at 200 req/s, median of 3 open loops between pairs (8 s each), "
              "default")
    rows = _rows(base + adaptive + _tails(ADAPTIVE, [24.0, 30.0, 22.0]))
    assert (rows[figure]["measured"], rows[figure]["baseline"], rows[figure]["target"]) == (
        "25.0 (21.0-40.0)", "adaptive batching 24.0 (22.0-30.0)",
        "default <= adaptive batching MISSED")
    rows = _rows(base + adaptive + _tails(ADAPTIVE, [26.0, 30.0, 22.0]))
    assert rows[figure]["target"] == "default <= adaptive batching ok"
    assert figure not in _rows(base + adaptive)  # the variant ran no open loops: no verdict
    # the single phases ignore the open loops between pairs
    assert not any("paired-open" in r["figure"] for r in _rows(base + adaptive).values())


def _bulk_pairs(config: str, figures: list[tuple[float, float]]) -> list[Phase]:
    """(/predict_batch rows/s, in-process rows/s) per pair, 500-row requests."""
    out = []
    for bulk, raw in figures:
        out += [Phase(config, "/predict_batch", PAIRED, None, 4, 500, 5.0, ok=int(bulk / 100),
                      throughput=bulk / 500),
                Phase(config, RAW, PAIRED, None, 1, 500, 5.0, throughput=raw / 500)]
    return out


def test_the_bulk_target_is_read_on_bulk_and_in_process_pairs() -> None:
    single = Phase(ON, "/predict_batch", "closed", None, 4, 500, 10.0, ok=400,
                   throughput=40.0)  # 20,000 rows/s against a raw 40,000 at the run's ends
    raw = RawModel(rows_per_s=40_000, rows=500, one_row_ms={})
    figure = ("/predict_batch rows/s / raw predict_proba rows/s, median of 3 alternating "
              "pairs, 5 s each (4 clients), default")
    phases = [single, *_bulk_pairs(ON, [(21_000, 30_000), (18_000, 31_000), (20_000, 40_000)])]
    rows = {r["figure"]: r for r in summary_rows(phases, raw, S, ON, ADAPTIVE, SHADOW)}
    assert rows["/predict_batch rows/s (500 rows, 4 clients)"]["target"] == \
        ">= 0.6x raw (read on the pairs)"
    assert (rows[figure]["measured"], rows[figure]["ratio"], rows[figure]["target"]) == (
        "0.58x (0.50-0.70)", "0.58x", ">= 0.6x MISSED")
    assert rows["failed requests, default"]["baseline"] == "of 990 in 4 phases"
    better = [single, *_bulk_pairs(ON, [(21_000, 30_000), (19_000, 31_000)])]
    rows = {r["figure"]: r for r in summary_rows(better, raw, S, ON, ADAPTIVE, SHADOW)}
    assert rows[figure.replace("3 alternating", "2 alternating")]["target"] == ">= 0.6x ok"
    alone = {r["figure"]: r for r in summary_rows([single], raw, S, ON, ADAPTIVE, SHADOW)}
    assert alone["/predict_batch rows/s (500 rows, 4 clients)"]["target"] == \
        ">= 0.6x raw MISSED"  # no pairs: judged as before
