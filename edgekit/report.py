"""The report: one table row per model x precision x threads, report.md, results.json/.csv and
tradeoff.png, from one run or from saved results of several devices (`edgekit report`)."""

import json
import os
import tempfile

from device_bench.environment import device_label
from device_bench.errors import EdgekitError
from device_bench.safe_write import write_text_atomic
from device_bench.views import format_table, write_csv

REPORT_FILES = ("results.json", "results.csv", "tradeoff.png", "report.md")
MARKERS = {"fp32": "o", "fp16": "s", "dynamic": "^", "int8": "D"}
COLUMNS = [
    ("model", "model"), ("precision", "precision"), ("threads", "threads"), ("params", "params"),
    ("MACs (M)", "macs_m"), ("size MB", "size_mb"), ("gzip MB", "gzip_mb"), ("size vs fp32", "size_vs_fp32"),
    ("top-1", "top1"), ("top-5", "top5"), ("agree fp32", "agreement_fp32"),
    ("init ms", "init_ms"), ("p50 ms", "p50_ms"), ("p90 ms", "p90_ms"), ("speed-up", "speedup_vs_fp32"),
    ("peak RSS MB", "peak_rss_mb"), ("GMAC/s", "gmacs_per_s"), ("of peak", "fraction_of_peak"), ("error", "error"),
]


def peak_macs_per_s(env, threads, precision):
    """Peak multiply-adds/s: threads x clock x (vector bits / 32 lanes) x 2 FMA units, and 4x that for
    int8 and dynamic-range kernels on CPUs with int8 dot products (VNNI, ARM dotprod); None if unknown."""
    mhz = env.get("max_frequency_mhz") or env.get("frequency_mhz") or env.get("cpuinfo_mhz")
    bits = env.get("vector_bits")
    if not mhz or not bits:
        return None
    per_lane = 4 if precision in ("int8", "dynamic") and env.get("int8_dot") else 1
    return threads * mhz * 1e6 * (bits / 32) * 2 * per_lane


def table_rows(results):
    """Flat rows for the table, CSV and chart, with the derived ratios."""
    env = results["environment"]
    rows = []
    fp32 = {}
    for r in results["rows"]:
        for b in r.get("bench") or [None]:
            row = {"device": device_label(env), "model": r["model"], "family": r.get("family"),
                   "precision": r["precision"], "threads": b and b["threads"], "params": r.get("params"),
                   "macs_m": r.get("macs") and r["macs"] / 1e6, "size_mb": r.get("file_size") and r["file_size"] / 1e6,
                   "gzip_mb": r.get("gzip_size") and r["gzip_size"] / 1e6, "variant": r.get("variant"),
                   "top1": r.get("top1"), "top5": r.get("top5"), "agreement_fp32": r.get("agreement_fp32"),
                   "trained_weights": r.get("trained_weights"), "error": r.get("error")}
            if b:
                lat = b["latency_ms"]
                row.update(init_ms=b["init_ms"], p50_ms=lat["p50"], p90_ms=lat["p90"], peak_rss_mb=b["peak_rss_mb"])
                if r.get("macs"):
                    row["gmacs_per_s"] = r["macs"] / (lat["p50"] / 1e3) / 1e9
                    peak = peak_macs_per_s(env, b["threads"], r["precision"])
                    row["fraction_of_peak"] = row["gmacs_per_s"] * 1e9 / peak if peak else None
            if row["precision"] == "fp32":
                fp32[(row["model"], row["threads"])] = row
            rows.append(row)
    for row in rows:
        base = fp32.get((row["model"], row["threads"]))
        if base and row.get("size_mb") and base.get("size_mb"):
            row["size_vs_fp32"] = row["size_mb"] / base["size_mb"]
        if base and row.get("p50_ms") and base.get("p50_ms"):
            row["speedup_vs_fp32"] = base["p50_ms"] / row["p50_ms"]
    return rows


