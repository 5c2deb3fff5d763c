"""The experiment as one self-contained HTML page (`GET /report`), from the /ab-stats body.

`render` is a pure function of that body, the experiment's stored looks (its history:
fraud/report/history.py, fraud/store/history.py) and the /drift report: no I/O, no clock,
no JavaScript, no external CSS or fonts; the charts are SVG drawn here (fraud/report/svg.py,
and over time fraud/report/charts.py via fraud/report/over_time.py). Every string is
HTML-escaped, and a missing block or value (an early experiment, no look yet, a rollback, no
shadow mode, no drift reference) shows as "no data yet" or an em dash rather than failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fraud.report import over_time as hist
from fraud.report.charts import CHART_CSS
from fraud.report.history import Series, series
from fraud.report.svg import Row, bar_chart, esc, finite, interval_chart, num, pct, span
from fraud.schema import ARMS, ROLES

ARM_METRICS = (("flag_rate", "flag rate"), ("precision", "precision"), ("recall", "recall"),
               ("error_rate", "error rate"))
PAIRED_METRICS = (("recall", "recall"), ("precision", "precision"),
                  ("amount_recall", "amount recall"))
VERDICT_TEXT = {"collecting": "collecting data", "no_difference": "no difference",
                "challenger_better": "challenger better", "challenger_worse": "challenger worse"}
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f5f6f8}main{max-width:840px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:0 0 6px}h3{font-size:15px;
margin:12px 0 4px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px;
margin:14px 0}.muted{color:#5b6577}.badge{display:inline-block;padding:2px 8px;
border-radius:10px;margin:2px 6px 2px 0;background:#e7eaf0;font-weight:600}
.good{background:#d6f2dd;color:#13612c}.bad{background:#fbd9d7;color:#8f1d16}
.warn{background:#fdeecb;color:#7a5200}svg.chart{max-width:100%;height:auto;display:block}
.label,.val,.tick{font-size:12px;fill:#1d2330}.tick{fill:#5b6577}.grid{stroke:#eceef2}
.zero{stroke:#1d2330;stroke-dasharray:4 3}.band{fill:#e9f3ff}.ci{stroke-width:4;
stroke-linecap:round}.ci.a,.bar.a{stroke:#3d6fb6;fill:#3d6fb6}.ci.b,.bar.b{stroke:#d9822b;
fill:#d9822b}.pt{stroke:#fff;stroke-width:1.5}.pt.a{fill:#234b85}.pt.b{fill:#a85a12}
.ci.d{stroke:#6b4fa3}.pt.d{fill:#4a3378}.bar.fa{fill:#234b85}.bar.fb{fill:#a85a12}
.bar.la{fill:#a9c1e4}.bar.lb{fill:#f1c597}ul{margin:4px 0 0 18px;padding:0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0 0}
dt{color:#5b6577}dd{margin:0}
"""


def _get(d: Any, *path: str) -> Any:
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def _badge(text: str, kind: str = "") -> str:
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


def _verdict_badge(verdict: Any) -> str:
    kind = {"challenger_better": "good", "challenger_worse": "bad",
            "no_difference": ""}.get(str(verdict), "warn")
    return _badge(VERDICT_TEXT.get(str(verdict), str(verdict)), kind)


