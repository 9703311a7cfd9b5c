"""The report's plots, as SVG files in plots/ (matplotlib, Agg backend, text as paths so the
files need no fonts). Time series are drawn from per-bin quantiles of the raw records, not from
every point, so a million records plot as fast as a thousand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODE_COLORS = {"off": "#d9e4f5", "skip": "#fde2c8", "skip_reserve": "#d8f0d2", None: "#eeeeee"}
FLOW_COLORS = {"provider": "#c0392b", "local": "#2471a3"}
PHASE_CYCLE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
# shading for other variant names (a generic target's modes), in the spec's order
MODE_CYCLE = ["#d9e4f5", "#fde2c8", "#d8f0d2", "#ead9f5", "#f5f0c8", "#c8eef5"]
FLOW_CYCLE = ["#c0392b", "#2471a3", "#1e8449", "#7d3c98", "#b9770e", "#17202a"]
# adaptive time bins: about this many records a bin, at most MAX_BINS, at least 1 s wide
TARGET_BIN_RECORDS = 20
MAX_BINS = 600


def mode_color(a, mode) -> str:
    if mode in MODE_COLORS:
        return MODE_COLORS[mode]
    modes = list(a.spec.modes) if a.spec is not None else []
    return MODE_CYCLE[modes.index(mode) % len(MODE_CYCLE)] if mode in modes else "#eeeeee"


def flow_color(flow: str, i: int = 0) -> str:
    return FLOW_COLORS.get(flow, FLOW_CYCLE[i % len(FLOW_CYCLE)])


def bin_count(n: int, span_s: float) -> int:
    """Time bins for n records over span_s seconds: ~TARGET_BIN_RECORDS records a bin (so a
    sparse series still draws its p50/p95 lines), no bin narrower than 1 s, at most MAX_BINS."""
    return int(max(1, min(MAX_BINS, span_s, n // TARGET_BIN_RECORDS)))


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "execbench", "svg.fonttype": "path", "font.size": 9,
                         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100})
    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


MIN_BIN_RECORDS = 3  # a time bin with fewer records has no p50/p95: the line breaks there


def _binned(ts, v, edges):
    """p50 and p95 of v in each time bin (NaN for bins with < MIN_BIN_RECORDS values). The
    records are grouped by bin with a stable sort of the bin index only (none when the times
    come in order, as a log's do); np.quantile of a bin's values in any order is the same
    number as of them sorted."""
    idx = np.searchsorted(edges, ts, side="right") - 1
    if len(idx) > 1 and not (idx[1:] >= idx[:-1]).all():
        order = np.argsort(idx, kind="stable")
        idx, v = idx[order], v[order]
    nb = len(edges) - 1
    bounds = np.searchsorted(idx, np.arange(nb + 1))
    p50 = np.full(nb, np.nan)
    p95 = np.full(nb, np.nan)
    for b in range(nb):
        lo, hi = bounds[b], bounds[b + 1]
        if hi - lo >= MIN_BIN_RECORDS:
            p50[b], p95[b] = np.quantile(v[lo:hi], [0.5, 0.95])
    return p50, p95


def _shade(ax, a, t0):
    for w in a.attribution.windows:
        ax.axvspan(w.start - t0, w.end - t0, color=mode_color(a, w.mode), alpha=0.6,
                   lw=0, zorder=0)
        if w.flip_requested is not None:
            ax.axvline(w.flip_requested - t0, color="k", lw=1.2, zorder=3)
        if w.flip_applied is not None:
            ax.axvline(w.flip_applied - t0, color="k", lw=0.8, ls="--", zorder=3)


def latency_over_time(a, path: Path) -> Path | None:
    plt = _plt()
    t = a.timings
    ts = t.times["ts"]
    metric = a.primary
    vals = t.floats[metric]
    ok = (t.cats["status"] == t.code("status", "success")) & ~np.isnan(ts) & ~np.isnan(vals)
    if not ok.any():
        return None
    windows = a.attribution.windows
    t0 = min([w.start for w in windows] + [float(np.nanmin(ts[ok]))])
    t1 = max([w.end for w in windows] + [float(np.nanmax(ts[ok]))])
    span = max(t1 - t0, 1e-3)
    flows = [f for f in a.flows() if (ok & (t.cats["flow"] == t.code("flow", f))).any()]
    fig, axes = plt.subplots(len(flows), 1, figsize=(11, 2.6 * len(flows) + 0.6), sharex=True,
                             squeeze=False)
    rng = np.random.default_rng(0)
    widths = []
    for i, (ax, flow) in enumerate(zip(axes[:, 0], flows)):
        m = ok & (t.cats["flow"] == t.code("flow", flow))
        x, y = ts[m], vals[m]
        # each flow its own bins: a quiet flow gets wider ones, so its lines stay drawn
        nbins = bin_count(len(x), span)
        edges = np.linspace(t0, t1 + 1e-6, nbins + 1)
        mids = (edges[:-1] + edges[1:]) / 2 - t0
        widths.append(f"{flow} {span / nbins:.2f} s")
        colour = flow_color(flow, i)
        _shade(ax, a, t0)
        if len(x) > 4000:
            pick = rng.choice(len(x), 4000, replace=False)
            xs, ys = x[pick], y[pick]
        else:
            xs, ys = x, y
        ax.scatter(xs - t0, ys, s=2 if len(x) > 500 else 6, color=colour,
                   alpha=0.15 if len(x) > 500 else 0.5, lw=0, zorder=1, rasterized=False)
        p50, p95 = _binned(x, y, edges)
        marker = "o" if nbins <= 40 else None  # few bins: each point visible
        ax.plot(mids, p50, color=colour, lw=1.6, marker=marker, ms=3,
                label=f"p50 per {span / nbins:.3g} s bin", zorder=2)
        ax.plot(mids, p95, color=colour, lw=0.9, ls=":", marker=marker, ms=2,
                label=f"p95 per {span / nbins:.3g} s bin", zorder=2)
        ax.set_ylabel(f"{flow}\n{metric}")
        top = np.nanpercentile(y, 99.5) if len(y) else 1
        ax.set_ylim(0, top * 1.1)
        for w in windows:
            frac = (w.end - w.start) / span
            if frac < 0.03:
                continue  # too narrow for a label; the shading still shows the mode
            label = f"{w.name} ({w.mode or '-'})" if frac > 0.12 else w.name
            ax.text((w.start + w.end) / 2 - t0, top * 1.05, label, ha="center", va="top",
                    fontsize=8 if frac > 0.12 else 6, rotation=0 if frac > 0.08 else 90)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel(f"seconds since {windows[0].name if windows else 'start'} "
                           f"(bins: {', '.join(widths)}; no line where a bin has < "
                           f"{MIN_BIN_RECORDS} records; solid line: flip requested, "
                           "dashed: applied)")
    fig.suptitle(f"{metric} over time by flow (phases shaded by mode)")
    return _save(fig, path)


def cdfs(a, path: Path) -> Path | None:
    phases = a.unit_names()
    flows = [f for f in a.flows() if any(len(a.values(ph, f)) for ph in phases)]
    if not flows:
        return None
    plt = _plt()
    cols = min(len(flows), 3)
    rows = -(-len(flows) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.8 * rows), squeeze=False)
    probs = np.linspace(0, 1, 801)
    for ax in axes.flat[len(flows):]:
        ax.set_visible(False)
    for ax, flow in zip(axes.flat, flows):
        for i, ph in enumerate(phases):
            v = a.values(ph, flow)
            if len(v) == 0:
                continue
            q = np.quantile(v, probs)
            ax.plot(q, probs, color=PHASE_CYCLE[i % len(PHASE_CYCLE)], lw=1.5,
                    label=f"{ph} ({a.mode_of(ph) or '-'}), n={len(v)}")
        ax.set_title(f"{flow} flow: CDF of {a.primary}")
        ax.set_xlabel(a.primary)
        ax.set_ylabel("fraction of orders")
        for y in (0.5, 0.95, 0.99):
            ax.axhline(y, color="grey", lw=0.5, ls=":")
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def stages(a, path: Path) -> Path | None:
    """The timing log's stage breakdown (none for a run without a timing log, or a log that
    reports no stage)."""
    from execbench.contract import STAGES

    if a.client_only or not any(s in a.metrics() for s in STAGES):
        return None
    plt = _plt()
    # stage by stage (a stage's column read once: the DuckDB engine keeps them on disk)
    cells = [(ph, flow, m) for ph in a.unit_names() for flow in a.flows()
             if (m := a.mask(ph, flow)).any()]
    means = [[] for _ in cells]
    for s in STAGES:
        col = a.timings.floats[s]
        for row, (_, _, m) in zip(means, cells):
            v = col[m]
            v = v[~np.isnan(v)]
            row.append(float(v.mean()) if len(v) else 0.0)
    col = a.timings.floats["executor_ms"]
    rows = [(f"{ph} ({a.mode_of(ph) or '-'}) / {flow}", row, float(col[m].mean()))
            for (ph, flow, m), row in zip(cells, means)]
    fig, ax = plt.subplots(figsize=(11, 0.45 * max(len(rows), 2) + 1.4))
    cmap = plt.get_cmap("tab10")
    labels = [r[0] for r in rows]
    left = np.zeros(len(rows))
    for j, s in enumerate(STAGES):
        vals = np.array([r[1][j] for r in rows])
        ax.barh(labels, vals, left=left, color=cmap(j), label=s)
        left += vals
    other = np.array([max(r[2] - sum(r[1]), 0) for r in rows])
    ax.barh(labels, other, left=left, color="#cccccc", label="other (executor - stages)")
    ax.invert_yaxis()
    ax.set_xlabel("mean ms per order (stages stacked; the bar's end is mean executor_ms)")
    ax.set_title("stage breakdown per phase (mode) and flow")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return _save(fig, path)


def _estimate_errors(ledger: dict) -> tuple[dict, dict]:
    """What the ledger says about the margin estimate, per mode: samples (lists of numbers under
    an `estimate` key: drawn as a distribution) and summaries (numbers under `estimate`/`usd`
    keys, nested dicts such as quantiles flattened). Reads `by_mode` (the service's ledger) or
    top-level `*estimate*` objects keyed by mode."""
    samples: dict[str, np.ndarray] = {}
    summaries: dict[str, dict[str, float]] = {}

    def walk(mode, d, prefix=""):
        for k, v in d.items():
            name = f"{prefix}{k}"
            if k == "abs_estimate_error_quantiles_usd":
                continue  # drawn on its own (`estimate_error`), and its count is not USD
            relevant = "estimate" in name or "usd" in name
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)) and relevant:
                summaries.setdefault(mode, {})[name.replace("_usd", "")] = float(v)
            elif isinstance(v, list) and "estimate" in name and v and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                samples[mode] = np.asarray(v, dtype=float)
            elif isinstance(v, dict):
                walk(mode, v, name + " ")

    led = ledger or {}
    if isinstance(led.get("by_mode"), dict):
        for mode, v in led["by_mode"].items():
            if isinstance(v, dict):
                walk(mode, v)
    for key, val in led.items():
        if "estimate" in key and isinstance(val, dict):
            for mode, v in val.items():
                if isinstance(v, dict):
                    walk(mode, v, key + " ")
                elif isinstance(v, list):
                    walk(mode, {key: v})
    return samples, summaries


def safety(a, path: Path) -> Path | None:
    led = a.ledger
    if not led:
        return None
    plt = _plt()
    samples, summaries = _estimate_errors(led)
    third = bool(samples or summaries)
    fig, axes = plt.subplots(1, 3 if third else 2, figsize=(12, 3.4), squeeze=False)
    ax = axes[0, 0]
    oc = led.get("overcommits") or {}
    modes = list(oc) or ["off", "skip", "skip_reserve"]
    vals = [float(oc.get(m, 0) or 0) for m in modes]
    ax.set_title("over-commits by mode")
    if not any(vals):
        # nothing to draw: an empty 0-1 chart reads as a missing figure
        ax.axis("off")
        ax.text(0.5, 0.5, "none observed\n(0 in " + ", ".join(modes) + ")", ha="center",
                va="center", transform=ax.transAxes, fontsize=11)
    else:
        bars = ax.bar(modes, vals, color=[mode_color(a, m) for m in modes], edgecolor="k")
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v, f"{v:g}", ha="center", va="bottom")
        ax.set_ylim(0, max(vals) * 1.25)
    ax = axes[0, 1]
    # orders_total (every order in the database, the seeded open orders included) would dwarf
    # the counts that matter here: it is named under the axis instead
    keys = ["orders_nonterminal", "releases_total", "double_releases"]
    kv = [(k, float(led[k])) for k in keys if isinstance(led.get(k), (int, float))]
    if kv:
        bars = ax.barh([k for k, _ in kv], [v for _, v in kv], color="#9ab")
        for b, (_, v) in zip(bars, kv):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:g}", va="center")
    res = led.get("reserved_vs_open_residual_usd")
    total = led.get("orders_total")
    ax.set_title("ledger" + (f" (residual {res:.2f} USD)" if isinstance(res, (int, float)) else ""))
    if isinstance(total, (int, float)) and not isinstance(total, bool):
        ax.set_xlabel(f"orders_total {total:,.0f} incl. seeded (not drawn)", fontsize=7)
    if third:
        ax = axes[0, 2]
        if samples:
            for i, (mode, v) in enumerate(samples.items()):
                ax.hist(v, bins=40, alpha=0.6, label=f"{mode} (n={len(v)})",
                        color=MODE_COLORS.get(mode, PHASE_CYCLE[i % 7]), edgecolor="k", lw=0.3)
            ax.set_xlabel("estimate error (USD)")
            ax.set_title("margin estimate error distribution")
        else:
            names = []
            for d in summaries.values():
                names += [k for k in d if k not in names]
            width = 0.8 / max(len(summaries), 1)
            for i, (mode, d) in enumerate(summaries.items()):
                xs = np.arange(len(names)) + (i - (len(summaries) - 1) / 2) * width
                ax.bar(xs, [d.get(k, np.nan) for k in names], width=width, label=mode,
                       color=MODE_COLORS.get(mode, PHASE_CYCLE[i % 7]), edgecolor="k")
            ax.set_xticks(np.arange(len(names)), [k.replace("_", " ") for k in names],
                          rotation=20, ha="right", fontsize=7)
            ax.set_title("margin estimate error and over-commit (USD)")
        ax.legend(fontsize=7)
    fig.suptitle("safety ledger at the end of the run", y=1.04)
    return _save(fig, path)


def estimate_error(a, path: Path) -> Path | None:
    """|estimate error| per mode drawn from the ledger's quantiles (p50, p90, p95, p99 and the
    maximum): the service reports no raw values, so this is the quantile function at those
    levels, not a histogram."""
    from .safety import part

    modes = {m: v["abs_estimate_error_usd"] for m, v in
             (part(a.summary.get("safety") or {}, "modes") or {}).items()
             if v.get("abs_estimate_error_usd")}
    if not modes:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    # evenly spaced: the tail levels are the interesting ones and would crowd on a linear axis
    levels = [("p50", 0), ("p90", 1), ("p95", 2), ("p99", 3), ("max", 4)]
    top = 0.0
    for i, (mode, q) in enumerate(modes.items()):
        pts = [(x, q[k]) for k, x in levels if q.get(k) is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        colour = {"off": "#2471a3", "skip": "#d35400", "skip_reserve": "#1e8449"}.get(
            mode, PHASE_CYCLE[i % len(PHASE_CYCLE)])
        ax.plot(xs, ys, marker="o", color=colour, lw=1.6,
                label=f"{mode} (n={q.get('count') if q.get('count') is not None else '?'})")
        for x, y in pts:
            ax.annotate(f"{y:,.0f}" if y >= 100 else f"{y:.2f}", (x, y), fontsize=7,
                        textcoords="offset points", xytext=(3, 4), color=colour)
        top = max(top, *ys)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(0, max(top, 1.0) * 3)
    ax.set_xticks([x for _, x in levels], [k for k, _ in levels])
    ax.set_xlim(-0.3, 4.6)
    ax.set_xlabel("quantile of |estimate error| (evenly spaced levels; max: the largest)")
    ax.set_ylabel("|estimate error| USD (symlog)")
    ax.set_title("margin estimate error by mode, from the ledger's quantiles")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def recovery(a, path: Path) -> Path | None:
    flips = [f for f in a.summary.get("flips", [])
             if any(r.get("resolvable") is not False for r in f["flows"].values())]
    if not flips:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(flips), figsize=(min(11, 4 * len(flips) + 1), 3.2),
                             squeeze=False)
    for ax, f in zip(axes[0], flips):
        for i, (flow, r) in enumerate(f["flows"].items()):
            if r.get("resolvable") is False:
                continue  # too sparse for the method: the table says so
            x = np.array(r["series"]["t"], dtype=float)
            y = np.array([np.nan if v is None else v for v in r["series"]["p50"]], dtype=float)
            c = flow_color(flow, i)
            ax.plot(x, y, color=c, lw=1.3, label=f"{flow} rolling p50")
            band = r["target_p50"] * r["tolerance_pct"] / 100
            ax.axhspan(r["target_p50"] - band, r["target_p50"] + band, color=c, alpha=0.12)
            if r["recovery_s"] is not None:
                ax.axvline(r["recovery_s"], color=c, ls="--", lw=1)
        ax.axvline(0, color="k", lw=1.2)
        ax.set_title(f"into {f['phase']} ({f['mode'] or 'deploy'})")
        ax.set_xlabel("seconds after the flip")
        ax.set_ylabel(a.primary)
        ax.legend(fontsize=7)
    fig.suptitle("recovery after each flip (band: target p50 +- tolerance; dashed: recovered)",
                 y=1.04)
    return _save(fig, path)


def nonterminal(a, path: Path) -> Path | None:
    """Orders non-terminal over time from the runner's ledger samples: phases shaded by mode,
    flips marked as in the latency plot, each provider fault hatched in red with its pre-fault
    level, its recovery threshold, its peak and the moment the count was back under it."""
    from .ingest import _parse_one_time
    from .safety import part

    samples = a.ledger_samples
    if samples is None:
        return None
    plt = _plt()
    ts, n = samples["ts"], samples["orders_nonterminal"]
    windows = a.attribution.windows
    t0 = windows[0].start if windows else float(ts[0])
    fig, ax = plt.subplots(figsize=(11, 3.2))
    _shade(ax, a, t0)
    ax.step(ts - t0, n, where="post", color="#7d3c98", lw=1.4, zorder=2,
            label="orders non-terminal (ledger samples)")
    ax.plot(ts - t0, n, ".", color="#7d3c98", ms=2.5, zorder=2)
    top = max(float(n.max()), 1.0)
    x_end = max([float(ts[-1])] + [w.end for w in windows]) - t0
    for i, ep in enumerate(part(a.summary.get("safety") or {}, "provider_faults") or []):
        start = _parse_one_time(ep["started_at"]) - t0
        end = _parse_one_time(ep["ended_at"]) - t0 if ep["ended_at"] else x_end
        label = f"provider {ep['settings']}" if i == 0 else None
        ax.axvspan(start, end, facecolor="none", edgecolor="#c0392b", hatch="///", lw=0,
                   alpha=0.5, zorder=1, label=label)
        ax.axvline(start, color="#c0392b", lw=1.2, zorder=3)
        if ep["ended_at"]:
            ax.axvline(end, color="#c0392b", lw=1.2, ls="-.", zorder=3)
        nt = ep.get("nonterminal") or {}
        if nt.get("peak") is not None:
            px = _parse_one_time(nt["peak_at"]) - t0
            ax.annotate(f"peak {nt['peak']}", (px, nt["peak"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color="#7d3c98")
        # older summaries have no threshold: the level itself was the threshold then
        threshold = nt.get("threshold", nt.get("level_before"))
        if nt.get("level_before") is not None:
            stop = end + (nt["recovery_s"] if nt.get("recovery_s") is not None else 0)
            ax.hlines(nt["level_before"], start - a.settings.nonterminal_baseline_s, stop,
                      colors="#555", linestyles=":", lw=1, zorder=3,
                      label="pre-fault level" if i == 0 else None)
            if threshold != nt["level_before"]:
                ax.hlines(threshold, start - a.settings.nonterminal_baseline_s, stop,
                          colors="#1e8449", linestyles=":", lw=1, zorder=3,
                          label="recovery threshold (level + tolerance)" if i == 0 else None)
        if nt.get("recovery_s") is not None:
            rx = end + nt["recovery_s"]
            ax.plot([rx], [threshold], "v", color="#1e8449", ms=7, zorder=4)
            ax.annotate(f"recovered +{nt['recovery_s']:.1f} s",
                        (rx, threshold), textcoords="offset points", xytext=(6, 8),
                        fontsize=7, color="#1e8449")
    ax.set_ylim(0, top * 1.2 + 1)
    ax.set_ylabel("orders non-terminal")
    ax.set_xlabel(f"seconds since {windows[0].name if windows else 'the first sample'} "
                  "(phases shaded by mode; black: flips; red: provider fault start, dash-dot: "
                  "its end)")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title("orders not yet terminal (queued for the provider) over the run")
    return _save(fig, path)


def waterfall(a, path: Path) -> Path | None:
    """The latency plan's attribution (summary `latency_plan`): from the all-off total p50, one
    bar per step (its main effect, whisker: its 95% interval), the rest (interactions, and a
    quantile of a sum not being the sum of the effects), to the measured all-on total; the note's
    range of each step drawn beside its bar."""
    lp = a.summary.get("latency_plan") or {}
    p50 = (lp.get("metrics") or {}).get("total_ms", {}).get("p50") or {}
    w = p50.get("waterfall")
    if not w:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    labels = ["all off"] + [s["factor"] for s in w["steps"]] + ["rest", "all on"]
    level = w["start"]
    ax.bar(0, level, color="#888888", width=0.6)
    ax.text(0, level, f"{level:.1f}", ha="center", va="bottom", fontsize=8)
    expected = lp.get("expected") or {}
    for i, step in enumerate(w["steps"], start=1):
        v = step["value"]
        color = "#2e7d32" if v < 0 else "#c62828"
        ax.bar(i, v, bottom=level, color=color, width=0.6)
        top = level + v
        err = [[v - step["ci_low"]], [step["ci_high"] - v]] if step.get("ci_low") is not None else None
        if err is not None:
            ax.errorbar(i, top, yerr=err, color="black", capsize=4, lw=1)
        rng = expected.get(step["factor"])
        if rng:
            ax.plot([i + 0.36, i + 0.36], [level + rng[0], level + rng[1]], color="#1565c0", lw=4,
                    alpha=0.6, solid_capstyle="butt", label="the note's range" if i == 1 else None)
        ax.text(i, max(level, top), f"{v:+.1f}", ha="center", va="bottom", fontsize=8)
        level = top
    n = len(w["steps"]) + 1
    ax.bar(n, w["rest"], bottom=level, color="#bbbbbb", width=0.6, hatch="//")
    ax.text(n, max(level, level + w["rest"]), f"{w['rest']:+.1f}", ha="center", va="bottom",
            fontsize=8)
    ax.bar(n + 1, w["end"], color="#555555", width=0.6)
    ax.text(n + 1, w["end"], f"{w['end']:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_ylabel("total order latency p50 (gateway total_ms), ms")
    ax.set_title("what each step of the plan saves: main effects from all off to all on")
    if expected:
        ax.legend(loc="upper right", fontsize=7)
    return _save(fig, path)


PLOTS = (("latency_over_time", latency_over_time), ("cdf", cdfs), ("stages", stages),
         ("recovery", recovery), ("safety", safety), ("estimate_error", estimate_error),
         ("nonterminal", nonterminal), ("waterfall", waterfall))
_FORKED: tuple | None = None  # (analysis, plots_dir) a forked worker draws from


def _draw(name: str, a, plots_dir: Path) -> tuple[str, Path | None, str | None]:
    try:
        return name, dict(PLOTS)[name](a, plots_dir / f"{name}.svg"), None
    except Exception as exc:  # noqa: BLE001 - reported, see make_plots
        import matplotlib.pyplot as plt

        plt.close("all")
        return name, None, f"plot {name} failed: {type(exc).__name__}: {exc}"


def _plain_signals() -> None:
    """A forked worker leaves signals to its parent: it inherits the caller's handlers (the
    demo turns SIGTERM into an exception, which printed a traceback from every worker the pool
    stopped), and Ctrl-C is the parent's to handle."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _draw_forked(name: str) -> tuple[str, Path | None, str | None]:
    return _draw(name, *_FORKED)


