"""The report: one table row per model x precision x threads, report.md, results.json/.csv and
tradeoff.png, from one run or from saved results of several devices (`edgekit report`)."""

import json
import os
import tempfile

from device_bench.environment import device_label
from device_bench.errors import EdgekitError
from device_bench.safe_write import write_text_atomic
from device_bench.views import format_table, inference_precision_notes, runtime_label, write_csv
from edgekit.study.recommend import recommend_tables, render
from edgekit.study.rows import COLUMNS, bench_command, evaluate_command, runtime_key, table_rows

REPORT_FILES = ("results.json", "results.csv", "tradeoff.png", "report.md", "report.html")
MARKERS = {"fp32": "o", "fp16": "s", "dynamic": "^", "int8": "D"}


def write_report(results, outdir, progress=print):
    """Write report.md, report.html, results.json, results.csv and tradeoff.png; results is one run or a list.
    Returns the flat rows of every run and, per run, its Recommendations (or the EdgekitError that says why none)."""
    runs = results if isinstance(results, list) else [results]
    tables = [table_rows(run) for run in runs]  # computed once: the CSV, the markdown and the chart share them
    choices = [_recommendation(run, rows) for run, rows in zip(runs, tables)]
    try:
        os.makedirs(outdir, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".report-", dir=outdir) as tmp:
            # the whole set is written aside first: a full disk or an interrupt leaves the old set whole
            write_text_atomic(os.path.join(tmp, "results.json"),
                              json.dumps(runs[0] if len(runs) == 1 else {"schema": 1, "runs": runs}, indent=2) + "\n")
            write_csv(os.path.join(tmp, "results.csv"), [row for rows in tables for row in rows])
            chart = plot_tradeoff(runs, tables, os.path.join(tmp, "tradeoff.png"))
            write_text_atomic(os.path.join(tmp, "report.md"), render_markdown(runs, tables, choices, chart))
            page = write_html(runs, tables, choices, os.path.join(tmp, "report.html"))
            for name in REPORT_FILES:
                if os.path.exists(os.path.join(tmp, name)):
                    os.replace(os.path.join(tmp, name), os.path.join(outdir, name))
                elif os.path.exists(os.path.join(outdir, name)):
                    os.unlink(os.path.join(outdir, name))  # no chart this time: no stale one beside the new set
    except OSError as e:
        raise EdgekitError(f"cannot write the report in {outdir}: {e.strerror or e}") from None
    progress(f"wrote {outdir}/report.md, " + ("report.html, " if page else "") + "results.json, results.csv"
             + (", tradeoff.png" if chart else ""))
    if not page:
        progress("no report.html: it needs altair and vl-convert-python (pip install 'edgekit-tflite[convert]')")
    return [row for rows in tables for row in rows], choices


def write_html(runs, tables, choices, path):
    """report.html (edgekit.study.report_page), or None where altair or vl-convert-python is not installed."""
    try:
        import altair  # noqa: F401
        import vl_convert  # noqa: F401
    except ImportError:
        return None
    from edgekit.study.report_page import render_html
    write_text_atomic(path, render_html(runs, tables, choices))
    return path


def _recommendation(run, rows):
    """What `edgekit recommend` makes of one run with its defaults, or the error that says why nothing."""
    try:
        return recommend_tables([(run, rows)])
    except EdgekitError as e:
        return e


def render_table(rows):
    """The table as text, with only the columns that hold a value in some row."""
    columns = [c for c in COLUMNS if any(r.get(c[1]) is not None for r in rows)]
    if len({r.get("device") for r in rows}) > 1:  # a study measured on several targets: say which row is which
        columns.insert(1, ("device", "device"))
    return format_table(rows, columns)


def render_markdown(runs, tables, choices, chart):
    """report.md: per device, its environment, how it was measured, the table, warnings, the predictions and
    the commands to reproduce."""
    out = ["# edgekit report", "",
           "Accuracy against operations against model size against memory against inference time, in the manner "
           "of Bianco et al. 2018, measured on this device.", ""]
    for run, rows, choice in zip(runs, tables, choices):
        out += _environment_lines(run)
        out += ["", "```", render_table(rows), "```", ""] + _method_lines(run) + _warning_lines(run)
        out += _prediction_lines(run) + _recommendation_lines(choice) + _reproduce_lines(run)
    if chart:
        out += ["![trade-off](tradeoff.png)", ""]
    return "\n".join(out)


