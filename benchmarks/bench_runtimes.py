"""The runtime shoot-out: the same MobileNetV2 1.0/224 files (fp32 and int8) at 1 and 2 threads in every
runtime installed (LiteRT's Interpreter and CompiledModel, OpenVINO, and tflite-runtime from its own venv
when `make test` made it), each configuration in fresh processes interleaved across configurations.

Prints, per build and thread count:
  - the median of process medians in each runtime, with the spread across processes;
  - the measured ceiling (a dense 1x1 convolution timed in the same process, runtime and threads) and the
    fraction of it the build achieves, which cannot exceed 1 for a true ceiling; the nominal
    clock x lanes figure beside it for reference.
Random weights (timing only): every figure here holds for any weights.

Usage: python benchmarks/bench_runtimes.py [--repeat 5] [--runs 100] [--workdir /tmp/edgekit-bench]
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, mobilenet_v2_bundles  # noqa: E402

TFRT = ROOT / ".venv-tflite-runtime" / "bin" / "python"
COLUMNS = [("litert", "interpreter", "LiteRT Interpreter"), ("litert", "compiled", "LiteRT CompiledModel"),
           ("tflite-runtime", "interpreter", "tflite-runtime"), ("openvino", "compiled", "OpenVINO")]


def bench(python, models, runtime, a):
    """device_bench bench --json in ``python``: every configuration, --repeat processes each, interleaved."""
    args = [python, "-m", "device_bench", "bench", *map(str, models), "--runtime", runtime, "--threads", "1,2",
            "--repeat", str(a.repeat), "--runs", str(a.runs), "--min-secs", "1", "--json"]
    proc = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if not proc.stdout.strip():
        sys.exit(f"{python} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def cell(r):
    """One runtime's figure for a build: median of process medians, [lowest-highest process median], spread."""
    if r is None:
        return "not installed"
    if "latency_ms" not in r:
        return (r.get("error") or r.get("unavailable") or "?")[:40]
    s = r["latency_spread"]
    return f"{r['latency_ms']['p50']:.2f} ms [{s['p50_min']:.2f}-{s['p50_max']:.2f}] {s['relative']:.0%}"


def table(lookup):
    """The shoot-out: builds and thread counts down, runtimes across."""
    head = "| build, threads | " + " | ".join(c[2] for c in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for precision in ("fp32", "int8"):
        for threads in (1, 2):
            cells = [cell(lookup.get((precision, threads, n, api))) for n, api, _ in COLUMNS]
            lines.append(f"| {precision}, {threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ceiling_table(rows):
    """Each measured build's MAC/s against its measured ceiling and the nominal peak; and the highest fraction."""
    lines = ["| build, threads, runtime | p50 ms | GMAC/s | measured ceiling GMAC/s | of ceiling | nominal GMAC/s | "
             "of nominal |", "|---|---|---|---|---|---|---|"]
    highest = 0.0
    for r in rows:
        if "latency_ms" not in r:
            continue
        c, got = r.get("ceiling") or {}, r.get("achieved") or {}
        frac = got.get("fraction_of_ceiling")
        highest = max(highest, frac or 0.0)
        nominal = c.get("nominal_macs_per_s")
        lines.append(f"| {r['precision']}, {r['threads']}, {r['runtime']['name']} {r['runtime']['api']} | "
                     f"{r['latency_ms']['p50']:.2f} | {got['macs_per_s'] / 1e9:.1f} | "
                     f"{c['macs_per_s'] / 1e9:.1f} ({c['precision']} kernel) | {frac:.3f} | "
                     + (f"{nominal / 1e9:.1f} | {got['fraction_of_nominal']:.3f} |" if nominal else "- | - |"))
    return "\n".join(lines), highest


def main():
    """Benchmark, then print both tables and every warning."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--workdir", default="/tmp/edgekit-bench")
    a = ap.parse_args()
    models = mobilenet_v2_bundles(a.workdir, ("fp32", "int8"))
    load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    rows = bench(PY, models, "all", a)
    if TFRT.exists():
        rows += bench(str(TFRT), models, "tflite-runtime", a)
    with open(os.path.join(a.workdir, "runtimes.json"), "w") as f:  # every process's figures, for a second look
        json.dump(rows, f, indent=1)
    lookup = {(r["precision"], r["threads"], r["runtime"]["name"], r["runtime"]["api"]): r for r in rows}
    env = rows[0]["environment"]
    print(f"MobileNetV2 1.0/224 (random weights), {env['cpu']}, {env['cores']} cores, {a.repeat} fresh processes "
          f"per configuration, interleaved; {a.runs}+ timed runs (>= 1 s) each; 1-min load average {load:.1f} "
          f"before, {os.getloadavg()[0]:.1f} after\n")
    print("Median of process medians [lowest-highest process median] spread = (highest - lowest) / median:\n")
    print(table(lookup))
    ceilings, highest = ceiling_table(rows)
    print("\nMeasured ceiling (1x1 conv [1,16,16,512] -> 512, best run, same process, runtime and threads) and the "
          "fraction each build achieves:\n")
    print(ceilings)
    print(f"\nhighest fraction of the measured ceiling: {highest:.3f} (must not exceed 1)")
    for r in rows:
        for w in r.get("warnings") or []:
            print(f"warning: {r['precision']} {r['threads']}t {r['runtime']['name']} {r['runtime'].get('api')}: {w}")


if __name__ == "__main__":
    main()
