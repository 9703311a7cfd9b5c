"""Small constructors shared by the dashboard modules, on top of grafana-foundation-sdk.

Every panel gets a title, a description, a unit and the one fixed Prometheus datasource; every
query is a Prometheus dataquery with an explicit refId and legend, so the JSON is stable across
builds (the `--check` mode compares it byte for byte).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, heatmap, stat, statetimeline, timeseries
from grafana_foundation_sdk.builders import common as gcommon
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.models import common as mcommon
from grafana_foundation_sdk.models import dashboard as mdash
from grafana_foundation_sdk.models import heatmap as mheatmap
from grafana_foundation_sdk.models import prometheus as mprom

from dashboards.promql import ALL, DATASOURCE_TYPE, DATASOURCE_UID, FLOWS, MODES

DATASOURCE = mdash.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
GRAFANA_DATASOURCE = mdash.DataSourceRef(type_val="grafana", uid="-- Grafana --")

# Colours that stay the same for a mode on every panel, so "skip" is always the same line.
MODE_COLOURS = {"off": "blue", "skip": "orange", "skip_reserve": "green"}

# Tags `execbench annotate` puts on every annotation it posts.
ANNOTATION_TAG = "execbench"


def query(expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False,
          fmt: mprom.PromQueryFormat | None = None) -> gprom.Dataquery:
    q = gprom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    q = q.instant() if instant else q.range()
    if fmt is not None:
        q = q.format(fmt)
    return q


def ts(title: str, description: str, unit: str, *targets: gprom.Dataquery, stacked: bool = False,
       width: int = 12, height: int = 8, min_zero: bool = True) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(40 if stacked else 10)
        .legend(
            gcommon.VizLegendOptions()
            .show_legend(True)
            .display_mode(mcommon.LegendDisplayMode.TABLE)
            .placement(mcommon.LegendPlacement.BOTTOM)
            .calcs(["mean", "lastNotNull", "max"])
        )
        .tooltip(gcommon.VizTooltipOptions().mode(mcommon.TooltipDisplayMode.MULTI))
    )
    if min_zero:
        panel = panel.min(0)
    if stacked:
        panel = panel.stacking(gcommon.StackingConfig().mode(mcommon.StackingMode.NORMAL))
    for target in targets:
        panel = panel.with_target(target)
    return panel


def single_stat(title: str, description: str, unit: str, *targets: gprom.Dataquery,
                width: int = 6, height: int = 5, decimals: int = 1,
                thresholds: list[tuple[float | None, str]] | None = None) -> stat.Panel:
    steps = [mdash.Threshold(value=v, color=c) for v, c in (thresholds or [(None, "green")])]
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .decimals(decimals)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .graph_mode(mcommon.BigValueGraphMode.NONE)
        .color_mode(mcommon.BigValueColorMode.VALUE)
        .reduce_options(gcommon.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(
            gdash.ThresholdsConfig().mode(mdash.ThresholdsMode.ABSOLUTE).steps(steps)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def bar_gauge(title: str, description: str, unit: str, *targets: gprom.Dataquery,
              width: int = 12, height: int = 9, decimals: int = 1,
              thresholds: list[tuple[float | None, str]] | None = None) -> bargauge.Panel:
    """One horizontal bar per series (a flag combination), its last value: many labelled values
    side by side, where a stat panel's tiles would shrink."""
    steps = [mdash.Threshold(value=v, color=c) for v, c in (thresholds or [(None, "blue")])]
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .decimals(decimals)
        .min(0)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .orientation(mcommon.VizOrientation.HORIZONTAL)
        .display_mode(mcommon.BarGaugeDisplayMode.BASIC)
        .value_mode(mcommon.BarGaugeValueMode.COLOR)
        .show_unfilled(True)
        .reduce_options(gcommon.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(
            gdash.ThresholdsConfig().mode(mdash.ThresholdsMode.ABSOLUTE).steps(steps)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def heat(title: str, description: str, unit: str, target: gprom.Dataquery, *, width: int = 12,
         height: int = 8) -> heatmap.Panel:
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit(unit))
        .cell_values(heatmap.CellValues().unit("short"))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(mheatmap.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(mheatmap.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .fill("dark-orange")
            .steps(64)
        )
        .show_tooltip()
        .show_y_histogram()
        .with_target(target)
    )


def state_timeline(title: str, description: str, target: gprom.Dataquery,
                   mapping: dict[str, tuple[str, str]], *, width: int = 24,
                   height: int = 5) -> statetimeline.Panel:
    """A state timeline whose numeric values are mapped to names and colours."""
    options = {
        value: mdash.ValueMappingResult(text=text, color=colour, index=i)
        for i, (value, (text, colour)) in enumerate(mapping.items())
    }
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .unit("none")
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
        .show_value(mcommon.VisibilityMode.AUTO)
        .merge_values(True)
        .fill_opacity(80)
        .mappings([mdash.ValueMap(options=options)])
        .with_target(target)
    )


def row(title: str) -> gdash.Row:
    return gdash.Row(title)


def custom_variable(name: str, label: str, values: tuple[str, ...]) -> gdash.CustomVariable:
    """A multi-value variable with "All" expanding to a regex, used as `label=~"$name"`."""
    return (
        gdash.CustomVariable(name)
        .label(label)
        .values(",".join(values))
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .current(mdash.VariableOption(selected=True, text="All", value="$__all"))
    )


def flow_variable() -> gdash.CustomVariable:
    return custom_variable("flow", "Flow", FLOWS)


def mode_variable() -> gdash.CustomVariable:
    return custom_variable("mode", "Mode", MODES)


def base_dashboard(uid: str, title: str, description: str, tags: list[str]) -> gdash.Dashboard:
    return (
        gdash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["execbench", *tags])
        .editable()
        .refresh("5s")
        .time("now-30m", "now")
        .timezone("utc")
        .tooltip(mdash.DashboardCursorSync.CROSSHAIR)
        .annotation(run_annotations())
        .link(
            gdash.DashboardLink("execbench dashboards")
            .type(mdash.DashboardLinkType.DASHBOARDS)
            .tags(["execbench"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
            .target_blank(False)
        )
    )


def run_annotations() -> gdash.AnnotationQuery:
    """Phases and flips posted by `execbench annotate` (Grafana's own annotation store)."""
    return (
        gdash.AnnotationQuery()
        .name("execbench runs")
        .datasource(GRAFANA_DATASOURCE)
        .enable(True)
        .hide(False)
        .icon_color("purple")
        .type("tags")
        .target(
            gdash.AnnotationTarget()
            .type("tags")
            .tags([ANNOTATION_TAG])
            .match_any(True)
            .limit(200)
        )
    )