def _environment_lines(run):
    env, meta = run["environment"], run.get("meta", {})
    # a phone's record has no Python, NumPy or OS of its own: only what is known is listed
    versions = [f"{name}{env[key]}" for name, key in (("Python ", "python"), ("NumPy ", "numpy"), ("", "os"))
                if env.get(key)]
    out = [f"## {device_label(env)}", "",
           f"- CPU: {env.get('cpu')} ({env.get('arch')}, {env.get('cores')} cores, "
           f"{env.get('vector_bits') or '?'}-bit vectors), governor {env.get('governor') or 'n/a'}",
           "; ".join([f"- Runtimes: {', '.join(sorted(_runtimes(run))) or runtime_label(env.get('runtime'))}",
                      *([", ".join(versions)] if versions else [])]),
           f"- Created {meta.get('created', '?')}, run took {meta.get('seconds', '?')} s", ""]
    if env.get("emulated"):
        out += ["**Emulated CPU: the timings below say nothing about the real device.**", ""]
    out += [f"- {note}" for note in meta.get("notes", [])]
    if any(r.get("trained_weights") is False for r in run["rows"]):
        out += ["", "**Random weights.** Some models ran with random weights (no trained weights were "
                "available). Their latency, memory, size, parameter and multiply-add figures hold for any "
                "weights; predictions, accuracy and agreement need trained weights, so none are shown for "
                "them. (A random network's activations shrink below int8's smallest scale, so its int8 "
                "outputs are all the same value.)"]
    return out


def _benches(run):
    return [b for r in run["rows"] for b in r.get("bench") or [] if b]


def _runtimes(run):
    return {runtime_label(b.get("runtime")) for b in _benches(run) if b.get("runtime")}


def _method_lines(run):
    """How the figures were taken: processes per configuration, their order, the cooldown, the ceiling."""
    sweep = next((b["sweep"] for b in _benches(run) if b.get("sweep")), None)
    out = ["- *size vs fp32* and *speed-up* are against the same model's fp32 bundle, in the same runtime, at the "
           "same threads. *top-1*/*top-5* are measured in each row's own runtime.",
           "- *peak RSS* is the benchmark process's high-water mark (VmHWM): Python, NumPy and the runtime "
           "included, in a fresh process."]
    if sweep:
        out.append(f"- Each configuration ran in {sweep['repeat']} fresh process(es), {sweep['order']}; every figure "
                   f"is the median over processes (p50: the median of process medians), and *spread* is "
                   f"(highest - lowest) / median of the process medians. Cooldown: "
                   + (f"**{sweep['cooldown_s']:g} s** between processes." if sweep.get("cooldown_s") else "not used."))
    out += ["- *GMAC/s* is multiply-adds / p50 latency. *of peak* divides it by the **measured ceiling**: the best "
            "rate of a dense kernel (a 1x1 convolution, 67M multiply-adds; fp32 for fp32/fp16 builds, int8 for "
            "int8, the faster of the two for dynamic) timed in the same process, runtime and threads. The nominal "
            "peak (clock x vector lanes x 2 FMA) is kept in results.csv (*fraction_of_nominal_peak*) for reference "
            "only: the core boosts above the clock it is taken from."]
    out += [f"- {line}." for line in inference_precision_notes(b.get("runtime") for b in _benches(run))]
    return out + [""]


def _warning_lines(run):
    """Spread, drift and runtime warnings of the benchmarks, once each."""
    seen = {}
    for r in run["rows"]:
        for b in r.get("bench") or []:
            for w in (b or {}).get("warnings") or []:
                seen.setdefault(f"{r['model']} {r['precision']}, {runtime_label(b.get('runtime'))}, "
                                f"{b.get('threads')} thread(s): {w}", None)
    return (["### Warnings", ""] + [f"- {w}" for w in seen] + [""]) if seen else []


def _recommendation_lines(choice):
    """What `edgekit recommend` makes of this run with its defaults (the fastest build within 0.5 points)."""
    text = f"no recommendation: {choice}" if isinstance(choice, EdgekitError) else render(choice)
    return ["### Recommendation (edgekit recommend, defaults)", "", "```", text, "```", ""]


