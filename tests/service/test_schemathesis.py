"""The published schema is the contract: schemathesis (all checks; examples, coverage and
fuzzing phases; an example budget) against a live service with keys configured answers with 0
failures, twice: with the pinned seed, and with a fresh random seed each run (printed, with
the command that replays it: a failure found once can be found again). Every integer and
number a request may carry states both bounds the service enforces. The summaries are
printed (`pytest -rP` shows them)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, ROOT, Server, Store, serve
from test_api_keys import call

pytestmark = [pytest.mark.service, pytest.mark.slow]

KEY = "schemathesis-all-scopes-Vq8Lr3Tz6Wm1Xp4N"  # >= 32 characters
PINNED = 1
FRESH = secrets.randbelow(2**31)


@pytest.fixture(scope="module")
def keyed(trained_store: Store, gate_report: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(trained_store, tmp_path_factory.mktemp("contract"),
               FRAUDSERVE_GATE_REPORT=str(gate_report),
               FRAUDSERVE_API_KEYS=f"score+label+admin:{KEY}",
               FRAUDSERVE_RATE_LIMIT_PER_MIN="0", FRAUDSERVE_ANON_RATE_PER_MIN="0",
               FRAUDSERVE_FAILED_AUTH_PER_MIN="0") as srv:
        yield srv


@pytest.mark.parametrize("seed", [PINNED, FRESH], ids=["pinned", "fresh"])
def test_schemathesis_finds_no_failure(keyed: Server, seed: int) -> None:
    tool = BIN / "schemathesis"
    if not tool.exists() and shutil.which("schemathesis") is None:
        pytest.fail("schemathesis is missing: `make install` installs the test extras")
    args = ["run", f"{keyed.url}/docs.json", "--checks", "all",
            "--phases", "examples,coverage,fuzzing", "--seed", str(seed),
            "--max-examples", "25", "--request-timeout", "30", "--no-color"]
    replay = (f"replay: schemathesis {' '.join(args)} -H 'Authorization: Bearer <key>' "
              f"(seed {seed})")
    print(replay)
    done = subprocess.run([str(tool), *args, "-H", f"Authorization: Bearer {KEY}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(done.stdout[-6000:])
    assert done.returncode == 0, f"{replay}\n{done.stdout[-8000:]}{done.stderr[-2000:]}"


def numbers(node: Any, doc: dict[str, Any], where: str, seen: frozenset = frozenset()
            ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every integer or number schema under `node`, with where it is ($refs followed)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from numbers(item, doc, f"{where}[{i}]", seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        target: Any = doc
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        yield from numbers(target, doc, ref, seen | {ref})
    if node.get("type") in ("integer", "number"):
        yield where, node
    for key, value in node.items():
        if key != "$ref":
            yield from numbers(value, doc, f"{where}.{key}", seen)


def test_every_integer_and_number_a_request_carries_is_bounded(keyed: Server) -> None:
    """Issue 23: num_recent_txns had no maximum while the service refused values past int64
    (a schema-valid request answered 400, found by a fresh seed)."""
    doc = call(keyed, "GET", "/docs.json")[2]
    unbounded, found = [], 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            inputs = [op.get("requestBody"), *(op.get("parameters") or ())]
            for where, schema in numbers(inputs, doc, f"{method.upper()} {path}"):
                found += 1
                low = {"minimum", "exclusiveMinimum"} & set(schema)
                high = {"maximum", "exclusiveMaximum"} & set(schema)
                if not (low and high):
                    unbounded.append(where)
    assert found >= 8, found  # the features, the share, the list limit at least
    assert unbounded == [], unbounded
