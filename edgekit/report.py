"""The report: one table row per model x precision x threads, report.md, results.json/.csv and
tradeoff.png, from one run or from saved results of several devices (`edgekit report`)."""

import json
import os
import shlex
import tempfile

from device_bench.environment import device_label
from device_bench.errors import EdgekitError
from device_bench.safe_write import write_text_atomic
from device_bench.views import format_table, inference_precision_notes, runtime_label, write_csv

REPORT_FILES = ("results.json", "results.csv", "tradeoff.png", "report.md")
MARKERS = {"fp32": "o", "fp16": "s", "dynamic": "^", "int8": "D"}
COLUMNS = [
    ("model", "model"), ("precision", "precision"), ("runtime", "runtime"), ("threads", "threads"),
    ("params", "params"), ("MACs (M)", "macs_m"), ("size MB", "size_mb"), ("gzip MB", "gzip_mb"),
    ("size vs fp32", "size_vs_fp32"),
    ("top-1", "top1"), ("top-5", "top5"), ("agree fp32", "agreement_fp32"),
    ("init ms", "init_ms"), ("p50 ms", "p50_ms"), ("spread", "spread"), ("p90 ms", "p90_ms"),
    ("speed-up", "speedup_vs_fp32"), ("peak RSS MB", "peak_rss_mb"), ("GMAC/s", "gmacs_per_s"),
    ("of peak", "fraction_of_peak"), ("error", "error"),
]


def runtime_key(runtime):
    """(name, api, accelerator) of a runtime record, to match a benchmark with the accuracy of the same runtime."""
    runtime = runtime or {}
    return runtime.get("name"), runtime.get("api"), runtime.get("accelerator")


def accuracy_for(row, bench):
    """The accuracy measured in the benchmark's own runtime (a runtime can change results): from the row's
    per-runtime list, or the row's own figures when it has no list (older results, one runtime)."""
    if "accuracy" not in row:
        return {"top1": row.get("top1"), "top5": row.get("top5")}
    key = runtime_key((bench or {}).get("runtime"))
    return next((a for a in row["accuracy"] if runtime_key(a.get("runtime")) == key), {})


def _bench_figures(row, b):
    """The table's figures of one benchmark entry: latency, spread, memory, achieved MAC/s and fraction of peak."""
    lat, spread = b["latency_ms"], b.get("latency_spread") or {}
    out = {"init_ms": b["init_ms"], "p50_ms": lat["p50"], "p90_ms": lat["p90"], "peak_rss_mb": b["peak_rss_mb"],
           "spread": spread.get("relative"), "p50_min_ms": spread.get("p50_min"), "p50_max_ms": spread.get("p50_max"),
           "processes": spread.get("processes")}
    if row.get("macs"):
        rate = row["macs"] / (lat["p50"] / 1e3)
        ceiling = b.get("ceiling") or {}
        out.update(gmacs_per_s=rate / 1e9, ceiling_gmacs_per_s=ceiling.get("macs_per_s") and ceiling["macs_per_s"] / 1e9,
                   fraction_of_peak=rate / ceiling["macs_per_s"] if ceiling.get("macs_per_s") else None,
                   fraction_of_nominal_peak=rate / ceiling["nominal_macs_per_s"]
                   if ceiling.get("nominal_macs_per_s") else None)
    return out