def _prediction_lines(run):
    preds = [r for r in run["rows"] if r.get("predictions") and r["precision"] == "fp32"]
    if not preds:
        return []
    out = ["### Predictions (fp32, top-1)", "", "| image | " + " | ".join(r["model"] for r in preds) + " |",
           "|---|" + "---|" * len(preds)]
    for i, p in enumerate(preds[0]["predictions"]):
        cells = []
        for r in preds:
            q = r["predictions"][i] if i < len(r["predictions"]) else {}
            cells.append(f"{q['top'][0]['label']} ({q['top'][0]['score']:.0%})" if q.get("top") else "error")
        out.append(f"| {p['image']} | " + " | ".join(cells) + " |")
    return out + [""]


def _reproduce_lines(run):
    cfg = run.get("meta", {}).get("config", {})
    out = ["### Reproduce", "", "```"]
    out += [r["convert_command"] for r in run["rows"] if r.get("convert_command")]
    for r in run["rows"]:
        if not r.get("bundle") or r.get("error"):
            continue
        specs = {}
        for b in r.get("bench") or []:
            specs.setdefault(runtime_key(b.get("runtime")), (b.get("runtime"), []))[1].append(b["threads"])
        for runtime, threads in specs.values():
            out.append(bench_command(r["bundle"], runtime, sorted(set(threads)), cfg.get("runs"), cfg.get("repeat")))
        for a in r.get("accuracy") or ([{"runtime": None}] if r.get("top1") is not None else []):
            out.append(evaluate_command(r["bundle"], cfg.get("evaluate"), a.get("runtime")))
    return out + ["edgekit report results.json -o OUTDIR", "```", ""]


def plot_tradeoff(runs, tables, path):
    """Latency against accuracy (or multiply-adds), bubble area = file size; memory against latency."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        return None
    fig, axes = plt.subplots(len(runs), 2, figsize=(14, 5.5 * len(runs)), squeeze=False)
    families = sorted({r.get("family") or "?" for rows in tables for r in rows if r.get("p50_ms")})
    colours = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    for (ax, ax_mem), run, table in zip(axes, runs, tables):
        rows = [r for r in table if r.get("p50_ms")]
        accuracy = any(r.get("top1") is not None for r in rows)
        for r in rows:
            y = r["top1"] * 100 if accuracy else r["macs_m"]
            if y is None:
                continue
            style = dict(s=40 + 60 * (r["size_mb"] or 0), c=[colours[r.get("family") or "?"]],
                         marker=MARKERS.get(r["precision"], "o"), alpha=0.7, edgecolors="black", linewidths=0.6)
            ax.scatter(r["p50_ms"], y, **style)
            ax_mem.scatter(r["p50_ms"], r["peak_rss_mb"], **style)
        # one name per model, beside its fastest build; colour (family) and marker (precision) say the rest
        for model in dict.fromkeys(r["model"] for r in rows):
            fastest = min((r for r in rows if r["model"] == model), key=lambda r: r["p50_ms"])
            y = fastest["top1"] * 100 if accuracy else fastest["macs_m"]
            if y is not None:
                ax.annotate(model, (fastest["p50_ms"], y), fontsize=8, xytext=(-8, 10), textcoords="offset points",
                            ha="right")
        device = device_label(run["environment"])
        ax.set_xlabel("latency p50 (ms, 1 image)")
        ax.set_ylabel("top-1 accuracy (%)" if accuracy else "multiply-adds (millions); no accuracy measured")
        ax.set_title(f"Speed against {'accuracy' if accuracy else 'operations'} on {device}\n"
                     "bubble area = file size", fontsize=10)
        ax_mem.set_xlabel("latency p50 (ms, 1 image)")
        ax_mem.set_ylabel("peak resident memory (MB)")
        ax_mem.set_title(f"Memory against latency on {device}", fontsize=10)
        for a in (ax, ax_mem):
            a.grid(True, alpha=0.3)
            a.margins(0.15)
        handles = [Line2D([], [], marker="o", linestyle="", color=colours[f], label=f) for f in families]
        handles += [Line2D([], [], marker=m, linestyle="", color="grey", label=p) for p, m in MARKERS.items()]
        handles += [Line2D([], [], marker="o", linestyle="", color="white", markeredgecolor="black",
                           markersize=(40 + 60 * mb) ** 0.5, label=f"{mb} MB") for mb in (1, 10)]
        ax.legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