def _pairs(items: list[tuple[str, Any]]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def _interval_text(m: Any, fmt: Any = pct) -> str:
    if finite(_get(m, "value")) is None:
        return "no data yet"
    ci = f" [{fmt(m.get('ci_low'))}, {fmt(m.get('ci_high'))}]"
    users = f", {m['users']} users" if isinstance(m.get("users"), int) else ""
    return f"{fmt(m.get('value'))}{ci}{users}"


def header(body: dict[str, Any]) -> str:
    exp = body.get("experiment") or {}
    rolled = bool(exp.get("rolled_back"))
    state = _badge("rolled back: champion serves everyone", "bad") if rolled else \
        _badge("running", "good")
    # The public view of /ab-stats (fraud/api/views.py) drops the salt and the thresholds.
    salt = f"salt {esc(exp['salt'])}, " if "salt" in exp else ""
    share = (f"challenger share {pct(exp.get('effective_share'))} (configured "
             f"{pct(exp.get('configured_share'))})")
    return (f"<h1>Experiment {esc(exp.get('id', '?'))}: {esc(exp.get('model_a', '?'))} vs "
            f"{esc(exp.get('model_b', '?'))}</h1><p class=\"muted\">started "
            f"{esc(exp.get('started_at', '?'))}, {salt}period {esc(exp.get('period', '?'))}"
            f"</p><p>{state}"
            f"{_verdict_badge(_get(body, 'primary', 'verdict'))}"
            f"{_badge(share)}"
            "</p>")


def volume(body: dict[str, Any], extra: str = "") -> str:
    rows = []
    for arm, role in ROLES.items():
        a = body.get(arm) or {}
        total, flagged = finite(a.get("total_predictions")) or 0.0, finite(a.get("fraud_count"))
        flagged = flagged or 0.0
        segments = [(flagged, "f" + arm[-1]), (total - flagged, "l" + arm[-1])]
        rows.append((f"{arm} ({role})", segments,
                     f"{total:,.0f} decisions, {pct(a.get('fraud_rate'))} flagged"))
    chart = bar_chart("Decisions per arm: flagged (dark) and legit (light)", rows)
    facts = []
    for arm in ARMS:
        a = body.get(arm) or {}
        facts.append((f"{arm} ({a.get('model_tag', '?')})",
                      f"{a.get('users', '?')} users, {a.get('labelled', '?')} "
                      f"labelled (tp {a.get('tp', '-')}, fp {a.get('fp', '-')}, fn "
                      f"{a.get('fn', '-')}, tn {a.get('tn', '-')}), F1 {num(a.get('f1'))}, "
                      f"{a.get('errors', 0)} errors, latency p50/p95 "
                      f"{num(a.get('latency_p50_ms'), 1)}/{num(a.get('latency_p95_ms'), 1)} ms"
                      + (f", threshold {num(a['threshold'])}" if "threshold" in a else "")))
    return ("<section><h2>Volume and flag rate</h2>" + chart + _pairs(facts) + extra
            + "</section>")


def arm_metrics(body: dict[str, Any], extra: str = "") -> str:
    rows = []
    for key, name in ARM_METRICS:
        for arm in ARMS:
            m = _get(body, arm, key) or {}
            rows.append(Row(f"{name}, {arm}", m.get("value"), m.get("ci_low"), m.get("ci_high"),
                            _interval_text(m), arm[-1]))
    return ("<section><h2>Labelled metrics by arm</h2><p class=\"muted\">Per-user ratio "
            "metrics; bars are confidence intervals (delta method, users as the unit).</p>"
            + interval_chart("Metrics by arm with intervals", rows, 0.0, 1.0, fmt="pct")
            + extra + "</section>")


def primary(body: dict[str, Any], extra: str = "") -> str:
    p = body.get("primary") or {}
    margin = finite(p.get("equivalence_margin")) or 0.0
    this = p.get("this_look") or {}
    lo, hi = span(p.get("ci_low"), p.get("ci_high"), this.get("ci_low"), this.get("ci_high"),
                  p.get("estimate"), floor=max(2 * margin, 0.05))
    rows = [Row("confidence sequence", p.get("estimate"), p.get("ci_low"), p.get("ci_high"),
                f"{num(p.get('estimate'))} [{num(p.get('ci_low'))}, {num(p.get('ci_high'))}]",
                "d"),
            Row("this look", p.get("estimate"), this.get("ci_low"), this.get("ci_high"),
                f"[{num(this.get('ci_low'))}, {num(this.get('ci_high'))}]", "d")]
    chart = interval_chart("Primary test: challenger minus champion", rows, lo, hi, zero=0.0,
                           band=(-margin, margin) if margin else None)
    facts = [("metric", f"{p.get('metric', '?')} (model_b \u2212 model_a)"),
             ("always-valid p", f"{num(p.get('p_value'), 4)} (alpha {num(p.get('alpha'))})"),
             ("verdict", f"{VERDICT_TEXT.get(str(p.get('verdict')), p.get('verdict'))}"
                         f"{' (final)' if p.get('verdict_final') else ''}"),
             ("users with trials", f"A {p.get('users_a', '-')}, B {p.get('users_b', '-')} "
                                   f"(minimum {p.get('min_users_per_arm', '-')} per arm)"),
             ("trials", f"A {p.get('trials_a', '-')}, B {p.get('trials_b', '-')} (minimum "
                        f"{p.get('min_labelled_per_arm', '-')} per arm)"),
             ("equivalence margin", f"\u00b1{num(margin)} (shaded)")]
    return ("<section><h2>Primary test</h2>" + _verdict_badge(p.get("verdict")) + chart
            + _pairs(facts) + f"<p class=\"muted\">{esc(p.get('method', ''))}</p>" + extra
            + "</section>")


def sample_ratio(body: dict[str, Any]) -> str:
    srm = body.get("sample_ratio")
    if not srm:
        return ("<section><h2>Sample ratio</h2><p>Not judged in this period: the challenger's "
                "share is 0 or 1 (for example while rolled back).</p></section>")
    rows = [Row("expected share of B", srm.get("expected_share_b"),
                text=pct(srm.get("expected_share_b")), css="a"),
            Row("observed share of B", srm.get("observed_share_b"),
                text=f"{pct(srm.get('observed_share_b'))} ({srm.get('users_a', '-')} / "
                     f"{srm.get('users_b', '-')} users)", css="b")]
    flag = _badge("mismatch", "bad") if srm.get("mismatch") else _badge("consistent", "good")
    return ("<section><h2>Sample ratio</h2>" + flag
            + interval_chart("Users per arm against the share", rows, 0.0, 1.0, fmt="pct")
            + _pairs([("anytime p", f"{num(srm.get('p_value'), 4)} (alpha "
                                    f"{num(srm.get('alpha'), 4)})"),
                      ("unit", srm.get("unit", "users"))]) + "</section>")


def rollback(body: dict[str, Any], extra: str = "") -> str:
    exp = body.get("experiment") or {}
    breaches = exp.get("guardrail_breaches") or []
    items = "".join(f"<li>{esc(b)}</li>" for b in breaches) or "<li>none now</li>"
    facts = [("rolled back", "yes" if exp.get("rolled_back") else "no")]
    if exp.get("rolled_back"):
        facts += [("since", exp.get("rolled_back_at") or "?"),
                  ("reason", exp.get("rollback_reason") or "?")]
    facts.append(("forced resume", "yes" if exp.get("worse_overridden") else "no"))
    return ("<section><h2>Rollback and guardrails</h2>" + _pairs(facts)
            + f"<p>Guardrails breached now:</p><ul>{items}</ul>" + extra + "</section>")


def paired_block(body: dict[str, Any], extra: str = "") -> str:
    pb = body.get("paired")
    if not isinstance(pb, dict):
        return ""
    rows, diffs = [], []
    for key, name in PAIRED_METRICS:
        for arm in ARMS:
            m = _get(pb, key, arm) or {}
            rows.append(Row(f"{name}, {arm}", m.get("value"), m.get("ci_low"), m.get("ci_high"),
                            _interval_text(m), arm[-1]))
        d = _get(pb, key, "difference") or {}
        diffs.append(Row(f"{name}, B \u2212 A", d.get("value"), d.get("ci_low"),
                         d.get("ci_high"), _interval_text(d, num), "d"))
    test = pb.get("test") or {}
    diffs.append(Row(f"test CS ({pb.get('metric', '?')})", test.get("estimate"),
                     test.get("ci_low"), test.get("ci_high"),
                     f"{num(test.get('estimate'))} [{num(test.get('ci_low'))}, "
                     f"{num(test.get('ci_high'))}]", "d"))
    lo, hi = span(*[v for r in diffs for v in (r.value, r.low, r.high)], floor=0.05)
    loss = [Row(f"{arm}", (m := _get(pb, "expected_loss_per_1000", arm) or {}).get("value"),
                m.get("ci_low"), m.get("ci_high"), _interval_text(m, num), arm[-1])
            for arm in ARMS]
    top = max([v for r in loss for v in map(finite, (r.value, r.high)) if v is not None] + [1.0])
    dis, same = pb.get("disagreement_rate") or {}, pb.get("same_flag_rate") or {}
    costs = pb.get("costs") or {}
    facts = [("transactions", f"{pb.get('transactions', '-')} from {pb.get('users', '-')} users, "
                              f"{pb.get('labelled', '-')} labelled, {pb.get('frauds', '-')} "
                              "frauds"),
             ("disagreement rate", _interval_text(dis)),
             ("at the champion's flag rate", f"recall A {pct(same.get('recall_a'))}, B "
                                             f"{pct(same.get('recall_b'))} (flag rate "
                                             f"{pct(same.get('flag_rate'))})"),
             ("paired test", f"p {num(test.get('p_value'), 4)} (alpha {num(pb.get('alpha'))})"),
             ("costs", f"decline {num(costs.get('decline_fixed'), 2)} + "
                       f"{pct(costs.get('decline_share'))} of the amount; a missed fraud its "
                       "amount")]
    return ("<section><h2>Shadow: both models on the same transactions</h2>"
            + _verdict_badge(pb.get("verdict"))
            + interval_chart("Paired metrics per model", rows, 0.0, 1.0, fmt="pct")
            + interval_chart("Paired differences, B minus A", diffs, lo, hi, zero=0.0)
            + "<p class=\"muted\">Expected loss per 1,000 labelled transactions</p>"
            + interval_chart("Expected loss per 1,000", loss, 0.0, top * 1.1)
            + _pairs(facts) + f"<p class=\"muted\">{esc(pb.get('method', ''))}</p>" + extra
            + "</section>")


def labels_block(body: dict[str, Any]) -> str:
    """Label rates by decision (selective labels) and today's exploration."""
    lb, ex = body.get("labels") or {}, body.get("exploration") or {}
    facts = [(f"{arm}: labelled", f"flagged {_interval_text(_get(r, 'by_decision', 'flagged'))}"
              f"; approved {_interval_text(_get(r, 'by_decision', 'approved'))}")
             for arm, r in (lb.get("per_arm") or {}).items()]
    if lb.get("reason"):
        facts.append(("label rates", lb["reason"]))
    elif lb:
        facts.append(("label bias", "yes: verdicts on labelled rows say label_bias"
                      if lb.get("label_bias") else "no"))
    today = ex.get("today") or {}
    if not ex.get("enabled"):
        facts.append(("exploration", "off"))
    elif "rate" not in ex:  # the public view (fraud/api/views.py)
        facts.append(("exploration", "on (its settings and spending: admin keys only)"))
    else:
        facts += [("exploration", f"rate {pct(ex.get('rate'))} of flagged transactions up to "
                                  f"{num(ex.get('max_amount'), 2)}"),
                  ("explored today", f"{today.get('explored', 0)} decisions, "
                                     f"{num(today.get('explored_amount'), 2)}"),
                  ("budget left", f"{num(today.get('budget_left'), 2)} of "
                                  f"{num(ex.get('daily_budget'), 2)}")]
    return "<section><h2>Labels and exploration</h2>" + _pairs(facts) + "</section>"


def render(ab_stats_body: dict[str, Any], looks: Sequence[dict[str, Any]] = (),
           drift: dict[str, Any] | None = None) -> str:
    """The whole page: one /ab-stats body, the experiment's looks (any order; ledger
    `looks(experiment_id)`) and the drift report ({arm: ArmDrift dict} or the /drift body;
    None: no model carries a drift reference; {"error": why}: it could not be had)."""
    b = ab_stats_body
    s: Series = series(list(looks))
    exp_id = esc(_get(b, "experiment", "id") or "?")
    parts = [header(b), volume(b, hist.volume_history(s)),
             arm_metrics(b, hist.metrics_history(s)), primary(b, hist.primary_history(s)),
             sample_ratio(b), rollback(b, hist.events_list(s)),
             paired_block(b, hist.paired_history(s)), labels_block(b),
             hist.drift_section(drift)]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<link rel=\"icon\" href=\"data:,\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>fraudserve experiment {exp_id}</title><style>{CSS}{CHART_CSS}</style></head>"
            "<body><main>" + "".join(parts) + "<p class=\"muted\">The same numbers as JSON: "
            "<a href=\"/ab-stats\">/ab-stats</a>.</p></main></body></html>")