def table_rows(results):
    """Flat rows for the table, CSV, chart and recommend: one per model x precision x runtime x threads, with
    the derived ratios (against the same model's fp32 build, in the same runtime, at the same threads)."""
    env = results["environment"]
    rows = []
    fp32 = {}
    for r in results["rows"]:
        for b in r.get("bench") or [None]:
            runtime = (b or {}).get("runtime")
            row = {"device": device_label(env), "model": r["model"], "family": r.get("family"),
                   "precision": r["precision"], "runtime": runtime_label(runtime), "runtime_record": runtime,
                   "threads": b and b["threads"], "params": r.get("params"), "bundle": r.get("bundle"),
                   "macs_m": r.get("macs") and r["macs"] / 1e6, "size_mb": r.get("file_size") and r["file_size"] / 1e6,
                   "gzip_mb": r.get("gzip_size") and r["gzip_size"] / 1e6, "variant": r.get("variant"),
                   "agreement_fp32": r.get("agreement_fp32"), "trained_weights": r.get("trained_weights"),
                   "error": r.get("error") or (b or {}).get("error") or
                   ((b or {}).get("unavailable") and f"unavailable: {b['unavailable']}")}
            accuracy = accuracy_for(r, b)
            row.update(top1=accuracy.get("top1"), top5=accuracy.get("top5"))
            if b and b.get("latency_ms"):
                row.update(_bench_figures(r, b))
            if row["precision"] == "fp32":
                fp32[(row["model"], row["threads"], row["runtime"])] = row
            rows.append(row)
    for row in rows:
        base = fp32.get((row["model"], row["threads"], row["runtime"]))
        if base and row.get("size_mb") and base.get("size_mb"):
            row["size_vs_fp32"] = row["size_mb"] / base["size_mb"]
        if base and row.get("p50_ms") and base.get("p50_ms"):
            row["speedup_vs_fp32"] = base["p50_ms"] / row["p50_ms"]
    return rows


def runs_from_bench(records):
    """`edgekit bench --json` records (local or from --target boards), grouped into one run per device."""
    from device_bench.records import BENCH_SUMMARY_FIELDS
    runs = {}
    for r in records:
        if "error" in r or "unavailable" in r or "environment" not in r:
            continue
        env = r["environment"]
        key = (r.get("target"), env.get("hostname"), env.get("cpu"), env.get("arch"), env.get("emulated"))
        run = runs.setdefault(key, {"format": 1, "environment": dict(env, board=env.get("board") or r.get("target")),
                                    "meta": {"notes": []}, "rows": []})
        run["rows"].append({"model": r["model"], "precision": r.get("precision"), "params": r.get("params"),
                            "macs": r.get("macs"), "file_size": r.get("model_size_bytes"), "bundle": r.get("path"),
                            "bench": [{k: r[k] for k in BENCH_SUMMARY_FIELDS if k in r}]})
    return list(runs.values())


def load_results(paths):
    """Results of `edgekit run`/`demo` (results.json) or `edgekit bench --json`, from any devices."""
    runs = []
    for path in paths:
        from device_bench.manifest import read_regular
        try:
            data = json.loads(read_regular(path, 256 << 20, "results file"))
        except (ValueError, RecursionError) as e:
            raise EdgekitError(f"{path}: cannot read results ({str(e)[:200]})") from None
        if isinstance(data, list) and data and all(isinstance(r, dict) and "model" in r for r in data):
            found = runs_from_bench(data)
            if not found:
                raise EdgekitError(f"{path}: every benchmark record in it is an error")
            runs += found
            continue
        found = data.get("runs", [data]) if isinstance(data, dict) else None
        if not isinstance(found, list) or not found or not all(
                isinstance(r, dict) and isinstance(r.get("rows"), list) and isinstance(r.get("environment"), dict)
                for r in found):
            raise EdgekitError(f"{path}: not an edgekit results file (needs 'rows' and 'environment')")
        for run in found:
            try:
                table_rows(run)
            except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
                raise EdgekitError(f"{path}: a malformed row ({type(e).__name__}: {str(e)[:100]})") from None
        runs += found
    return runs


def write_report(results, outdir, progress=print):
    """Write report.md, results.json, results.csv and tradeoff.png; results is one run or a list."""
    runs = results if isinstance(results, list) else [results]
    all_rows = [row for run in runs for row in table_rows(run)]
    try:
        os.makedirs(outdir, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".report-", dir=outdir) as tmp:
            # the whole set is written aside first: a full disk or an interrupt leaves the old set whole
            write_text_atomic(os.path.join(tmp, "results.json"),
                              json.dumps(runs[0] if len(runs) == 1 else {"format": 1, "runs": runs}, indent=2) + "\n")
            write_csv(os.path.join(tmp, "results.csv"), all_rows)
            chart = plot_tradeoff(runs, os.path.join(tmp, "tradeoff.png"))
            write_text_atomic(os.path.join(tmp, "report.md"), render_markdown(runs, chart))
            for name in REPORT_FILES:
                if os.path.exists(os.path.join(tmp, name)):
                    os.replace(os.path.join(tmp, name), os.path.join(outdir, name))
                elif os.path.exists(os.path.join(outdir, name)):
                    os.unlink(os.path.join(outdir, name))  # no chart this time: no stale one beside the new set
    except OSError as e:
        raise EdgekitError(f"cannot write the report in {outdir}: {e.strerror or e}") from None
    progress(f"wrote {outdir}/report.md, results.json, results.csv" + (", tradeoff.png" if chart else ""))
    return all_rows


