"""report.html: the report as one page that opens offline. Per device, the Pareto fronts (latency and size
against top-1) with the recommended build marked, the environment fingerprint and the recommendation; then
the table of every figure in results.csv, sortable, with each row's warnings; then per-layer panels where
the bundles have them. Built from the same rows and Recommendations as report.md (nothing recomputed)."""

import csv
import os

from device_bench.environment import device_label
from device_bench.errors import EdgekitError
from device_bench.options import SPREAD_WARNING
from device_bench.views import flatten
from edgekit.study.html_report import (Chart, Html, Table, definition_list, heading, html_page, paragraph,
                                       preformatted)
from edgekit.study.rows import COLUMNS, bench_entries

LAYER_REPORT = "layer_report.csv"  # converters.layer_errors.CSV_NAME, beside a bundle made with --report
LAYER_ROWS = 10  # worst layers listed under each per-layer chart
LEAD_COLUMNS = ("device", "model", "precision", "runtime", "threads")
PERCENT = ("top1", "top5", "agreement_fp32", "spread", "fraction_of_peak", "fraction_of_nominal_peak")


def row_warnings(results):
    """Per table row (table_rows order) the warnings a reader should see on it: the benchmark's own (spread,
    throttling, clock and temperature drift...), partial delegation, float ops run in a lower precision."""
    out = []
    for r, b in bench_entries(results):
        b = b or {}
        warnings = list(b.get("warnings") or [])
        spread = (b.get("latency_spread") or {}).get("relative")
        if spread is not None and spread > SPREAD_WARNING and not any("spread" in w for w in warnings):
            warnings.append(f"process medians spread {spread:.1%}, above {SPREAD_WARNING:.0%}")
        if b.get("fully_delegated") is False:
            warnings.append(f"partial delegation: {b.get('delegated_nodes')} of {b.get('total_nodes')} nodes on the "
                            "delegate, the rest on the CPU" if b.get("total_nodes") else "partial delegation")
        lowered = (b.get("runtime") or {}).get("inference_precision")
        if lowered not in (None, "f32", "float32"):
            warnings.append(f"float ops computed in {lowered} (the runtime's own default): not float32 arithmetic")
        out.append(warnings)
    return out


def _dominated(p, q, x, y, maximize_y):
    """q is at least as good as p on both axes and better on one (lower x; higher or lower y)."""
    better_y = q[y] > p[y] if maximize_y else q[y] < p[y]
    no_worse_y = q[y] >= p[y] if maximize_y else q[y] <= p[y]
    return q[x] <= p[x] and no_worse_y and (q[x] < p[x] or better_y)


def pareto_front(points, x, y, maximize_y=True):
    """The points no other point dominates (lower ``x``, higher ``y`` or lower when not ``maximize_y``)."""
    usable = [p for p in points if p.get(x) is not None and p.get(y) is not None]
    return [p for p in usable if not any(_dominated(p, q, x, y, maximize_y) for q in usable if q is not p)]


def _winners(choice):
    """{(model, precision, runtime label, threads): 'recommended' or 'fastest, undecided'} of a run's choice."""
    if isinstance(choice, EdgekitError) or choice is None:
        return {}
    return {(r.winner["model"], r.winner["precision"], r.winner["runtime_label"], r.winner["threads"]):
            "recommended" if r.decided else "fastest measured (not a recommendation)" for r in choice if r.winner}


def chart_points(rows, choice):
    """One point per measured build (a row with a latency), with what its tooltip shows."""
    winners = _winners(choice)
    points = []
    for r in rows:
        if not r.get("p50_ms"):
            continue
        spread = (f"{r['p50_min_ms']:.3g}-{r['p50_max_ms']:.3g} ms over {r.get('processes')} processes "
                  f"({r['spread']:.1%})" if r.get("p50_min_ms") is not None and r.get("spread") is not None
                  else "1 process: spread unknown")
        points.append({"model": r["model"], "precision": r["precision"], "runtime": r["runtime"],
                       "threads": r["threads"], "p50_ms": r["p50_ms"], "size_mb": r.get("size_mb"),
                       "top1": None if r.get("top1") is None else r["top1"] * 100,
                       "peak_rss_mb": r.get("peak_rss_mb"), "process_medians": spread,
                       "mark": winners.get((r["model"], r["precision"], r["runtime"], r["threads"]), "")})
    return points


