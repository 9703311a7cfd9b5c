"""report.html: one self-contained file (inline CSS, plots as base64 SVG data URIs, no script,
no external URL), readable in any browser."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .recovery import recovery_text

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
.inconclusive{color:#000;background:#f4d03f;font-weight:bold;text-align:center}
.banner.inconclusive{background:#f4d03f;color:#000}
.muted{color:#666;font-size:12px} img{max-width:100%;border:1px solid #eee;margin:6px 0}
code{background:#f4f4f4;padding:0 3px}
.warn{color:#222;background:#f5b041;font-weight:bold;text-align:center}
.caption{color:#444;font-size:12px;margin:0 0 10px 0;max-width:900px}
"""


def _ratio_ci90(eq: dict) -> str:
    lo, hi = eq["ci90"]
    return f"[{'-' if lo is None else f'{lo:.3f}'}, {'-' if hi is None else f'{hi:.3f}'}]"


def _e(x) -> str:
    return html.escape(str(x))


def _num(v, d=1) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def _ci(q) -> str:
    if not q or q.get("value") is None:
        return "-"
    if q.get("ci_low") is None and q.get("ci_high") is None:
        return _num(q["value"])
    # a missing bound: too few records for it at 95% (shown as -, never invented)
    lo, hi = (("-" if v is None else f"{v:.1f}") for v in (q.get("ci_low"), q.get("ci_high")))
    return f"{q['value']:.1f} <span class=muted>[{lo}, {hi}]</span>"


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


