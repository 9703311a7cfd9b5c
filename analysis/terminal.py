"""The terminal view of a summary (rich tables): latency per phase and flow, the comparisons,
the checks with PASS/FAIL, the findings and the verdict."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from execbench.console import make_console

from .latency_plan import effect_text, significant_interactions, step_rows
from .recovery import recovery_text


def _ci(q: dict | None) -> str:
    if not q or q.get("value") is None:
        return "-"
    if q.get("ci_low") is None and q.get("ci_high") is None:
        return f"{q['value']:.1f}"
    # a missing bound: too few records for it at 95% (shown as -, never invented)
    lo, hi = (("-" if v is None else f"{v:.1f}") for v in (q.get("ci_low"), q.get("ci_high")))
    return f"{q['value']:.1f} [{lo}, {hi}]"


def shown_metrics(summary: dict) -> list[str]:
    """The metrics the latency table shows: the timing log's executor_ms, or for a run without
    one every metric it has (the client's latencies and each server metric)."""
    primary = summary.get("primary_metric", "executor_ms")
    if summary.get("client_only"):
        return summary.get("metrics") or [primary]
    return [primary]


def latency_table(summary: dict, title: str | None = None) -> Table:
    metrics = shown_metrics(summary)
    many = len(metrics) > 1
    if title is None:
        title = (f"{metrics[0]} by phase and flow" if not many else
                 "latency by phase, flow and metric (client records: no server timing log)")
    t = Table(title=title, title_justify="left")
    cols = ("phase", "mode", "flow", *(("metric",) if many else ()), "n", "mean",
            "p50 [95% CI]", "p95", "p99")
    for col in cols:
        if col in ("phase", "mode", "flow", "metric"):
            t.add_column(col, no_wrap=True)  # the row's key: the numbers wrap before it is cut
        else:
            t.add_column(col, justify="right")
    for phase, flows in summary["phases"].items():
        mode = summary["phase_info"][phase]["mode"] or "-"
        for flow, per_metric in flows.items():
            for metric in metrics:
                m = per_metric.get(metric)
                if not m:
                    continue
                t.add_row(phase, mode, flow, *((metric,) if many else ()), str(m["count"]),
                          f"{m['mean']:.1f}", _ci(m["p50"]), f"{m['p95']['value']:.1f}",
                          f"{m['p99']['value']:.1f}")
    return t


def late_sends_line(summary: dict) -> str | None:
    """One line: the generator's late sends per phase, with the largest lateness. None when
    the run has no client records (a production log)."""
    info = {ph: i for ph, i in summary["phase_info"].items() if not i.get("pooled_from")}
    entries = {ph: i.get("late_sends") for ph, i in info.items() if i.get("late_sends")}
    if not entries:
        return None
    if all(e["count"] is None for e in entries.values()):
        return "late sends: not recorded (requests.jsonl has no `late` field)"
    threshold = next((e["late_ms"] for e in entries.values() if e.get("late_ms") is not None),
                     None)
    parts = []
    for ph, e in entries.items():
        count = "?" if e["count"] is None else str(e["count"])
        if e["count"] and info[ph].get("analysed"):
            count = f"[bold yellow]{count}[/]"
        worst = ("" if e["max_lateness_ms"] is None
                 else f" (max {e['max_lateness_ms']:.1f} ms late)")
        parts.append(f"{ph} {count}/{e['requests']}{worst}")
    head = "late sends" + (f" (sent > {threshold:g} ms after the intended time)"
                           if threshold is not None else "")
    return f"{head}: {', '.join(parts)}"


def comparison_table(summary: dict) -> Table:
    metrics = shown_metrics(summary)
    many = len(metrics) > 1
    t = Table(title=f"shifts vs the reference ({', '.join(metrics)}; Hodges-Lehmann, "
                    "Mann-Whitney, ratio of medians)", title_justify="left")
    for col in ("comparison", "flow", *(("metric",) if many else ()), "p50 ref -> phase",
                "HL shift [95% CI]", "shift %", "MWU p", "equivalent (margin)"):
        t.add_column(col, no_wrap=col in ("flow", "metric"))
    rows = [(c, flow, metric, res[metric]) for c in summary["comparisons"]
            for flow, res in c["flows"].items() for metric in metrics if metric in res]
    for c, flow, metric, r in rows:
        if not r.get("usable"):
            continue
        s = r["shift_ms"]
        eq = r.get("equivalence") or {}
        mw = r.get("mann_whitney") or {}
        # "baseline -> rollback", not the name "baseline->rollback": a narrow table wraps it
        # at the arrow instead of cutting off the phase that tells the rows apart
        t.add_row(
            f"{c['ref']} -> {c['phase']}", flow, *((metric,) if many else ()),
            f"{r['ref_p50']:.1f} -> {r['p50']:.1f}",
            f"{s['value']:+.1f} [{s['ci_low']:+.1f}, {s['ci_high']:+.1f}]",
            f"{r['shift_pct']['value']:+.1f}%" if r["shift_pct"]["value"] is not None else "-",
            f"{mw.get('p', float('nan')):.2g}",
            (f"{eq['verdict'].replace('inconclusive', 'undecided')} "
             f"(+-{eq.get('margin_pct', 0):g}%)") if eq else "-")
    return t


def checks_table(summary: dict) -> Table:
    t = Table(title="checks", title_justify="left")
    t.add_column("")
    t.add_column("check")
    t.add_column("observed")
    t.add_column("expected")
    for c in summary["checks"]:
        observed = str(c["observed"]) + (f" [yellow]({c['why']})[/]" if c.get("why") else "")
        t.add_row(VERDICT_MARKS[c["verdict"]], c["name"], observed, str(c["expected"]))
    return t


VERDICT_MARKS = {"pass": "[bold green]PASS[/]", "fail": "[bold red]FAIL[/]",
                 "inconclusive": "[bold yellow]INCONCLUSIVE[/]"}


def verdict_line(summary: dict) -> str:
    """`verdict: FAIL (9 passed, 1 failed, 2 inconclusive of 12 checks)`."""
    counts = {v: sum(1 for c in summary["checks"] if c["verdict"] == v) for v in VERDICT_MARKS}
    parts = [f"{counts['pass']} passed"] + [f"{counts[v]} {'failed' if v == 'fail' else v}"
                                            for v in ("fail", "inconclusive") if counts[v]]
    return (f"verdict: {VERDICT_MARKS[summary['verdict']]} ({', '.join(parts)} of "
            f"{len(summary['checks'])} checks)")


def safety_block(summary: dict) -> list:
    """The short safety block: over-commits per 10k provider orders per mode (a table), then the
    residual, non-terminal orders and double releases (one line). Without a ledger: one line."""
    from .safety import part

    saf = summary.get("safety") or {}
    if not saf.get("available") and summary.get("pack") == "generic":
        return ["safety: no ledger expected (not the reference service)"]
    if not saf.get("available"):
        return ["safety: [yellow]no ledger[/] (over-commits, releases, lost orders not verified)"]
    t = Table(title="safety: over-commits by mode (ledger)", title_justify="left")
    for col in ("mode", "over-commits", "orders", "per 10k [95% CI]", "max USD"):
        t.add_column(col, justify="left" if col == "mode" else "right")
    for mode, m in (part(saf, "modes") or {}).items():
        r = m.get("per_10k") or {}
        k = m.get("overcommits")
        if r.get("value") is None:
            rate = "-"
        elif r.get("ci_low") is None:
            rate = f"{r['value']:.1f}"
        else:
            rate = f"{r['value']:.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]"
        ks = "-" if k is None else str(k)
        if m.get("passed") is False:
            ks = f"[bold red]{ks}[/]"
        usd = m.get("max_overcommit_usd")
        t.add_row(mode if m.get("ran") else f"{mode} (not run)", ks,
                  str(m.get("provider_orders", "-")), rate, "-" if usd is None else f"{usd:,.2f}")
    rec = part(saf, "reconciliation") or {}

    def val(key, fmt="{}"):
        r = rec.get(key) or {}
        if r.get("value") is None:
            return "-"
        txt = fmt.format(r["value"])
        return f"[bold red]{txt}[/]" if r.get("passed") is False else txt

    line = (f"safety: residual {val('residual_usd', '{:.2f}')} USD, non-terminal "
            f"{val('nonterminal')}, double releases {val('double_releases')}, releases "
            f"{val('releases_total')}")
    return [t, line, *nonterminal_lines(saf)]


def nonterminal_lines(saf: dict) -> list[str]:
    """One line per provider fault with the non-terminal peak and recovery, when the run has
    ledger samples (none otherwise: an older run prints what it always printed)."""
    from .safety import part

    if part(saf, "nonterminal_samples") is None:
        return []
    out = []
    for ep in part(saf, "provider_faults") or []:
        nt = ep.get("nonterminal") or {}
        if nt.get("peak") is None:
            out.append(f"provider {ep['settings']}: non-terminal not measured ({nt.get('note')})")
            continue
        text = (f"provider {ep['settings']}: non-terminal peak {nt['peak']} "
                f"(+{nt['peak_s_into_fault']:.1f} s into the fault), ")
        if nt.get("recovery_s") is not None:
            text += (f"back to the pre-fault level ({nt['level_before']}, recovered at <= "
                     f"{nt.get('threshold', nt['level_before'])}) "
                     f"{nt['recovery_s']:.1f} s after it ended")
        else:
            text += f"[yellow]recovery not measured[/]: {nt.get('note')}"
        out.append(text)
    return out


def latency_plan_table(lp: dict) -> Table:
    """Each step's main effect (ms; negative: a saving) on total and executor latency, p50 and
    p95, beside the note's range for the total and the finding."""
    t = Table(title=f"latency plan: what each step is worth (main effects, ms, 95% CI over "
                    f"{lp['blocks']} blocks; {lp['records']} orders)", title_justify="left")
    t.add_column("step", no_wrap=True)
    for col in ("total p50", "alone: total p50", "total p95", "executor p50", "executor p95",
                "note's range"):
        t.add_column(col, justify="right")
    t.add_column("finding (main / alone)", no_wrap=True)
    for row in step_rows(lp):
        t.add_row(*row)
    return t


def latency_plan_lines(lp: dict) -> list[str]:
    out = []
    for metric, label in (("total_ms", "total (gateway)"), ("executor_ms", "executor_ms")):
        p50 = lp["metrics"].get(metric, {}).get("p50", {})
        if p50.get("all_off") and p50.get("all_on"):
            w = p50.get("waterfall") or {}
            out.append(f"{label} p50: all off {_ci(p50['all_off'])} -> all on {_ci(p50['all_on'])} ms"
                       + (f"; the steps' main effects sum to {sum(s['value'] for s in w['steps']):+.1f}, "
                          f"interactions and the rest {w['rest']:+.1f}" if w else ""))
    client = lp.get("client_total_ms") or {}
    if client.get("all off") and client.get("all on"):
        out.append(f"client-measured total p50: all off {_ci(client['all off']['p50'])} -> all on "
                   f"{_ci(client['all on']['p50'])} ms (the note: 296 -> 200-240 after Step 1)")
    inter = significant_interactions(lp)
    if inter:
        out.append("interactions on total p50 whose interval excludes 0: " + ", ".join(
            f"{name} {effect_text(e)}" for name, e in inter))
    p50 = lp["metrics"].get("total_ms", {}).get("p50", {})
    if p50.get("interval_method"):
        out.append(f"intervals: {p50['interval_method']}")
    return out


def seconds(s: float) -> str:
    """A short time as people read it: milliseconds under a second ("5 ms", not "0.01 s")."""
    return f"{s * 1000:.0f} ms" if abs(s) < 1 else f"{s:.2f} s"


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or make_console()
    if summary.get("client_only"):
        from .core import CLIENT_ONLY_NOTE

        console.print(f"[yellow]{CLIENT_ONLY_NOTE}[/]", highlight=False)
    console.print(latency_table(summary))
    late = late_sends_line(summary)
    if late:
        console.print(late, highlight=False)
    if summary["comparisons"]:
        console.print(comparison_table(summary))
    for f in summary["flips"]:
        parts = []
        for flow, r in f["flows"].items():
            text = recovery_text(r)
            parts.append(f"{flow} {text}{' s' if text[:1].isdigit() or text[:1] == '<' else ''}")
        lag = f", applied after {seconds(f['apply_lag_s'])}" if f.get("apply_lag_s") is not None \
            else ""
        console.print(f"flip into [bold]{f['phase']}[/] ({f['mode'] or 'deploy'}{lag}): "
                      f"recovery {', '.join(parts) or 'n/a'}")
    for item in safety_block(summary):
        console.print(item)
    if summary.get("latency_plan"):
        console.print(latency_plan_table(summary["latency_plan"]))
        for line in latency_plan_lines(summary["latency_plan"]):
            console.print(line, highlight=False)
    console.print(checks_table(summary))
    for f in summary["findings"]:
        console.print(f"[yellow]finding[/] {f['name']}: {f['observed']} ({f['note']})")
    console.print(verdict_line(summary))