def pareto_chart(points, x, x_title, y, y_title, name, maximize_y=True):
    """Every build (colour: model, shape: precision), the non-dominated ones joined by a line, the recommended
    build ringed and labelled. The builds' marks are named ``name`` (SVG class ``{name}_marks``)."""
    import altair as alt
    front = sorted(pareto_front(points, x, y, maximize_y), key=lambda p: (p[x], p[y]))
    tooltip = [alt.Tooltip("model:N"), alt.Tooltip("precision:N"), alt.Tooltip("runtime:N"),
               alt.Tooltip("threads:Q"), alt.Tooltip("p50_ms:Q", title="p50 ms", format=".4g"),
               alt.Tooltip("process_medians:N", title="process medians"),
               alt.Tooltip("top1:Q", title="top-1 %", format=".2f"),
               alt.Tooltip("size_mb:Q", title="size MB", format=".3g"),
               alt.Tooltip("peak_rss_mb:Q", title="peak RSS MB", format=".0f"),
               alt.Tooltip("mark:N", title="marked")]
    # latency on a log scale: one slow build (a runtime without int8 kernels, say) must not squash the rest
    ex = alt.X(f"{x}:Q", title=x_title + (", log scale" if x == "p50_ms" else ""),
               scale=alt.Scale(type="log", padding=24) if x == "p50_ms" else alt.Scale(zero=False, padding=24))
    ey = alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False, padding=24))
    line = alt.Chart(alt.Data(values=[{x: p[x], y: p[y], "order": i} for i, p in enumerate(front)])).mark_line(
        color="#888", strokeDash=[4, 3]).encode(x=ex, y=ey, order="order:Q")
    builds = alt.Chart(alt.Data(values=points), name=name).mark_point(size=90, filled=True, opacity=0.85).encode(
        x=ex, y=ey, color=alt.Color("model:N"), shape=alt.Shape("precision:N"), tooltip=tooltip)
    layers = [line, builds]
    marked = [dict(p, label=p["mark"].split(" (")[0]) for p in points
              if p["mark"] and p.get(x) is not None and p.get(y) is not None]
    if marked:  # a ring and a label; with nothing marked no empty layer (Vega warns of its infinite extent)
        layers += [alt.Chart(alt.Data(values=marked), name=f"{name}_recommended").mark_point(
                       size=500, shape="circle", filled=False, color="#2e7d32", strokeWidth=3).encode(
                       x=ex, y=ey, tooltip=tooltip),
                   alt.Chart(alt.Data(values=marked)).mark_text(align="left", dx=14, dy=-14, color="#2e7d32",
                                                                fontWeight="bold").encode(x=ex, y=ey, text="label:N")]
    return alt.layer(*layers).properties(width=380, height=300, title=f"{y_title} against {x_title}")


def _temperatures(run):
    """Lowest and highest temperature read before and after the benchmark processes, or None."""
    seen = [t for r, b in bench_entries(run) for p in ((b or {}).get("processes") or [b or {}])
            for moment in ((p.get("clock") or {}).get("before") or {}, (p.get("clock") or {}).get("after") or {})
            for t in (moment.get("temperature_c"), moment.get("zone_c")) if isinstance(t, (int, float))]
    return f"{min(seen):.0f}-{max(seen):.0f} °C" if seen else None