def render_table(rows):
    """The table as text, with only the columns that hold a value in some row."""
    return format_table(rows, [c for c in COLUMNS if any(r.get(c[1]) is not None for r in rows)])


def render_markdown(runs, chart):
    """report.md: per device, its environment, how it was measured, the table, warnings, the predictions and
    the commands to reproduce."""
    out = ["# edgekit report", "",
           "Accuracy against operations against model size against memory against inference time, in the manner "
           "of Bianco et al. 2018, measured on this device.", ""]
    for run in runs:
        rows = table_rows(run)
        out += _environment_lines(run)
        out += ["", "```", render_table(rows), "```", ""] + _method_lines(run) + _warning_lines(run)
        out += _prediction_lines(run) + _recommendation_lines(run) + _reproduce_lines(run)
    if chart:
        out += ["![trade-off](tradeoff.png)", ""]
    return "\n".join(out)


def _environment_lines(run):
    env, meta = run["environment"], run.get("meta", {})
    out = [f"## {device_label(env)}", "",
           f"- CPU: {env.get('cpu')} ({env.get('arch')}, {env.get('cores')} cores, "
           f"{env.get('vector_bits') or '?'}-bit vectors), governor {env.get('governor') or 'n/a'}",
           f"- Runtimes: {', '.join(sorted(_runtimes(run))) or runtime_label(env.get('runtime'))}; "
           f"Python {env.get('python')}, NumPy {env.get('numpy')}, {env.get('os')}",
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


def _recommendation_lines(run):
    """What `edgekit recommend` makes of this run with its defaults (the fastest build within 0.5 points)."""
    from edgekit.recommendation import recommend, render
    try:
        text = render(recommend(run))
    except EdgekitError as e:
        text = f"no recommendation: {e}"
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


def runtime_args(runtime):
    """--runtime/--api/--accelerator that pick the runtime of a runtime record again."""
    args, runtime = [], runtime or {}
    for flag, key, default in (("--runtime", "name", None), ("--api", "api", None),
                               ("--accelerator", "accelerator", "cpu")):
        if runtime.get(key) and runtime[key] != default:
            args += [flag, runtime[key]]
    return args


def bench_command(bundle, runtime, threads, runs=None, repeat=None):
    """The `edgekit bench` line that measures ``bundle`` again in ``runtime`` (a runtime record) at ``threads``."""
    args = ["edgekit", "bench", str(bundle), *runtime_args(runtime)]
    args += ["--threads", ",".join(map(str, threads))]
    args += ["--runs", str(runs)] if runs else []
    args += ["--repeat", str(repeat)] if repeat else []
    return shlex.join(args)


def evaluate_command(bundle, dataset, runtime):
    """The `edgekit evaluate` line that measures ``bundle``'s accuracy again in ``runtime``."""
    return shlex.join(["edgekit", "evaluate", str(bundle), str(dataset), *runtime_args(runtime)])


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


def plot_tradeoff(runs, path):
    """Latency against accuracy (or multiply-adds), bubble area = file size; memory against latency."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        return None
    fig, axes = plt.subplots(len(runs), 2, figsize=(14, 5.5 * len(runs)), squeeze=False)
    families = sorted({r.get("family") or "?" for run in runs for r in table_rows(run) if r.get("p50_ms")})
    colours = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    for (ax, ax_mem), run in zip(axes, runs):
        rows = [r for r in table_rows(run) if r.get("p50_ms")]
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
