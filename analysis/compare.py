"""`execbench compare RUN_A RUN_B`: the same statistics for two runs, side by side.

For each analysed phase both runs have and each flow: p50/p95/p99 with order-statistic CIs in A
and in B, the Hodges-Lehmann shift B - A with its 95% CI, Mann-Whitney p, and one answer per
judged quantile (p50 unless `--q` says more) on the ratio r = Q(B) / Q(A) with its intervals
(stats.quantile_ratio) against the margin m (`--margin`, default 5%):

- worse: the 95% interval lies above 1 + m (B shown slower than A by more than the margin);
- better: the 95% interval lies below 1 - m;
- equivalent: the 90% interval lies inside (1 - m, 1 + m) (two one-sided tests at 5%);
- inconclusive: none of these, or fewer than the minimum records per group.

Worse is a FAIL (exit 1), inconclusive INCONCLUSIVE (exit 3), better and equivalent PASS (exit 0).
Two identical runs are "worse" only when an interval misses: at most 2.5% per answer
(benchmarks/coverage.py measures it).
"""

from __future__ import annotations

import html
from datetime import UTC
from pathlib import Path

import numpy as np
import orjson

from . import stats
from .core import iso

ANSWERS = ("better", "equivalent", "worse", "inconclusive")


def judge(xs_sorted, ys_sorted, *, q: float, margin_pct: float, min_n: int) -> dict:
    """One answer for Q_q(B) / Q_q(A) against 1 +- margin (see the module docstring): the
    equivalence test of the reports (stats.ratio_equivalence), its "different" told apart by
    side."""
    m = margin_pct / 100
    n = min(len(xs_sorted), len(ys_sorted))
    eq = stats.ratio_equivalence(xs_sorted, ys_sorted, margin_pct=margin_pct, q=q)
    out = {"q": q, "n": n, "margin_pct": margin_pct, "ratio": None, "ci95": [None, None],
           "ci90": [None, None]}
    if eq is None:
        return {**out, "answer": "inconclusive", "why": "no ratio (no records or a quantile of 0)"}
    out.update(ratio=eq["ratio"], ci95=eq["ci95"], ci90=eq["ci90"])
    if n < min_n:
        return {**out, "answer": "inconclusive",
                "why": f"n={n} is below the minimum of {min_n} per group"}
    if eq["verdict"] == "different":
        lo95 = eq["ci95"][0]
        return {**out, "answer": "worse" if lo95 is not None and lo95 > 1 + m else "better",
                "why": None}
    if eq["verdict"] == "equivalent":
        return {**out, "answer": "equivalent", "why": None}
    missing = None in eq["ci90"]
    return {**out, "answer": "inconclusive",
            "why": ("too few records for a two-sided interval of that quantile" if missing else
                    "the ratio's interval reaches past the margin: more data would decide it")}


def _ratio_text(j: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:.3f}"

    if j["ratio"] is None:
        return "no ratio"
    return (f"ratio B/A {j['ratio']:.3f}, 95% CI [{f(j['ci95'][0])}, {f(j['ci95'][1])}], "
            f"90% CI [{f(j['ci90'][0])}, {f(j['ci90'][1])}], n={j['n']}")


