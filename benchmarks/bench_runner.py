"""device_bench against a bare invoke() loop and Google's benchmark_litert_model, side by side.

MobileNetV2 1.0/224 int8, one thread, interleaved rounds in one run (at least 6, the order of the three
measurements reversed every other round, so a drifting machine weighs on each alike). Prints:
  - runner p50 / bare-loop p50 (target <= 1.02)
  - device_bench p50 beside benchmark_litert_model's median
  - `python -m device_bench --help` start-up (target < 0.3 s)
  - peak RSS of the bench process / a bare LiteRT process (target <= 1.1)

Usage: python benchmarks/bench_runner.py [--rounds 6] [--workdir /tmp/edgekit-bench]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, median, mobilenet_v2_bundles  # noqa: E402

BARE = r"""
import sys, time, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
n = int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
it.set_tensor(d["index"], np.frombuffer(np.random.default_rng(0).bytes(n), d["dtype"]).reshape(d["shape"]))
for _ in range(int(sys.argv[3])):
    it.invoke()
ms = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); it.invoke(); ms.append((time.perf_counter() - t) * 1e3)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(float(np.percentile(ms, 50)), int(hwm) / 1024)
"""


def device_bench(model, runs):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([PY, "-m", "device_bench", "bench", model, "--runs", str(runs), "--min-secs", "0",
                          "--warmup-runs", "20", "--warmup-secs", "0", "--in-process", "--json"],
                         capture_output=True, text=True, env=env, check=True).stdout
    row = json.loads(out)[0]
    return row["latency_ms"]["p50"], row["peak_rss_mb"]


def bare(model, runs):
    out = subprocess.run([PY, "-c", BARE, model, str(runs), "20"], capture_output=True, text=True, check=True)
    p50, rss = out.stdout.split()
    return float(p50), float(rss)


def google(model, runs):
    proc = subprocess.run([PY, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={model}",
                           f"--num_runs={runs}", "--num_threads=1", "--warmup_runs=20"],
                          capture_output=True, text=True)
    m = re.search(r"[Mm]edian[^0-9]*([0-9.]+)", proc.stdout + proc.stderr)
    return float(m.group(1)) if m else None


def startup(n=10):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([PY, "-m", "device_bench", "--help"], capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t)
    return median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--workdir", default="/tmp/edgekit-bench")
    a = ap.parse_args()
    if a.rounds < 6:
        ap.error("--rounds must be at least 6: fewer cannot tell a 5% difference from process-to-process noise")
    (model,) = [str(p / "model.tflite") for p in mobilenet_v2_bundles(a.workdir, ("int8",))]
    rows = []
    for r in range(a.rounds):
        steps = [("db", device_bench), ("bare", bare), ("google", google)]
        got = {name: run(model, a.runs) for name, run in (steps if r % 2 == 0 else reversed(steps))}
        (db, db_rss), (ba, ba_rss), g = got["db"], got["bare"], got["google"]
        rows.append((db, ba, g, db_rss, ba_rss))
        print(f"round {r + 1}: device_bench p50 {db:.3f} ms, bare loop p50 {ba:.3f} ms, "
              f"benchmark_litert_model median {g if g is None else f'{g:.3f}'} ms, "
              f"peak RSS {db_rss:.1f} MB vs bare {ba_rss:.1f} MB")
    db, ba = median([r[0] for r in rows]), median([r[1] for r in rows])
    gs = [r[2] for r in rows if r[2] is not None]
    rss_ratio = median([r[3] / r[4] for r in rows])
    up = startup()
    print()
    print(f"MobileNetV2 1.0/224 int8, 1 thread, {a.runs} timed runs x {a.rounds} interleaved rounds "
          f"(alternating order)")
    print(f"runner p50 / bare invoke() loop p50: {db / ba:.3f}  (target <= 1.02)")
    if gs:
        print(f"device_bench p50 {db:.3f} ms beside benchmark_litert_model median {median(gs):.3f} ms "
              f"(ratio {db / median(gs):.3f}; different engines: Interpreter vs CompiledModel)")
    print(f"python -m device_bench --help start-up: {up:.3f} s  (target < 0.3 s)")
    print(f"peak RSS bench / bare LiteRT process: {rss_ratio:.3f}  (target <= 1.1)")


if __name__ == "__main__":
    main()
