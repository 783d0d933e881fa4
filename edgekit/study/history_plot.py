"""`edgekit history plot`: p50 over time, one line per configuration, as one page that opens offline (the
page and its inlined Vega-Lite come from html_report, as report.html's do)."""

from device_bench.errors import EdgekitError
from edgekit.study.compare import configuration_name


def plot_points(records):
    """One point per benchmark record: when, which configuration, its p50 and the spread of its processes."""
    points = []
    for r in records:
        if r["p50_ms"] is None:
            continue
        [bench] = r["record"]["rows"][0].get("bench") or [{}]
        p50s = [p["latency_ms"]["p50"] for p in bench.get("processes") or []]
        points.append({"id": r["id"], "time": r["created"], "label": r["label"] or "", "p50_ms": r["p50_ms"],
                       "configuration": configuration_name(r), "processes": len(p50s),
                       "p50_min_ms": min(p50s, default=None), "p50_max_ms": max(p50s, default=None)})
    return points


def history_chart(points):
    try:
        import altair as alt
    except ImportError as e:
        raise EdgekitError(f"history plot needs altair and vl-convert-python ({e}); "
                           "pip install 'edgekit-tflite[convert]'") from None
    base = alt.Chart(alt.Data(values=points)).encode(
        x=alt.X("time:T", title="time (UTC)"), y=alt.Y("p50_ms:Q", title="p50 latency (ms)"),
        color=alt.Color("configuration:N", legend=alt.Legend(orient="bottom", columns=1, labelLimit=600)))
    band = base.mark_rule(opacity=0.5).encode(y="p50_min_ms:Q", y2="p50_max_ms:Q")
    tooltip = [alt.Tooltip(f) for f in ("id:Q", "time:T", "label:N", "configuration:N", "p50_ms:Q",
                                        "p50_min_ms:Q", "p50_max_ms:Q", "processes:Q")]
    line = base.mark_line(point=True).encode(tooltip=tooltip)
    return (band + line).properties(width=900, height=420)


def write_plot(records, output, force=False):
    """Write the page to ``output`` atomically (an existing file replaced only with ``force``); returns its path."""
    from device_bench.safe_write import check_output, write_text_atomic
    from edgekit.study.html_report import Chart, Table, html_page, paragraph
    output = check_output(output, force)
    points = plot_points(records)
    if not points:
        raise EdgekitError("no benchmark record in the history selection to plot (evaluate records have no p50)")
    columns = [("id", "id"), ("time", "time"), ("label", "label"), ("configuration", "configuration"),
               ("p50 ms", "p50_ms"), ("lowest process p50", "p50_min_ms"), ("highest", "p50_max_ms"),
               ("processes", "processes")]
    page = html_page("edgekit history: p50 over time", [
        paragraph(f"{len(points)} benchmark records; the bars span each record's process medians."),
        Chart("history", history_chart(points)), Table("records", columns, points)])
    write_text_atomic(output, page)
    return output