def plot_workers() -> int:
    """Processes to draw with: EXECBENCH_PLOT_WORKERS, else one per usable CPU not already busy
    (by the 1-minute load average, this process's own CPU counted free; on a loaded machine
    forked workers only add their start-up), at most one a plot; 1 where fork is unavailable
    or threads run (a fork would copy their locks)."""
    import multiprocessing
    import os
    import threading

    env = os.environ.get("EXECBENCH_PLOT_WORKERS", "").strip()
    if env.isdigit():
        n = int(env)
    else:
        cpus = len(os.sched_getaffinity(0))
        n = min(cpus, int(cpus - os.getloadavg()[0]) + 1)
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    return max(1, min(n, len(PLOTS)))


def make_plots(a, plots_dir: Path, errors: list[str] | None = None, *,
               workers: int | None = None) -> dict[str, Path]:
    """Every plot; one that fails is reported in `errors` (and the report), never fatal: the
    verdict and summary.json do not depend on a picture. Drawn in `workers` forked processes
    (default `plot_workers()`): each figure is independent and savefig is most of a quick
    report's time; the files are the same bytes either way (hash salt fixed, no date)."""
    global _FORKED
    plots_dir.mkdir(parents=True, exist_ok=True)
    names = [name for name, _ in PLOTS]
    workers = plot_workers() if workers is None else workers
    results = None
    if workers > 1:
        import multiprocessing

        _plt()  # imported once here, shared by the forked workers
        _FORKED = (a, plots_dir)
        try:
            with multiprocessing.get_context("fork").Pool(min(workers, len(names)),
                                                          initializer=_plain_signals) as pool:
                results = pool.map(_draw_forked, names, chunksize=1)
                pool.close()  # let the workers exit on their own: the pool's exit terminates
                pool.join()
        except OSError:
            results = None  # no fork here (limits): draw them in this process
        finally:
            _FORKED = None
    if results is None:
        results = [_draw(name, a, plots_dir) for name in names]
    out: dict[str, Path] = {}
    for name, path, error in results:
        if error is not None and errors is not None:
            errors.append(error)
        if path:
            out[name] = path
    return out