def _with_unit(value, unit):
    """'2596 MHz' for a number; whatever else a results file holds there, as it is."""
    if value is None or value == "":
        return None
    return f"{value:.0f} {unit}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def fingerprint(run):
    """What the results record of the device: CPU or SoC, cores, clocks, governor, runtimes, temperatures."""
    from device_bench.views import runtime_label
    env = run["environment"]
    runtimes = sorted({runtime_label(b["runtime"]) for _, b in bench_entries(run) if b and b.get("runtime")})
    mhz = env.get("max_frequency_mhz") or env.get("frequency_mhz") or env.get("cpuinfo_mhz")
    return [("board", env.get("board")), ("CPU / SoC", env.get("cpu")), ("architecture", env.get("arch")),
            ("cores", env.get("cores")), ("vector bits", env.get("vector_bits")),
            ("int8 dot product", None if env.get("int8_dot") is None else ("yes" if env["int8_dot"] else "no")),
            ("clock", _with_unit(mhz, "MHz")), ("governor", env.get("governor") or "n/a"),
            ("runtimes", ", ".join(runtimes) or None), ("OS", env.get("os") or env.get("android")),
            ("Python", env.get("python")), ("NumPy", env.get("numpy")), ("libc", env.get("libc")),
            ("temperature at start", _with_unit(env.get("temperature_c"), "°C")),
            ("temperatures during the run", _temperatures(run)), ("host", env.get("hostname")),
            ("emulated", "YES: timings say nothing about the real device" if env.get("emulated") else None)]


def recommendation_blocks(choice):
    """The recommendation of `edgekit recommend` (defaults) as report.md has it: winner, why, the commands."""
    if isinstance(choice, EdgekitError):
        return [paragraph(f"No recommendation: {choice}", "undecided")]
    out = []
    for r in choice:
        items = [("build", r.winner["text"] if r.winner else None), ("why", r.reason)]
        items += [("cannot decide", reason) for reason in r.undecided]
        items += [("left out", note) for note in r.left_out]
        items += [("runner-up", c["text"]) for c in r.runners_up]
        title = ("Recommended" if r.decided else "Fastest measured, not a recommendation") + f": {r.model}"
        commands = "\n".join(c for c in (r.command, r.evaluate_command) if c)
        out.append(Html(f'<div class="{"recommended" if r.decided else "undecided"}">'
                        + heading(title, 4) + definition_list(items)
                        + (paragraph("Reproduce:") + preformatted(commands) if commands else "") + "</div>"))
    return out


def device_blocks(i, run, rows, choice):
    """Pareto fronts, fingerprint and recommendation of one device (run)."""
    points = chart_points(rows, choice)
    out = [heading(device_label(run["environment"]), 2, anchor=f"device-{i}")]
    if not points:
        return out + [paragraph("No build was measured on this device: the table says why.", "note")]
    if any(p["top1"] is not None for p in points):
        if any(p["top1"] is None for p in points):
            out.append(paragraph("Builds with no accuracy measured in their runtime are left off these charts; "
                                 "the table has them.", "note"))
        out += [Chart(f"pareto-{i}-latency", pareto_chart(points, "p50_ms", "latency p50 (ms)", "top1", "top-1 (%)",
                                                          f"builds_{i}_latency")),
                Chart(f"pareto-{i}-size", pareto_chart(points, "size_mb", "file size (MB)", "top1", "top-1 (%)",
                                                       f"builds_{i}_size"))]
    else:
        out += [paragraph("No accuracy was measured on this device (no evaluate folder, or random weights), so "
                          "there is no top-1 to plot: latency against file size instead, both lower-is-better.",
                          "note"),
                Chart(f"pareto-{i}-latency", pareto_chart(points, "p50_ms", "latency p50 (ms)", "size_mb",
                                                          "file size (MB)", f"builds_{i}_latency", maximize_y=False))]
    out += [paragraph("Dashed line: the non-dominated builds (none faster and at least as good on the other axis). "
                      "Ringed: the build edgekit recommend picks with its defaults. Hover a point for its "
                      "configuration and the spread of its process medians.", "note")]
    out += [heading("Environment", 3), definition_list(fingerprint(run)),
            heading("Recommendation (edgekit recommend, defaults)", 3), *recommendation_blocks(choice)]
    return out