def render(a, plots: dict[str, Path], *, title: str, errors: list[str] | None = None,
           drawn: bool = True) -> str:
    """The report's HTML. `drawn` False: the figures were not asked for (`--no-plots`), so a
    missing figure says nothing about the data."""
    s = a.summary
    out = [(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body>")]
    out.append(f"<h1>{_e(title)}</h1>")
    out.append(f"<p class=muted>source {_e(s['source'])} &middot; experiment "
               f"{_e(s.get('experiment') or '-')} &middot; generated {_e(s['generated_at'])}"
               + (f" &middot; split at {_e(s['split_at'])}" if s.get("split_at") else "") + "</p>")
    desc = a.spec.raw.get("description") if a.spec else None
    if isinstance(desc, str) and desc:
        out.append(f"<p><i>{_e(desc)}</i></p>")
    counts = {v: sum(1 for c in s["checks"] if c["verdict"] == v)
              for v in ("pass", "fail", "inconclusive")}
    tally = ", ".join([f"{counts['pass']} passed"] + [
        f"{counts[v]} {'failed' if v == 'fail' else v}" for v in ("fail", "inconclusive")
        if counts[v]])
    out.append(f"<div class='banner {s['verdict']}'>verdict: {s['verdict'].upper()}"
               f" &mdash; {tally} of {len(s['checks'])} checks</div>")
    if s["verdict"] == "inconclusive":
        out.append("<p class=muted>INCONCLUSIVE: no check failed, but the data could not "
                   "decide at least one (too few records, or an interval across its "
                   "threshold); exit code 3.</p>")

    if not drawn:
        out.append("<p class=muted>Figures not drawn (<code>--no-plots</code>): every table and "
                   "figure in summary.json is here, the pictures are not.</p>")
    out.append("<h2>Checks</h2>")
    rows = [(_status(c["passed"] if c["verdict"] != "inconclusive" else "inconclusive"),
             _e(c["name"]),
             _e(c["observed"]) + (f" <i>({_e(c['why'])})</i>" if c.get("why") else ""),
             _e(c["expected"]), _e(c.get("source", "")))
            for c in s["checks"]]
    out.append(_table(["", "check", "observed", "expected", "source"], rows))
    if s["findings"]:
        out.append("<h2>Findings</h2><ul>" + "".join(
            f"<li><b>{_e(f['name'])}</b>: {_e(f['observed'])} <span class=muted>"
            f"({_e(f['note'])})</span></li>" for f in s["findings"]) + "</ul>")

    primary = s.get("primary_metric", "executor_ms")
    if s.get("client_only"):
        from .core import CLIENT_ONLY_NOTE

        out.append(f"<p><b>{_e(CLIENT_ONLY_NOTE)}</b>: the run has no <code>timings.jsonl</code>; "
                   "every figure is from <code>requests.jsonl</code> (client latency, and the "
                   "server metrics the responses reported), placed by send time, with the "
                   "mode each response reported or else its phase's.</p>")
    out.append("<h2>Latency over time</h2>")
    if "latency_over_time" in plots:
        from .plots import MIN_BIN_RECORDS, TARGET_BIN_RECORDS

        out.append(_img(plots["latency_over_time"], f"{primary} over time by flow"))
        out.append("<p class=caption>Dots: successful records (at most 4,000 per flow drawn); "
                   "lines: p50 (solid) and p95 (dotted) of each time bin. The bins are sized to "
                   f"the flow's records (about {TARGET_BIN_RECORDS} a bin, none narrower than "
                   "1 s; each flow's width is under the axis and in its legend), so a sparse "
                   f"series still draws its lines; a bin with fewer than {MIN_BIN_RECORDS} "
                   "successful records of the flow has no p50 or p95, so the line breaks there: "
                   "a gap means a pause in the records, not missing data. Phases shaded by "
                   "mode; solid vertical line: flip requested, dashed: applied.</p>")
    elif drawn:
        out.append("<p>No successful record to draw.</p>")

    metrics = [primary] if not s.get("client_only") else (s.get("metrics") or [primary])
    many = len(metrics) > 1
    out.append(f"<h2>{_e(primary if not many else 'Latency and server metrics')} per phase and "
               "flow</h2>")
    rows = []
    for ph, flows in s["phases"].items():
        info = s["phase_info"][ph]
        for flow, m in flows.items():
            for metric in metrics:
                e = m.get(metric)
                if not e:
                    continue
                rows.append((_e(ph), _e(info["mode"] or "-"), _e(flow),
                             *((_e(metric),) if many else ()), e["count"], _num(e["mean"]),
                             _ci(e["p50"]), _ci(e["p90"]), _ci(e["p95"]), _ci(e["p99"])))
    k = 4 if many else 3
    out.append(_table(["phase", "mode", "flow", *(("metric",) if many else ()), "n", "mean",
                       "p50 [95% CI]", "p90", "p95", "p99"], rows,
                      num_cols=tuple(range(k, k + 6))))
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
                        (f"{sh['value']:+.2f} <span class=muted>[{sh['ci_low']:+.2f}, "
                         f"{sh['ci_high']:+.2f}]</span>"),
                        f"{r['shift_pct']['value']:+.1f}%" if r["shift_pct"]["value"] is not None
                        else "-",
                        f"{mw.get('p', float('nan')):.3g}",
                        (f"{_e(eq['verdict'])} (&plusmn;{eq['margin_pct']:g}%; ratio "
                         f"{eq['ratio']:.3f}, 90% CI {_ratio_ci90(eq)})") if eq else "-"))
        out.append(_table(["comparison", "flow", "metric", "p50 ref → phase",
                           "HL shift ms [95% CI]", "shift %", "Mann-Whitney p",
                           "medians equivalent? (margin; p50 ratio)"],
                          rows, num_cols=(4, 5, 6)))

    if s.get("client"):
        out.append("<h2>Client-side latency and response metrics (requests.jsonl, outcome ok)"
                   "</h2>")
        rows = []
        for ph, entry in s["client"].items():
            for flow, m in entry.items():
                if flow == "outcomes":
                    continue
                for metric, e in m.items():
                    if e:
                        rows.append((_e(ph), _e(flow), _e(metric), e["count"], _ci(e["p50"]),
                                     _ci(e["p95"]), _ci(e["p99"])))
        out.append(_table(["phase", "flow", "metric", "n", "p50", "p95", "p99"], rows, (3, 4, 5, 6)))

    rows = []
    if not s.get("client_only"):
        for ph, flows in s["phases"].items():
            for flow, m in flows.items():
                for metric, e in m.items():
                    if metric == primary:
                        continue
                    rows.append((_e(ph), _e(flow), _e(metric), e["count"], _num(e["mean"]),
                                 _ci(e["p50"]), _ci(e["p95"])))
    if "stages" in plots or rows:
        out.append("<h2>Stage breakdown per mode</h2>")
        if "stages" in plots:
            out.append(_img(plots["stages"], "stage breakdown"))
        out.append("<details><summary>stage quantiles</summary>"
                   + _table(["phase", "flow", "stage", "n", "mean", "p50", "p95"], rows,
                            (3, 4, 5, 6)) + "</details>")

    if s.get("latency_plan"):
        out.append(latency_plan_section(s["latency_plan"], plots))

    out.append("<h2>Flips and recovery</h2>")
    if s.get("latency_plan"):
        out.append("<p>A factorial run flips at nearly every cell: its flips are not judged for "
                   "recovery (each record counts in the cell its own flags name).</p>")
    elif not s["flips"]:
        out.append("<p>No flip in this run.</p>")
    rows = []
    for f in s["flips"]:
        for flow, r in f["flows"].items():
            rows.append((_e(f["phase"]), _e(f["mode"] or "deploy"), _e(f["requested_at"]),
                         _num(f["apply_lag_s"], 3), _e(flow), _num(r["target_p50"]),
                         _e(recovery_text(r)),
                         _e(r["excursions_after"] if r["excursions_after"] is not None else "-")))
    if rows:
        out.append(_table(["into phase", "mode", "requested", "apply lag s", "flow", "target p50",
                           "recovery s", "windows outside after"], rows, (3, 5, 6, 7)))
        out.append(f"<p class=caption>Seconds from the flip's request until the rolling p50 of "
                   f"<code>{_e(primary)}</code> is back within the tolerance of the phase's "
                   "steady p50 and stays there; <i>not resolvable</i> where the records are too "
                   "sparse for the method (its windows would be wider than a quarter of the time "
                   "after the flip, or date the change no finer than the recovery judged).</p>")
    if "recovery" in plots:
        out.append(_img(plots["recovery"], "recovery after flips"))

    out.append(safety_section(s, plots, drawn=drawn))

    out.append("<h2>Phases and attribution</h2>")
    rows = []
    threshold = None
    for ph, info in s["phase_info"].items():
        late = info.get("late_sends") or {}
        threshold = threshold if threshold is not None else late.get("late_ms")
        count = late.get("count")
        cell = "-" if not late else (f"{'?' if count is None else count} / {late['requests']}")
        if count and info["analysed"]:
            cell = f"<span class=warn>&nbsp;{cell}&nbsp;</span>"
        rows.append((_e(ph), _e(info["mode"] or "-"), "yes" if info["analysed"] else "no",
                     _e(info["start"]), _num(info["duration_s"]), info["records"],
                     info["flip_window"], info["kept"], _num(info["throughput_rps"]), cell,
                     _num(late.get("max_lateness_ms"))))
    out.append(_table(["phase", "mode", "analysed", "start", "duration s", "records",
                       "other mode (flip window)", "kept", "kept/s", "late sends / requests",
                       "max lateness ms"], rows, (4, 5, 6, 7, 8, 9, 10)))
    if any(info.get("late_sends") for info in s["phase_info"].values()):
        out.append("<p class=caption>Late sends (requests.jsonl): arrivals the open-model "
                   "generator sent more than "
                   + (f"{threshold:g} ms" if threshold is not None else "<code>late_ms</code>")
                   + " after their intended time (its pool was full, or the process could not "
                   "keep up), per phase of the intended time; a late send under-loads the "
                   "service just when it is slow. <i>Max lateness</i> is the largest sent "
                   "&minus; intended of any request of the phase.</p>")
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
    if s.get("excluded") is not None:
        out.append(excluded_section(s))

    if errors:
        out.append("<h2>Problems drawing this report</h2><ul>"
                   + "".join(f"<li>{_e(e)}</li>" for e in errors) + "</ul>")
    out.append("<h2>Methods</h2><ul>" + "".join(
        f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in s["methods"].items()) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def latency_plan_section(lp: dict, plots: dict[str, Path]) -> str:
    """The factorial's main effects beside the note's ranges, the all-off/all-on totals, the
    waterfall and the significant interactions."""
    from .latency_plan import effect_text, significant_interactions, step_rows

    m = lp["metrics"]
    rows = [tuple(_e(cell) for cell in row) for row in step_rows(lp)]
    p50 = m.get("total_ms", {}).get("p50", {})
    per_cell = p50.get("records_per_cell", {})
    intro = (f"<p>{lp['records']} orders through the gateway in {lp['blocks']} blocks of "
             f"{2 ** len(lp['factors'])} cells (records per cell {per_cell.get('min', '?')}"
             f"&ndash;{per_cell.get('max', '?')}). Main effect: the mean change of the quantile "
             "when the step is turned on, over every setting of the others (negative: a "
             "saving), ms, with its 95% interval; <i>alone</i>: the step's cell with every other "
             "step off against the all-off cell (what rolling out that step first would see), "
             "two cells only, so a wider interval.</p>")
    out = ["<h2>The latency plan: what each step is worth</h2>", intro,
           _table(["step", "total p50", "alone: total p50", "total p95", "executor p50",
                   "executor p95", "note's range (total)", "finding (main / alone)"], rows,
                  (1, 2, 3, 4, 5, 6))]
    out.append("<p class=caption><i>inside</i>: the interval lies in the note's range; "
               "<i>outside</i>: it misses the range entirely (a finding about the note's "
               "estimate, or this machine); <i>overlaps</i>: neither can be said at this size. "
               f"Intervals: {_e(p50.get('interval_method') or '-')}.</p>")
    lines = []
    for metric, label in (("total_ms", "total (gateway total_ms)"), ("executor_ms", "executor_ms")):
        q = m.get(metric, {}).get("p50", {})
        if q.get("all_off") and q.get("all_on"):
            lines.append(f"<li>{label} p50: all off {_ci(q['all_off'])} &rarr; all on "
                         f"{_ci(q['all_on'])} ms</li>")
    client = lp.get("client_total_ms") or {}
    if client.get("all off") and client.get("all on"):
        lines.append(f"<li>client-measured total p50: all off {_ci(client['all off']['p50'])} "
                     f"&rarr; all on {_ci(client['all on']['p50'])} ms (the note: 296 &rarr; "
                     "200&ndash;240 ms after Step 1)</li>")
    inter = significant_interactions(lp)
    lines.append("<li>interactions on total p50 whose interval excludes 0: " + (", ".join(
        f"{_e(name)} {effect_text(e)}" for name, e in inter) if inter else "none observed") + "</li>")
    out.append("<ul>" + "".join(lines) + "</ul>")
    if "waterfall" in plots:
        out.append(_img(plots["waterfall"], "attribution waterfall"))
        out.append("<p class=caption>From the all-off total p50, each step's main effect (green: a "
                   "saving; whisker: its 95% interval; blue: the note's range), the rest "
                   "(interactions, and a quantile of a sum not being a sum of quantiles), to the "
                   "measured all-on p50.</p>")
    return "".join(out)


def excluded_section(s: dict) -> str:
    """`analyze-log`: the log's lines left out of the analysis, by reason."""
    log = s.get("log") or {}
    sel = log.get("selection") or {}
    picked = [f"component {_e(sel.get('component') or 'any')}",
              f"endpoint {_e(sel.get('endpoint') or 'any')}",
              *(f"where {_e(w)}" for w in sel.get("where") or []),
              f"flow field {_e(sel.get('flow_field', 'flow'))}",
              f"metric {_e(sel.get('metric', s.get('primary_metric')))}"]
    out = [(f"<h2>Excluded lines</h2><p>{log.get('lines', '?')} lines read, "
            f"{log.get('records', '?')} records analysed; selection: {', '.join(picked)}.</p>")]
    first = log.get("excluded_first_lines") or {}
    rows = [(_e(r), n, _e(", ".join(str(x) for x in first.get(r, [])) or "-"))
            for r, n in sorted(s["excluded"].items(), key=lambda kv: -kv[1])]
    out.append(_table(["reason", "lines", "first lines"], rows, (1,)) if rows
               else "<p>No line was excluded.</p>")
    return "\n".join(out)


def write_report(a, plots: dict[str, Path], path: Path, *, title: str,
                 errors: list[str] | None = None, drawn: bool = True) -> Path:
    path.write_text(render(a, plots, title=title, errors=errors, drawn=drawn), encoding="utf-8")
    return path


def _status(passed) -> str:
    if passed is None:
        return "-"
    if passed == "inconclusive":
        return "<span class=inconclusive>&nbsp;INCONCLUSIVE&nbsp;</span>"
    return f"<span class={'pass' if passed else 'fail'}>&nbsp;{'PASS' if passed else 'FAIL'}&nbsp;</span>"


def _usd(v, d=2) -> str:
    return "-" if v is None else f"{v:,.{d}f}"


def _recovery_cells(flows: dict) -> list[tuple]:
    return [(_e(flow), _e(recovery_text(r)), _num(r["target_p50"])) for flow, r in flows.items()]


def p50s(d: dict) -> str:
    return ", ".join(f"{fl} {v['p50']:.1f}" for fl, v in d.items()
                     if isinstance(v, dict) and "p50" in v)


def _nonterminal_recovery(nt: dict) -> str:
    if nt.get("recovery_s") is not None:
        return _num(nt["recovery_s"]) + (f" <span class=muted>({nt['excursions_after']} above "
                                         "after)</span>" if nt.get("excursions_after") else "")
    return f"- <span class=muted>({_e(nt.get('note') or 'not measured')})</span>"


def safety_section(s: dict, plots: dict[str, Path], *, drawn: bool = True) -> str:
    """"Safety and reliability": over-commits per mode with their rate per 10k, the ledger's
    reconciliation with PASS/FAIL, recovery times after every flip and every provider fault,
    the estimate-error distribution drawn from the ledger's quantiles."""
    from .safety import ADDED, part

    saf = s["safety"]
    out = ["<h2>Safety and reliability</h2>"]
    modes = part(saf, "modes") or {}
    if not saf.get("available") and s.get("pack") == "generic":
        out.append("<p><b>no ledger expected</b>: the target is not the reference service (a "
                   "safety ledger is the reference pack's), so no over-commit, release or lost "
                   "order figure applies.</p>")
    elif not saf.get("available"):
        out.append("<p><b>no ledger</b>: this run has no ledger.json (an older run, or a "
                   "production log), so over-commits, releases and lost orders were not "
                   "verified.</p>")
    else:
        out.append("<h3>Over-commits by mode</h3>")
        rows = []
        for mode, m in modes.items():
            k = m["overcommits"]
            cls = ("pass" if m["passed"] else "fail") if m["passed"] is not None else \
                ("warn" if k else "")
            cell = f"<span class={cls}>&nbsp;{_e(k if k is not None else '-')}&nbsp;</span>" \
                if cls else _e(k if k is not None else "-")
            est = m.get("abs_estimate_error_usd") or {}
            rows.append((_e(mode) + ("" if m["ran"] else " <span class=muted>(not run)</span>"),
                         _e(m["provider_orders"]), cell, _ci(m["per_10k"]),
                         _e("-" if m.get("overcommits_within_allowance") is None
                            else m["overcommits_within_allowance"]),
                         _usd(m["max_overcommit_usd"]), _usd(est.get("p50")),
                         _usd(est.get("p95")), _usd(est.get("p99")), _usd(est.get("max")),
                         _e(est.get("count", "-") if est else "-")))
        out.append(_table(["mode", "provider orders", "over-commits",
                           "per 10k orders [95% CI]", "within price-move allowance",
                           "max excess USD", "|est. error| p50 USD", "p95", "p99", "max",
                           "n confirmed"],
                          rows, num_cols=(1, 3, 4, 5, 6, 7, 8, 9, 10)))
        out.append("<p class=caption>Over-commits per 10,000 provider orders of the mode, with "
                   "a 95% interval that takes accounts as the units (a burst of one account "
                   "over-commits together; the method is under the table); 0 is expected in "
                   "<code>off</code> and <code>skip_reserve</code> (green/red), "
                   "<code>skip</code>'s are the optimization's measured cost (amber when there "
                   "are any; 0 is left uncoloured: with no exposure it says little). With 0 "
                   "over-commits from A accounts the upper bound is about 3.7&times;10,000/A. An excess of "
                   "used margin over equity within the service's price-move allowance "
                   "(<code>EXECBENCH_OVERCOMMIT_ALLOWANCE_PCT</code>) is not an over-commit and "
                   "is counted apart; <i>max excess</i> is the largest of either kind.</p>")
        rec = part(saf, "reconciliation") or {}
        rows = []
        for key, label, expected in (
                ("residual_usd", "reserved vs open residual (USD)", None),
                ("nonterminal", "orders left non-terminal", "0"),
                ("releases_total", "margin releases (reject / timeout)", "-"),
                ("double_releases", "double releases", "0")):
            r = rec.get(key) or {}
            v = r.get("value")
            if key == "residual_usd":
                expected = f"|x| &le; {r.get('limit', 0.01):g}"
                shown = _usd(v)
            else:
                shown = _e("-" if v is None else v)
            rows.append((_e(label), shown, expected, _status(r.get("passed"))))
        out.append("<h3>Ledger reconciliation</h3>")
        out.append(_table(["", "value", "expected", ""], rows, num_cols=(1,)))
        if rec.get("orders_total") is not None:
            out.append(f"<p class=muted>orders in the ledger: {rec['orders_total']} (every order "
                       "in the database, the seeded open orders included)</p>")

    # the flips' recoveries are in "Flips and recovery": only the provider faults' here
    rows = []
    for ep in part(saf, "provider_faults") or []:
        after = ep.get("recovery_after_end")
        if after:
            for cells in _recovery_cells(after["flows"]):
                event = (f"provider {_e(ep['settings'])} ended ({_e(after['phase'])}, "
                         f"{_e(after['mode'] or '-')})")
                rows.append((event, _e(ep["ended_at"]), "-", *cells))
    if rows:
        out.append("<h3>Recovery after provider faults</h3>")
        out.append(_table(["event", "at", "apply lag s", "flow", "recovery s", "target p50 ms"],
                          rows, num_cols=(2, 4, 5)))
        out.append("<p class=caption>Seconds from the fault's end until the rolling p50 is back "
                   "within the tolerance of the phase's steady p50 and stays there (the method "
                   "of <i>Flips and recovery</i>, where each flip's recovery is).</p>")
    faults = part(saf, "provider_faults") or []
    sampled = part(saf, "nonterminal_samples") is not None
    if faults:
        out.append("<h3>Provider faults</h3>")
        rows = []
        for ep in faults:
            flips = "; ".join(f"{_e(f['mode'])} at +{f['seconds_into_fault']:.1f} s"
                              for f in ep["flips_during"]) or "-"
            before = ep.get("p50_before")
            during = "<br>".join(f"{_e(d['phase'])} ({_e(d['mode'] or '-')}): {p50s(d)}"
                                 for d in ep["p50_during"])
            nt = ep["nonterminal"]
            row = [_e(ep["settings"]), _e(ep["started_at"]),
                   _e(ep["ended_at"] or "run end"), _num(ep["duration_s"]), flips,
                   (f"{_e(before['phase'])} ({_e(before['mode'] or '-')}): {p50s(before)}"
                    if before else "-"), during]
            if sampled:
                row += [_e("-" if nt["level_before"] is None else nt["level_before"]),
                        ("-" if nt["peak"] is None else
                         f"{nt['peak']} <span class=muted>(+{nt['peak_s_into_fault']:.1f} s)"
                         "</span>"),
                        _nonterminal_recovery(nt)]
            row.append(_e("-" if nt["at_end"] is None else nt["at_end"]))
            rows.append(tuple(row))
        head = ["provider", "from", "to", "s", "flag flips during", "p50 ms before",
                "p50 ms during"]
        if sampled:
            head += ["non-terminal before", "peak (into the fault)", "non-terminal recovery s"]
        head.append("non-terminal at the end")
        out.append(_table(head, rows, num_cols=(3, 7, 8, 9, 10) if sampled else (3, 7)))
        if sampled:
            out.append("<p class=caption>Non-terminal orders (queued, waiting for the provider), "
                       f"{_e(faults[0]['nonterminal']['method'])}.</p>")
        else:
            out.append(f"<p class=caption>Non-terminal orders: "
                       f"{_e(faults[0]['nonterminal']['note'])}.</p>")
    if "nonterminal" in plots:
        out.append("<h3>Orders non-terminal over time</h3>")
        out.append(_img(plots["nonterminal"], "orders non-terminal over time"))
        ns = part(saf, "nonterminal_samples") or {}
        failed = ns.get("failed_requests")
        out.append("<p class=caption>The ledger's <code>orders_nonterminal</code> as the runner "
                   f"sampled it: {_e(ns.get('count', '-'))} samples, one every "
                   f"{_num(ns.get('interval_s'), 2)} s"
                   + (f", {_e(failed)} failed requests" if failed else "")
                   + f"; the largest {_e(ns.get('max', '-'))} at {_e(ns.get('max_at', '-'))}. "
                   "Phases shaded by mode, flips as in the latency plot; a provider fault is "
                   "hatched red (solid line: its start, dash-dot: its end), with its pre-fault "
                   "level (dotted) and the sample where the count was back at it (green).</p>")

    if "estimate_error" in plots:
        out.append("<h3>Margin estimate error by mode</h3>")
        out.append(_img(plots["estimate_error"], "estimate error by mode"))
        out.append("<p class=caption>Drawn from the ledger's quantiles of |estimate error| "
                   "(<code>abs_estimate_error_quantiles_usd</code>: p50, p90, p95, p99, and "
                   "<code>max_abs_estimate_error_usd</code>), not from raw values: the points "
                   "are exact, the lines between them only join them. The estimate error is the "
                   "final margin computed at confirmation minus the margin estimated when the "
                   "order was accepted.</p>")
    elif saf.get("available") and drawn:
        out.append("<p class=muted>No estimate-error quantiles in the ledger (no confirmation "
                   "recorded, or an older service).</p>")
    for note in part(saf, "notes") or []:
        out.append(f"<p class=muted>{_e(note)}</p>")

    if saf.get("available"):
        if "safety" in plots:
            out.append(_img(plots["safety"], "safety ledger"))
            out.append("<p class=caption>The ledger at the end of the run: over-commits by "
                       "mode, and its counts of orders non-terminal, margin releases and double "
                       "releases. <code>orders_total</code> counts every order in the database, "
                       "the seeded open orders included, so it is named under the bars, not "
                       "drawn beside them.</p>")
        rows = []
        for k, v in saf.items():
            if k in ("source", "available", "by_mode", *ADDED) or k.startswith("analysis_"):
                continue
            if isinstance(v, dict):
                v = ", ".join(f"{kk}: {vv}" for kk, vv in v.items())
            rows.append((_e(k), _e(v)))
        body = _table(["ledger field", "value"], rows)
        by_mode = saf.get("by_mode")
        if isinstance(by_mode, dict) and by_mode:
            fields = []
            for v in by_mode.values():
                if isinstance(v, dict):
                    fields += [f for f in v if f not in fields]
            brow = [(_e(mode), *[_e(v.get(f, "-")) if isinstance(v, dict) else "-"
                                 for f in fields]) for mode, v in by_mode.items()]
            body += _table(["mode", *fields], brow, tuple(range(1, len(fields) + 1)))
        out.append("<details><summary>the ledger as the service gave it</summary>" + body
                   + "</details>")
    out.append(f"<p class=muted>per-10k intervals: {_e(part(saf, 'interval_method') or '')}</p>")
    return "\n".join(out)
