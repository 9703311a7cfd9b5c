"""report.html: one self-contained file (inline CSS, plots as base64 SVG data URIs, no script,
no external URL), readable in any browser."""

from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px} td,th{border:1px solid #ddd;padding:3px 7px}
th{background:#f4f4f4;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#fff;background:#1e8449;font-weight:bold;text-align:center}
.fail{color:#fff;background:#c0392b;font-weight:bold;text-align:center}
.banner{padding:10px 14px;font-size:18px;font-weight:bold;border-radius:4px;color:#fff}
.banner.pass{background:#1e8449}.banner.fail{background:#c0392b}
.muted{color:#666;font-size:12px} img{max-width:100%;border:1px solid #eee;margin:6px 0}
code{background:#f4f4f4;padding:0 3px}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(v, d=1) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def _ci(q) -> str:
    if not q or q.get("value") is None:
        return "-"
    if q.get("ci_low") is None:
        return _num(q["value"])
    return f"{q['value']:.1f} <span class=muted>[{q['ci_low']:.1f}, {q['ci_high']:.1f}]</span>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/svg+xml;base64,{data}">'


def _table(headers, rows, num_cols=()) -> str:
    h = "".join(f"<th>{_e(x)}</th>" for x in headers)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cls = ' class="num"' if i in num_cols else ""
            cells.append(f"<td{cls}>{c}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{h}</tr>{''.join(body)}</table>"


def render(a, plots: dict[str, Path], *, title: str, errors: list[str] | None = None) -> str:
    s = a.summary
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    out.append(f"<h1>{_e(title)}</h1>")
    out.append(f"<p class=muted>source {_e(s['source'])} &middot; experiment "
               f"{_e(s.get('experiment') or '-')} &middot; generated {_e(s['generated_at'])}"
               + (f" &middot; split at {_e(s['split_at'])}" if s.get("split_at") else "") + "</p>")
    desc = a.spec.raw.get("description") if a.spec else None
    if isinstance(desc, str) and desc:
        out.append(f"<p><i>{_e(desc)}</i></p>")
    ok = s["verdict"] == "pass"
    failed = [c for c in s["checks"] if not c["passed"]]
    out.append(f"<div class='banner {'pass' if ok else 'fail'}'>verdict: {s['verdict'].upper()}"
               f" &mdash; {len(s['checks']) - len(failed)}/{len(s['checks'])} checks passed</div>")

    out.append("<h2>Checks</h2>")
    rows = [(f"<span class={'pass' if c['passed'] else 'fail'}>&nbsp;"
             f"{'PASS' if c['passed'] else 'FAIL'}&nbsp;</span>", _e(c["name"]),
             _e(c["observed"]), _e(c["expected"]), _e(c.get("source", "")))
            for c in s["checks"]]
    out.append(_table(["", "check", "observed", "expected", "source"], rows))
    if s["findings"]:
        out.append("<h2>Findings</h2><ul>" + "".join(
            f"<li><b>{_e(f['name'])}</b>: {_e(f['observed'])} <span class=muted>"
            f"({_e(f['note'])})</span></li>" for f in s["findings"]) + "</ul>")

    out.append("<h2>Latency over time</h2>")
    if "latency_over_time" in plots:
        out.append(_img(plots["latency_over_time"], "executor_ms over time by flow"))

    out.append("<h2>executor_ms per phase and flow</h2>")
    rows = []
    for ph, flows in s["phases"].items():
        info = s["phase_info"][ph]
        for flow, m in flows.items():
            e = m.get("executor_ms")
            if not e:
                continue
            rows.append((_e(ph), _e(info["mode"] or "-"), _e(flow), e["count"], _num(e["mean"]),
                         _ci(e["p50"]), _ci(e["p90"]), _ci(e["p95"]), _ci(e["p99"])))
    out.append(_table(["phase", "mode", "flow", "n", "mean", "p50 [95% CI]", "p90", "p95", "p99"],
                      rows, num_cols=(3, 4, 5, 6, 7, 8)))
    if "cdf" in plots:
        out.append(_img(plots["cdf"], "CDFs per phase"))

    if s["comparisons"]:
        out.append("<h2>Shifts between phases</h2>")
        rows = []
        for c in s["comparisons"]:
            for flow, res in c["flows"].items():
                for metric, r in res.items():
                    if not r.get("usable"):
                        continue
                    sh, eq, mw = r["shift_ms"], r.get("equivalence") or {}, r.get("mann_whitney") or {}
                    rows.append((
                        _e(c["name"]), _e(flow), _e(metric),
                        f"{r['ref_p50']:.1f} &rarr; {r['p50']:.1f}",
                        f"{sh['value']:+.2f} <span class=muted>[{sh['ci_low']:+.2f}, "
                        f"{sh['ci_high']:+.2f}]</span>",
                        f"{r['shift_pct']['value']:+.1f}%" if r["shift_pct"]["value"] is not None
                        else "-",
                        f"{mw.get('p', float('nan')):.3g}",
                        (f"{'yes' if eq.get('equivalent') else 'no'} (&plusmn;{eq['margin_pct']:g}%,"
                         f" p={eq['p']:.3g})") if eq else "-"))
        out.append(_table(["comparison", "flow", "metric", "p50 ref → phase",
                           "HL shift ms [95% CI]", "shift %", "Mann-Whitney p", "equivalent (TOST)"],
                          rows, num_cols=(4, 5, 6)))

    if s.get("client"):
        out.append("<h2>Client-side latency (requests.jsonl, outcome ok)</h2>")
        rows = []
        for ph, entry in s["client"].items():
            for flow in ("provider", "local"):
                m = entry.get(flow, {})
                for metric in ("latency_ms", "latency_from_intended_ms"):
                    e = m.get(metric)
                    if e:
                        rows.append((_e(ph), _e(flow), _e(metric), e["count"], _ci(e["p50"]),
                                     _ci(e["p95"]), _ci(e["p99"])))
        out.append(_table(["phase", "flow", "metric", "n", "p50", "p95", "p99"], rows, (3, 4, 5, 6)))

    out.append("<h2>Stage breakdown per mode</h2>")
    if "stages" in plots:
        out.append(_img(plots["stages"], "stage breakdown"))
    rows = []
    for ph, flows in s["phases"].items():
        for flow, m in flows.items():
            for metric, e in m.items():
                if metric == "executor_ms":
                    continue
                rows.append((_e(ph), _e(flow), _e(metric), e["count"], _num(e["mean"]),
                             _ci(e["p50"]), _ci(e["p95"])))
    out.append("<details><summary>stage quantiles</summary>"
               + _table(["phase", "flow", "stage", "n", "mean", "p50", "p95"], rows, (3, 4, 5, 6))
               + "</details>")

    out.append("<h2>Flips and recovery</h2>")
    rows = []
    for f in s["flips"]:
        for flow, r in f["flows"].items():
            rows.append((_e(f["phase"]), _e(f["mode"] or "deploy"), _e(f["requested_at"]),
                         _num(f["apply_lag_s"], 3), _e(flow), _num(r["target_p50"]),
                         "never" if r["recovery_s"] is None else _num(r["recovery_s"], 1),
                         _e(r["excursions_after"] if r["excursions_after"] is not None else "-")))
    out.append(_table(["into phase", "mode", "requested", "apply lag s", "flow", "target p50",
                       "recovery s", "windows outside after"], rows, (3, 5, 6, 7)))
    if "recovery" in plots:
        out.append(_img(plots["recovery"], "recovery after flips"))

    out.append("<h2>Safety</h2>")
    saf = s["safety"]
    if saf.get("available"):
        rows = []
        for k, v in saf.items():
            if k in ("source", "available", "by_mode"):
                continue
            if isinstance(v, dict):
                v = ", ".join(f"{kk}: {vv}" for kk, vv in v.items())
            rows.append((_e(k), _e(v)))
        out.append(_table(["ledger field", "value"], rows))
        by_mode = saf.get("by_mode")
        if isinstance(by_mode, dict) and by_mode:
            fields = []
            for v in by_mode.values():
                if isinstance(v, dict):
                    fields += [f for f in v if f not in fields]
            brow = [(_e(mode), *[_e(v.get(f, "-")) if isinstance(v, dict) else "-"
                                 for f in fields]) for mode, v in by_mode.items()]
            out.append(_table(["mode", *fields], brow, tuple(range(1, len(fields) + 1))))
        if "safety" in plots:
            out.append(_img(plots["safety"], "safety ledger"))
    else:
        out.append("<p>No ledger.json in this run: over-commits, releases and lost orders were not"
                   " verified.</p>")

    out.append("<h2>Phases and attribution</h2>")
    rows = []
    for ph, info in s["phase_info"].items():
        rows.append((_e(ph), _e(info["mode"] or "-"), "yes" if info["analysed"] else "no",
                     _e(info["start"]), _num(info["duration_s"]), info["records"],
                     info["flip_window"], info["kept"], _num(info["throughput_rps"])))
    out.append(_table(["phase", "mode", "analysed", "start", "duration s", "records",
                       "other mode (flip window)", "kept", "kept/s"], rows, (4, 5, 6, 7, 8)))
    ing = s["ingest"]
    for name in ("timings", "requests"):
        t = ing.get(name)
        if t:
            mal = t["malformed"]
            txt = (f"<p><code>{_e(name)}</code>: {t['records']} records from {t['lines']} lines, "
                   f"{mal['count']} malformed")
            if mal["count"]:
                txt += " (" + ", ".join(f"line {x['line']}: {_e(x['reason'])}"
                                        for x in mal["lines"][:10]) + (
                    ", ..." if mal["count"] > 10 else "") + ")"
            out.append(txt + "</p>")
    out.append(f"<p>records outside every phase: {ing['outside_phases']}</p>")
    if ing["notes"]:
        out.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in ing["notes"]) + "</ul>")

    if errors:
        out.append("<h2>Problems drawing this report</h2><ul>"
                   + "".join(f"<li>{_e(e)}</li>" for e in errors) + "</ul>")
    out.append("<h2>Methods</h2><ul>" + "".join(
        f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in s["methods"].items()) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(a, plots: dict[str, Path], path: Path, *, title: str,
                 errors: list[str] | None = None) -> Path:
    path.write_text(render(a, plots, title=title, errors=errors), encoding="utf-8")
    return path