def results_table(runs, tables):
    """Every row and every column of results.csv (same flattening), with each row's warnings."""
    flat = []
    for run, rows in zip(runs, tables):
        for row, warnings in zip(rows, row_warnings(run)):
            flat.append(dict(flatten(row), warnings=warnings))
    names = dict((key, header) for header, key in COLUMNS)
    keys = list(dict.fromkeys([*LEAD_COLUMNS, *(k for _, k in COLUMNS),
                               *(k for r in flat for k in r if k != "warnings")]))
    keys = [k for k in keys if any(k in r for r in flat)]
    percent = {k: (lambda v: f"{v:.1%}" if isinstance(v, (int, float)) else str(v)) for k in PERCENT}
    return Table("results", [(names.get(k, k), k) for k in keys], flat, warnings_key="warnings",
                 caption="Every figure of results.csv, one row per model x precision x runtime x threads x device. "
                         "Click a header to sort.", formats=percent)


def layer_blocks(runs):
    """Per-layer quantization error (layer_report.csv beside a bundle made with --report), where there is one."""
    import altair as alt
    out = []
    for run in runs:
        for r in run["rows"]:
            folder = str(r.get("bundle") or "")
            path = os.path.join(os.path.dirname(folder) if os.path.isfile(folder) else folder, LAYER_REPORT)
            if not folder or not os.path.isfile(path):
                continue
            try:
                with open(path, newline="") as f:
                    layers = list(csv.DictReader(f))
            except (OSError, UnicodeDecodeError, csv.Error) as e:
                out.append(paragraph(f"{path}: cannot read the per-layer report ({e})", "undecided"))
                continue
            values = [{"index": _number(x.get("index")), "layer": x.get("layer"), "op": x.get("op"), "metric": m,
                       "dB": _number(x.get(key))}
                      for x in layers for key, m in (("quant_snr_db", "quant SNR (this layer's own rounding)"),
                                                     ("snr_db", "SNR against float"))]
            values = [v for v in values if v["dB"] is not None and v["index"] is not None]
            name = f"{r['model']} {r['precision']}"
            out.append(heading(f"Per-layer quantization error: {name}", 3))
            chart = alt.Chart(alt.Data(values=values)).mark_line(point=True).encode(
                x=alt.X("index:Q", title="layer (execution order)"), y=alt.Y("dB:Q", title="dB (higher is better)"),
                color=alt.Color("metric:N", legend=alt.Legend(orient="bottom")),
                tooltip=["layer:N", "op:N", "metric:N", alt.Tooltip("dB:Q", format=".1f")]).properties(
                width=700, height=260, title=f"{name}: error by depth ({len(layers)} layers)")
            out += [Chart(f"layers-{r['model']}-{r['precision']}", chart),
                    Table(f"layers-{r['model']}-{r['precision']}-worst",
                          [(c, c) for c in ("rank", "layer", "op", "macs_share", "quant_snr_db", "snr_db", "cosine")],
                          [{k: _number(v) if k != "layer" and k != "op" else v for k, v in x.items()}
                           for x in layers[:LAYER_ROWS]], caption=f"worst {LAYER_ROWS} layers, from {path}")]
    return out


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def render_html(runs, tables, choices):
    """report.html's text: every device's charts, fingerprint and recommendation, the table, per-layer panels."""
    blocks = [paragraph("Accuracy against latency against size, measured on each device below: every build, the "
                        "non-dominated ones, and the one to ship. Opens offline; report.md has the same figures.")]
    for i, (run, rows, choice) in enumerate(zip(runs, tables, choices)):
        blocks += device_blocks(i, run, rows, choice)
    blocks += [heading("All results", 2, anchor="results"), results_table(runs, tables)]
    per_layer = layer_blocks(runs)
    if per_layer:
        blocks += [heading("Per-layer panels", 2, anchor="layers"), *per_layer]
    return html_page("edgekit report", blocks)
