"""A study's results as flat rows: one per model x precision x runtime x threads, with the derived ratios,
read from results.json files or `edgekit bench --json` records. The report, the chart and recommend all
read these rows; computing them is the only place that knows the results' nested layout."""

import json
import shlex

from device_bench.environment import device_label
from device_bench.errors import EdgekitError
from device_bench.views import runtime_label

ENVIRONMENT_KEYS = ("cpu", "arch")  # what every results file's environment records (device_bench.environment)
# the report's table: (header, row key), in the order report.md and report.html show them
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
    out = {"init_ms": b["init_ms"], "p50_ms": lat["p50"], "p90_ms": lat.get("p90"), "peak_rss_mb": b["peak_rss_mb"],
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


def bench_entries(results):
    """(study row, benchmark entry or None) in table order: table_rows gives one flat row for each."""
    return [(r, b) for r in results["rows"] for b in r.get("bench") or [None]]


def table_rows(results):
    """Flat rows for the table, CSV, chart and recommend: one per model x precision x runtime x threads, with
    the derived ratios (against the same model's fp32 build, in the same runtime, at the same threads)."""
    env = results["environment"]
    rows = []
    fp32 = {}
    for r, b in bench_entries(results):
        runtime = (b or {}).get("runtime")
        row = {"device": (b or {}).get("target") or device_label(env), "model": r["model"], "family": r.get("family"),
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
            fp32[(row["device"], row["model"], row["threads"], row["runtime"])] = row
        rows.append(row)
    for row in rows:
        base = fp32.get((row["device"], row["model"], row["threads"], row["runtime"]))
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
        run = runs.setdefault(key, {"schema": 1, "environment": dict(env, board=env.get("board") or r.get("target")),
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
        _check_schema(path, data)
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
        for run in found:  # the environment is what makes a figure reproducible: a report without it says nothing
            missing = [k for k in ENVIRONMENT_KEYS if k not in run["environment"]]
            if missing:
                raise EdgekitError(f"{path}: the environment lacks {', '.join(missing)}; not an edgekit results file")
        for run in found:
            try:
                table_rows(run)
            except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as e:
                raise EdgekitError(f"{path}: a malformed row ({type(e).__name__}: {str(e)[:100]})") from None
        runs += found
    return runs


def _check_schema(path, data):
    """Results written by another schema version are refused by name, not misread."""
    from device_bench.records import SCHEMA
    inner = data.get("runs") if isinstance(data, dict) else data
    found = [data] + (inner if isinstance(inner, list) else [])
    other = next((d["schema"] for d in found if isinstance(d, dict) and d.get("schema", SCHEMA) != SCHEMA), None)
    if other is not None:
        raise EdgekitError(f"{path}: results of schema version {other!r}; this edgekit reads schema {SCHEMA}")


RUNTIME_FLAGS = (("--runtime", "name", None), ("--api", "api", None), ("--accelerator", "accelerator", "cpu"))


def _flags(runtime, keys):
    return [arg for flag, key, default in keys if runtime.get(key) and runtime[key] != default
            for arg in (flag, runtime[key])]


def runtime_args(runtime):
    """--runtime/--api/--accelerator that pick the runtime of a runtime record again where device_bench runs. A
    phone's record gives none: its benchmark_model is no runtime here (bench_command reaches the phone again)."""
    runtime = runtime or {}
    return [] if runtime.get("binary") else _flags(runtime, RUNTIME_FLAGS)


def bench_command(bundle, runtime, threads, runs=None, repeat=None):
    """The `edgekit bench` line that measures ``bundle`` again in ``runtime`` (a runtime record) at ``threads``; on a
    phone, through --target and --benchmark-binary (and --accelerator)."""
    runtime = runtime or {}
    where = runtime_args(runtime)
    if runtime.get("binary"):
        where = ["--target", runtime.get("target") or "adb", "--benchmark-binary", runtime["binary"],
                 *_flags(runtime, RUNTIME_FLAGS[2:])]
    args = ["edgekit", "bench", str(bundle), *where]
    args += ["--threads", ",".join(map(str, threads))]
    args += ["--runs", str(runs)] if runs else []
    args += ["--repeat", str(repeat)] if repeat else []
    return shlex.join(args)


def evaluate_command(bundle, dataset, runtime):
    """The `edgekit evaluate` line that measures ``bundle``'s accuracy again in ``runtime``."""
    return shlex.join(["edgekit", "evaluate", str(bundle), str(dataset), *runtime_args(runtime)])
