"""The bench's issue-25 parts, without a service: the plan's steps, the PostgreSQL server's
command lines, the mixed load against a stub, the rounds and the summary rows they add."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtests.bench import driver as bench
from loadtests.bench import pg
from loadtests.bench import table as bench_table
from loadtests.bench.load import mixed_loop
from loadtests.bench.phase import Phase, ServiceRun, Settings
from loadtests.bench.plan import POSTGRES, plan
from loadtests.bench.proc import TreeMemory
from loadtests.bench.report import SERVICE_COLUMNS, service_rows, summary_rows
from loadtests.bench.results import Results
from loadtests.bench.rounds import round_phases, round_record

ON = "default"


def test_plan_adds_postgres_heavy_bulk_and_rounds() -> None:
    configs, steps = plan(bench.parse_args(["--quick"]), {"FRAUDSERVE_AB_CONFIG": "x.yaml"})
    by = {s.config: s for s in steps}
    assert [s.config for s in steps] == [ON, "coalescing off", "adaptive batching",
                                         "shadow on", POSTGRES]
    assert configs["postgres"] == POSTGRES
    on, pgs = by[ON], by[POSTGRES]
    assert (on.noop, on.bulk, on.heavy, on.ledger, on.rounds) == (True, True, True, "sqlite", 3)
    assert (pgs.noop, pgs.bulk, pgs.heavy, pgs.ledger, pgs.rounds) == (
        False, True, True, "postgres", 1)
    assert pgs.env == on.env == {"FRAUDSERVE_BATCHING": "0", "FRAUDSERVE_AB_CONFIG": "x.yaml"}
    assert by["adaptive batching"].env["FRAUDSERVE_BATCHING"] == "1"
    assert not by["adaptive batching"].full and not by["coalescing off"].heavy

    configs, steps = plan(bench.parse_args(["--no-postgres", "--no-shadow", "--rounds", "1"]),
                          {})
    assert [s.config for s in steps] == [ON, "coalescing off", "adaptive batching"]
    assert "postgres" not in configs and steps[0].rounds == 1
    configs, steps = plan(bench.parse_args(["--url", "http://127.0.0.1:3000"]), {})
    assert [s.config for s in steps] == ["as running"] and steps[0].heavy
    assert steps[0].url == "http://127.0.0.1:3000"


def test_new_options_default_and_must_be_positive() -> None:
    args = bench.parse_args([])
    assert (args.batch_clients_many, args.mixed_clients, args.rounds) == (16, 40, 3)
    for bad in (["--rounds", "0"], ["--mixed-clients", "0"], ["--batch-clients-many", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_postgres_command_lines(tmp_path: Path) -> None:
    bins, data = Path("/usr/lib/postgresql/15/bin"), tmp_path / "data"
    assert pg.as_user(0) == ["runuser", "-u", "postgres", "--"] and pg.as_user(1000) == []
    init = pg.initdb_cmd(bins, data)
    assert init[:3] == [str(bins / "initdb"), "-D", str(data)]
    assert {"--auth-local=trust", "--auth-host=trust", "-U"} <= set(init)
    start = pg.start_cmd(bins, data, 54321, tmp_path, tmp_path / "pg.log")
    assert start[0] == str(bins / "pg_ctl") and start[-1] == "start" and "-w" in start
    opts = start[start.index("-o") + 1]
    assert "listen_addresses=127.0.0.1" in opts and "port=54321" in opts
    assert f"unix_socket_directories={tmp_path}" in opts
    assert pg.stop_cmd(bins, data) == [str(bins / "pg_ctl"), "-D", str(data), "-m", "fast",
                                       "-w", "-t", "30", "stop"]
    assert pg.ledger_url(54321) == "postgresql://fraudserve@127.0.0.1:54321/postgres"
    assert pg.postmaster_pid(data) is None
    data.mkdir()
    (data / "postmaster.pid").write_text("4242\n/var/x\n")
    assert pg.postmaster_pid(data) == 4242


def test_postgres_missing_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setattr(pg, "bindir", lambda: None)
    with pytest.raises(pg.PostgresFailed, match="--no-postgres"), \
            pg.postgres_ledger(tmp_path / "pg"):
        pass


class _Stub(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        code = 503 if self.path == "/predict_batch" else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_mixed_loop_counts_each_side_apart(stub: str) -> None:
    bulk, single = asyncio.run(mixed_loop((f"{stub}/predict_batch", [b"{}"], 2),
                                          (f"{stub}/predict", [b"{}"], 3), 0.5))
    assert bulk.ok == 0 and bulk.failures["HTTP 503"] > 0
    assert single.ok > 0 and not single.failures and len(single.latencies) == single.ok
    assert bulk.elapsed >= 0.5 and single.elapsed >= 0.5


def _settings() -> Settings:
    return Settings(loads=[100.0, 200.0], seconds=10, clients=50, batch_rows=500,
                    batch_clients=8, warmup=1, batch_clients_many=16, mixed_clients=40,
                    rounds=3)


def test_round_phases_and_record() -> None:
    s = _settings()
    phases = round_phases(ON, s)
    assert [(p.endpoint, p.mode, p.offered, p.clients) for p in phases] == [
        ("/predict", "closed", None, 50), ("/predict", "open", 200.0, None),
        ("/predict_batch", "closed", None, 8)]
    s.loads = [50.0, 80.0]
    assert round_phases(ON, s)[1].offered == 80.0
    phases[0].ok, phases[2].failed = 10, 2
    assert round_record(2, TreeMemory(rss_mb=1000.0, pss_mb=700.0), phases) == {
        "round": 2, "rss_mb": 1000.0, "pss_mb": 700.0, "ok": 10, "failed": 2}
    assert round_record(1, None, [])["rss_mb"] is None


def _p(config: str, endpoint: str, mode: str, **kw: object) -> Phase:
    fields: dict = {"offered": None, "clients": 50, "rows_per_request": 1, "seconds": 10.0}
    fields.update(kw)
    return Phase(config, endpoint, mode, **fields)


def sample() -> tuple[list[Phase], Settings, list[ServiceRun]]:
    s, bulk = _settings(), {"rows_per_request": 500}
    phases = []
    for config, peak, p99, rows, heavy, failed in ((ON, 400.0, 40.0, 20.0, 10.0, 0),
                                                   (POSTGRES, 300.0, 60.0, 10.0, 12.0, 3)):
        phases += [
            _p(config, "/predict", "closed", ok=4000, throughput=peak,
               server_cpu_ms_per_req=2.0 if config == ON else 3.0, api_cpu_ms_per_req=1.5,
               router_cpu_ms_per_req=0.5),
            _p(config, "/predict", "open", offered=100.0, clients=None, ok=1000, p50=5.0,
               p95=9.0, p99=p99 / 2),
            _p(config, "/predict", "open", offered=200.0, clients=None, ok=2000, p50=6.0,
               p95=10.0, p99=p99),
            _p(config, "/predict_batch", "closed", clients=8, ok=100, throughput=rows, **bulk),
            _p(config, "/predict_batch", "closed", clients=16, ok=100, throughput=heavy,
               failed=failed, **bulk),
            _p(config, "/predict_batch", "mixed", clients=8, ok=50, throughput=5.0, p99=900.0,
               **bulk),
            _p(config, "/predict", "mixed", clients=40, ok=500, throughput=50.0, p99=300.0,
               failed=failed)]
    ready = TreeMemory(rss_mb=900.0, pss_mb=600.0)
    rounds: list[dict[str, float | None]] = [
        {"round": 1, "rss_mb": 1000.0, "pss_mb": 700.0, "ok": 9000, "failed": 0},
        {"round": 2, "rss_mb": 1030.0, "pss_mb": 720.0, "ok": 3000, "failed": 0},
        {"round": 3, "rss_mb": 1040.0, "pss_mb": 722.0, "ok": 3000, "failed": 1}]
    services = [ServiceRun(ON, "http://127.0.0.1:1", True, 9.0, ready,
                           TreeMemory(rss_mb=1035.0, pss_mb=722.0), rounds),
                ServiceRun(POSTGRES, "http://127.0.0.1:2", True, 11.0, ready)]
    return phases, s, services


def test_summary_rows_for_postgres_heavy_bulk_and_rounds() -> None:
    phases, s, services = sample()
    rows = {r["figure"]: r for r in summary_rows(phases, None, s, ON, None, None, services,
                                                 postgres=POSTGRES)}
    peak = rows["/predict peak req/s, postgres (the ledger on PostgreSQL)"]
    assert (peak["measured"], peak["baseline"], peak["ratio"]) == (
        "300.0", "SQLite (default) 400.0", "0.75x")
    p200 = rows["/predict p50/p95/p99 ms at 200 req/s, postgres"]
    assert (p200["baseline"], p200["ratio"], p200["target"]) == (
        "SQLite p99 40.0", "1.50x", "p99 <= 50 ms MISSED")
    assert rows["/predict p50/p95/p99 ms at 100 req/s, postgres"]["target"] == \
        "p99 <= 50 ms ok"
    assert rows["server CPU ms per request at peak, postgres"]["ratio"] == "1.50x"
    pg_bulk = rows["/predict_batch rows/s (500 rows, 8 clients), postgres"]
    assert (pg_bulk["measured"], pg_bulk["ratio"]) == ("5,000", "0.50x")
    heavy = rows["/predict_batch rows/s (500 rows, 16 clients), default"]
    assert (heavy["measured"], heavy["baseline"], heavy["target"]) == (
        "5,000", "8 clients 10,000", "0 failed ok")
    pg_heavy = rows["/predict_batch rows/s (500 rows, 16 clients), postgres"]
    assert pg_heavy["measured"] == "6,000 (3 failed)" and pg_heavy["target"] == "0 failed MISSED"
    mixed = rows["mixed, postgres: /predict_batch rows/s (8 x 500 rows) + /predict req/s "
                 "(40 clients) at once"]
    assert mixed["measured"] == "2,500 + 50.0 (3 failed)" and "MISSED" in mixed["target"]
    assert mixed["baseline"] == "p99 ms: bulk 900.0, single 300.0"
    assert rows["mixed, default: /predict_batch rows/s (8 x 500 rows) + /predict req/s "
                "(40 clients) at once"]["target"] == "0 failed ok"
    rss = rows["serve tree RSS MB after each of 3 rounds of load, default"]
    assert (rss["measured"], rss["baseline"], rss["ratio"]) == (
        "1,000 / 1,030 / 1,040", "ready 900; between rounds +30, +10", "1.04x")
    assert rss["target"] == "0 failed in rounds 2-3 (1 failed) MISSED"
    formed = rows["rows per router call, /predict default (peak; loads)"]
    assert formed["measured"].count(";") == 2  # the mixed /predict phase is not a load
    assert rows["failed requests, postgres"]["measured"].startswith("6 (")
    bulk = rows["/predict_batch rows/s (500 rows, 8 clients)"]  # the 8-client phase
    assert bulk["measured"] == "10,000"


def test_older_runs_get_no_new_rows() -> None:
    phases, s, services = sample()
    old = [p for p in phases if p.config == ON and p.mode != "mixed" and p.clients != 16]
    rows = summary_rows(old, None, s, ON, None, None, [services[1]], postgres=POSTGRES)
    text = " ".join(r["figure"] for r in rows)
    for new in ("postgres (the ledger", "16 clients", "mixed", "rounds of load"):
        assert new not in text


def test_results_with_the_new_parts_round_trip(tmp_path: Path) -> None:
    phases, s, services = sample()
    configs = {"on": ON, "off": None, "shadow": None, "postgres": POSTGRES}
    results = Results(settings=s, configs=configs, phases=phases, raw_model=None,
                      services=services, notes=[], command="python -m loadtests.bench",
                      git={}, machine={},
                      summary=summary_rows(phases, None, s, ON, None, None, services,
                                           postgres=POSTGRES))
    path = tmp_path / "bench.json"
    results.write(path)
    assert bench_table.main([str(path), "--check"]) == 0
    loaded = bench_table.load(path)
    assert loaded.services[0].rounds[2]["rss_mb"] == 1040.0
    assert loaded.settings.batch_clients_many == 16 and loaded.settings.rounds == 3
    row = service_rows(loaded.services)[0]
    assert "RSS MB after rounds" in SERVICE_COLUMNS
    assert row["RSS MB after rounds"] == "1,000 / 1,030 / 1,040"
    assert service_rows(loaded.services)[1]["RSS MB after rounds"] == "-"


def test_a_service_that_does_not_start_is_skipped_unless_it_is_the_default() -> None:
    from loadtests.bench.driver import run_steps
    from loadtests.bench.pg import PostgresFailed
    from loadtests.bench.plan import Step
    from loadtests.run import ServiceFailed

    def bench(step: Step):
        if step.config == "shadow on":
            raise ServiceFailed("exited with 1 before ready")
        if step.config == "postgres":
            raise PostgresFailed("PostgreSQL is not installed")
        return [step.config], step.config

    logged: list[str] = []
    notes: list[str] = []
    steps = [Step(c) for c in ("default", "shadow on", "coalescing off", "postgres")]
    phases, services = run_steps(steps, "default", bench, logged.append, notes)
    assert phases == services == ["default", "coalescing off"]
    assert notes == ["shadow on: not benched, it did not start: exited with 1 before ready",
                     "postgres: not benched: PostgreSQL is not installed"]
    with pytest.raises(ServiceFailed):
        run_steps([Step("shadow on")], "shadow on", bench, logged.append, [])