def compare_analyses(a, b, *, out_dir: Path | None, console, margin_pct: float | None = None,
                     quantiles: tuple[float, ...] = (0.5,)) -> int:
    from datetime import datetime

    from rich.table import Table

    from .api import EXIT_CODES
    from .checks import FAIL, INCONCLUSIVE, PASS, _quantile_name, run_verdict

    margin = a.settings.compare_margin_pct if margin_pct is None else margin_pct
    min_n = a.settings.min_samples
    phases = [p for p in a.unit_names() if p in b.unit_names()]
    flows = [f for f in a.flows() if f in b.flows()]
    # the runs' primary metric; a run with a timing log against one without: client latency
    metric = a.primary if a.primary == b.primary else "latency_ms"
    result = {"run_a": a.source, "run_b": b.source, "margin_pct": margin,
              "quantiles": list(quantiles), "min_n": min_n,
              "generated_at": iso(datetime.now(UTC).timestamp()), "phases": {},
              "checks": [], "verdict": None}
    if not phases:
        result["checks"].append({"name": "the runs share an analysed phase", "verdict": FAIL,
                                 "passed": False, "answer": None,
                                 "observed": "none", "expected": "at least one"})
    verdict_of = {"worse": FAIL, "inconclusive": INCONCLUSIVE, "better": PASS, "equivalent": PASS}
    for ph in phases:
        result["phases"][ph] = {}
        for flow in flows:
            x, y = a.values(ph, flow, metric), b.values(ph, flow, metric)
            if len(x) == 0 or len(y) == 0:
                continue
            da, db = stats.describe(x), stats.describe(y)
            c = stats.compare_samples(x, y, margin_pct=margin)
            result["phases"][ph][flow] = {"a": da, "b": db, "comparison": c, "answers": {}}
            xs, ys = np.sort(x), np.sort(y)
            for q in quantiles:
                qn = _quantile_name(q) or f"q{q:g}"
                j = judge(xs, ys, q=q, margin_pct=margin, min_n=min_n)
                result["phases"][ph][flow]["answers"][qn] = j
                v = verdict_of[j["answer"]]
                check = {"name": f"{ph}/{flow} {metric} {qn}: B against A within +-{margin:g}%",
                         "answer": j["answer"], "verdict": v,
                         "passed": None if v == INCONCLUSIVE else v == PASS,
                         "observed": f"{j['answer']}: {_ratio_text(j)}",
                         "expected": f"not worse: the ratio's 95% interval not above "
                                     f"{1 + margin / 100:g}"}
                if j.get("why"):
                    check["why"] = j["why"]
                result["checks"].append(check)
    result["verdict"] = run_verdict(result["checks"])

    result["metric"] = metric
    t = Table(title=f"{metric}: A={Path(a.source).name}  B={Path(b.source).name}",
              title_justify="left")
    for col in ("phase", "flow", "A p50 [CI]", "B p50 [CI]", "A p99", "B p99",
                "HL shift B-A [95% CI]", "MWU p"):
        t.add_column(col, no_wrap=col in ("phase", "flow"))
    for ph, flows in result["phases"].items():
        for flow, r in flows.items():
            c = r["comparison"]
            s = c["shift_ms"]
            t.add_row(ph, flow, _ci(r["a"]["p50"]), _ci(r["b"]["p50"]),
                      f"{r['a']['p99']['value']:.1f}", f"{r['b']['p99']['value']:.1f}",
                      f"{s['value']:+.1f} [{s['ci_low']:+.1f}, {s['ci_high']:+.1f}]",
                      f"{c['mann_whitney']['p']:.2g}" if c.get("mann_whitney") else "-")
    console.print(t)
    from .terminal import VERDICT_MARKS

    for c in result["checks"]:
        why = f" [{c['why']}]" if c.get("why") else ""
        console.print(f"{VERDICT_MARKS[c['verdict']]} {c['name']}: {c['observed']}{why}")
    console.print(f"verdict: {result['verdict'].upper()}")

    out_dir = Path(out_dir) if out_dir else Path(b.source) / f"compare-{Path(a.source).name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (out_dir / "compare.html").write_text(_html(a, b, result), encoding="utf-8")
    console.print(f"written: {out_dir / 'compare.json'}, {out_dir / 'compare.html'}")
    return EXIT_CODES[result["verdict"]]


def _ci(q):
    from .terminal import _ci as terminal_ci

    return terminal_ci(q)


def _html(a, b, result) -> str:
    import base64
    import io

    from .plots import PHASE_CYCLE, _plt
    from .report import CSS

    plt = _plt()
    phases = list(result["phases"])
    metric = result.get("metric", "executor_ms")
    flows = list(dict.fromkeys(f for ph in phases for f in result["phases"][ph])) or ["-"]
    fig, axes = plt.subplots(1, len(flows), figsize=(11, 3.8), squeeze=False)
    probs = np.linspace(0, 1, 401)
    for ax, flow in zip(axes[0], flows):
        for i, ph in enumerate(phases):
            for run, ls in ((a, "-"), (b, "--")):
                v = run.values(ph, flow, metric) if flow != "-" else []
                if len(v):
                    ax.plot(np.quantile(v, probs), probs, ls=ls, color=PHASE_CYCLE[i % 7],
                            label=f"{ph} {'A' if run is a else 'B'}")
        ax.set_title(f"{flow}: {metric} CDF (A solid, B dashed)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    img = base64.b64encode(buf.getvalue()).decode()
    e = html.escape
    rows = []
    for ph, flows in result["phases"].items():
        for flow, r in flows.items():
            c = r["comparison"]
            rows.append(f"<tr><td>{e(ph)}</td><td>{e(flow)}</td><td>{e(_ci(r['a']['p50']))}</td>"
                        f"<td>{e(_ci(r['b']['p50']))}</td><td>{r['a']['p99']['value']:.1f}</td>"
                        f"<td>{r['b']['p99']['value']:.1f}</td>"
                        f"<td>{c['shift_ms']['value']:+.2f} [{c['shift_ms']['ci_low']:+.2f}, "
                        f"{c['shift_ms']['ci_high']:+.2f}]</td></tr>")
    checks = "".join(
        f"<tr><td class={c['verdict']}>{c['verdict'].upper()}</td><td>{e(c['name'])}</td>"
        f"<td>{e(c['observed'])}</td><td>{e(c.get('why') or c['expected'])}</td></tr>"
        for c in result["checks"])
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>execbench compare"
            f"</title><style>{CSS}</style></head><body><h1>A: {e(a.source)}<br>B: {e(b.source)}</h1>"
            f"<div class='banner {result['verdict']}'>verdict: {result['verdict'].upper()}</div>"
            f"<h2>Checks</h2><table>{checks}</table><h2>{e(metric)}</h2><table><tr><th>phase</th>"
            f"<th>flow</th><th>A p50 [95% CI]</th><th>B p50 [95% CI]</th><th>A p99</th>"
            f"<th>B p99</th><th>HL shift B-A ms [95% CI]</th></tr>{''.join(rows)}</table>"
            f"<img alt='CDFs' src='data:image/svg+xml;base64,{img}'></body></html>")
