"""Alert rules read from configs/alerts.yml, scoped to the new pods (the watch's rule checks).

NoPredictions is not among the defaults: no decisions is no data, and no data is never the
release's failure (the watch's traffic check says "inconclusive" instead)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ALERTS = Path(__file__).resolve().parents[2] / "configs" / "alerts.yml"
DEFAULT_RULES = ("ChampionErrorRateHigh", "ChallengerErrorRateHigh",
                 "FraudPredictionLatencyHigh", "ChallengerRolledBack")
# A fraud_* metric name, and its {...} matchers when it has them.
_SELECTOR = re.compile(r"\b(fraud_[A-Za-z0-9_:]*)(\{[^}]*\})?")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Check:
    """One alert rule as the watch evaluates it."""

    name: str
    expr: str       # scoped PromQL: any returned series means "the condition holds now"
    hold_s: float   # how long it must hold, poll after poll, to count as a breach


def seconds(duration: str | None) -> float:
    """A Prometheus duration ('2m', '1h30m', '500ms') in seconds; None or '' is 0."""
    if not duration:
        return 0.0
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def scope(expr: str, matcher: str | None) -> str:
    """Add `matcher` (e.g. 'namespace="fraudserve"') to every fraud_* selector of `expr`."""
    if not matcher:
        return expr

    def add(m: re.Match[str]) -> str:
        inner = (m.group(2) or "{}")[1:-1].strip()
        return f"{m.group(1)}{{{matcher}{', ' + inner if inner else ''}}}"

    return _SELECTOR.sub(add, expr)


def load(names: tuple[str, ...] = DEFAULT_RULES, *, matcher: str | None = None,
         hold_s: float | None = None, path: Path = ALERTS) -> list[Check]:
    """The named alert rules, one Check per rule (a name may have several rules)."""
    rules = [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]
             if "alert" in r]
    missing = set(names) - {r["alert"] for r in rules}
    if missing:
        raise ValueError(f"no such alert in {path.name}: {', '.join(sorted(missing))}")
    return [Check(name=r["alert"], expr=scope(r["expr"].strip(), matcher),
                  hold_s=seconds(r.get("for")) if hold_s is None else hold_s)
            for r in rules if r["alert"] in names]
