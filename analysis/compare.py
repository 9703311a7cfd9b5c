"""`execbench compare RUN_A RUN_B`: the same statistics for two runs, side by side.

For each analysed phase both runs have and each flow: p50/p95/p99 with bootstrap CIs in A and in
B, the Hodges-Lehmann shift B - A with its 95% CI, Mann-Whitney p, and a non-inferiority check:
B passes when the upper bound of the 90% HL interval is below +margin (default 5% of A's p50),
i.e. the one-sided test at alpha = 0.05 that B is not slower than A by more than the margin.
"""

from __future__ import annotations

import html
from datetime import UTC
from pathlib import Path

import numpy as np
import orjson

from . import stats
from .core import iso


def compare_analyses(a, b, *, out_dir: Path | None, console) -> int:
    from datetime import datetime

    from rich.table import Table

    margin = a.settings.compare_margin_pct
    phases = [p for p in a.unit_names() if p in b.unit_names()]
    flows = [f for f in a.flows() if f in b.flows()]
    # the runs' primary metric; a run with a timing log against one without: client latency
    metric = a.primary if a.primary == b.primary else "latency_ms"
    result = {"run_a": a.source, "run_b": b.source, "margin_pct": margin,
              "generated_at": iso(datetime.now(UTC).timestamp()), "phases": {},
              "checks": [], "verdict": None}
    if not phases:
        result["checks"].append({"name": "the runs share an analysed phase", "passed": False,
                                 "observed": "none", "expected": "at least one"})
    for ph in phases:
        result["phases"][ph] = {}
        for flow in flows:
            x, y = a.values(ph, flow, metric), b.values(ph, flow, metric)
            if len(x) == 0 or len(y) == 0:
                continue
            da = stats.describe(x, ph, flow, metric)
            db = stats.describe(y, ph, flow, metric)
            c = stats.compare_samples(x, y, margin_pct=margin)
            result["phases"][ph][flow] = {"a": da, "b": db, "comparison": c}
            eq = c.get("equivalence")
            if eq:
                upper = eq["ci90_ms"][1]
                result["checks"].append({
                    "name": f"{ph}/{flow}: B not slower than A by more than {margin:g}%",
                    "passed": upper is not None and upper < eq["delta"],
                    "observed": f"HL shift {c['shift_ms']['value']:+.2f} ms, 90% CI upper "
                                f"{upper:+.2f} ms",
                    "expected": f"< +{eq['delta']:.2f} ms"})
    result["verdict"] = "pass" if result["checks"] and all(
        c["passed"] for c in result["checks"]) else "fail"

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
    for c in result["checks"]:
        mark = "[bold green]PASS[/]" if c["passed"] else "[bold red]FAIL[/]"
        console.print(f"{mark} {c['name']}: {c['observed']} (expected {c['expected']})")
    console.print(f"verdict: {result['verdict'].upper()}")

    out_dir = Path(out_dir) if out_dir else Path(b.source) / f"compare-{Path(a.source).name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (out_dir / "compare.html").write_text(_html(a, b, result), encoding="utf-8")
    console.print(f"written: {out_dir / 'compare.json'}, {out_dir / 'compare.html'}")
    return 0 if result["verdict"] == "pass" else 1


def _ci(q):
    return f"{q['value']:.1f} [{q['ci_low']:.1f}, {q['ci_high']:.1f}]" if q.get("ci_low") is not None \
        else f"{q['value']:.1f}"


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
        f"<tr><td class={'pass' if c['passed'] else 'fail'}>{'PASS' if c['passed'] else 'FAIL'}"
        f"</td><td>{e(c['name'])}</td><td>{e(c['observed'])}</td><td>{e(c['expected'])}</td></tr>"
        for c in result["checks"])
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>execbench compare"
            f"</title><style>{CSS}</style></head><body><h1>A: {e(a.source)}<br>B: {e(b.source)}</h1>"
            f"<div class='banner {result['verdict']}'>verdict: {result['verdict'].upper()}</div>"
            f"<h2>Checks</h2><table>{checks}</table><h2>{e(metric)}</h2><table><tr><th>phase</th>"
            f"<th>flow</th><th>A p50 [95% CI]</th><th>B p50 [95% CI]</th><th>A p99</th>"
            f"<th>B p99</th><th>HL shift B-A ms [95% CI]</th></tr>{''.join(rows)}</table>"
            f"<img alt='CDFs' src='data:image/svg+xml;base64,{img}'></body></html>")