def runs_from_bench(records):
    """`edgekit bench --json` records (local or from --target boards), grouped into one run per device."""
    runs = {}
    for r in records:
        if "error" in r or "environment" not in r:
            continue
        env = r["environment"]
        key = (r.get("target"), env.get("hostname"), env.get("cpu"), env.get("arch"), env.get("emulated"))
        run = runs.setdefault(key, {"format": 1, "environment": dict(env, board=env.get("board") or r.get("target")),
                                    "meta": {"notes": []}, "rows": []})
        run["rows"].append({"model": r["model"], "precision": r.get("precision"), "params": r.get("params"),
                            "macs": r.get("macs"), "file_size": r.get("model_size_bytes"),
                            "bench": [{k: r.get(k) for k in ("threads", "init_ms", "first_ms", "latency_ms",
                                                             "peak_rss_mb")}]})
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
    """report.md: per device, its environment, the table, the predictions and the commands to reproduce."""
    out = ["# edgekit report", "",
           "Accuracy against operations against model size against memory against inference time, in the manner "
           "of Bianco et al. 2018, measured on this device.", ""]
    for run in runs:
        env, meta = run["environment"], run.get("meta", {})
        rows = table_rows(run)
        out += [f"## {device_label(env)}", "",
                f"- CPU: {env.get('cpu')} ({env.get('arch')}, {env.get('cores')} cores, "
                f"{env.get('vector_bits') or '?'}-bit vectors), governor {env.get('governor') or 'n/a'}",
                f"- Runtime: {(env.get('runtime') or {}).get('name')} {(env.get('runtime') or {}).get('version')}, "
                f"Python {env.get('python')}, NumPy {env.get('numpy')}, {env.get('os')}",
                f"- Created {meta.get('created', '?')}, run took {meta.get('seconds', '?')} s", ""]
        if env.get("emulated"):
            out += ["**Emulated CPU: the timings below say nothing about the real device.**", ""]
        for note in meta.get("notes", []):
            out.append(f"- {note}")
        if any(r.get("trained_weights") is False for r in run["rows"]):
            out += ["", "**Random weights.** Some models ran with random weights (no trained weights were "
                    "available). Their latency, memory, size, parameter and multiply-add figures hold for any "
                    "weights; predictions, accuracy and agreement need trained weights, so none are shown for "
                    "them. (A random network's activations shrink below int8's smallest scale, so its int8 "
                    "outputs are all the same value.)"]
        out += ["", "```", render_table(rows), "```", "",
                "- *size vs fp32* and *speed-up* are against the same model's fp32 bundle at the same threads.",
                "- *peak RSS* is the benchmark process's high-water mark (VmHWM): Python, NumPy and the runtime "
                "included, one fresh process per configuration.",
                "- *GMAC/s* is multiply-adds / p50 latency. *of peak* divides it by the CPU's peak: threads x "
                "clock x (vector bits / 32) x 2 FMA units, times 4 for int8 and dynamic builds where the CPU "
                "has int8 dot products (VNNI, dotprod). A rough ceiling: turbo clocks and port counts vary.", ""]
        preds = [r for r in run["rows"] if r.get("predictions") and r["precision"] == "fp32"]
        if preds:
            out += ["### Predictions (fp32, top-1)", "", "| image | " + " | ".join(r["model"] for r in preds) + " |",
                    "|---|" + "---|" * len(preds)]
            for i, p in enumerate(preds[0]["predictions"]):
                cells = []
                for r in preds:
                    q = r["predictions"][i] if i < len(r["predictions"]) else {}
                    cells.append(f"{q['top'][0]['label']} ({q['top'][0]['score']:.0%})" if q.get("top") else "error")
                out.append(f"| {p['image']} | " + " | ".join(cells) + " |")
            out.append("")
        cfg = meta.get("config", {})
        out += ["### Reproduce", "", "```"]
        for r in run["rows"]:
            if r.get("convert_command"):
                out.append(r["convert_command"])
        for r in run["rows"]:
            if r.get("bundle") and not r.get("error"):
                out.append(f"edgekit bench {r['bundle']} --threads {','.join(str(b['threads']) for b in r['bench'])} "
                           f"--runs {cfg.get('runs', 50)}")
            if r.get("top1") is not None:
                out.append(f"edgekit evaluate {r['bundle']} {cfg.get('evaluate')}")
        out += ["edgekit report results.json -o OUTDIR", "```", ""]
    if chart:
        out += ["![trade-off](tradeoff.png)", ""]
    return "\n".join(out)


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
