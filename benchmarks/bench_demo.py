"""Time and memory of each stage of `edgekit demo`, from a warm virtual environment.

Runs the demo in a fresh process (bundles rebuilt with --force), then prints the stages it
recorded, the total wall time (target: within 10 minutes on a 2-core machine) and the peak
resident memory of the host process and of the benchmark processes.

Usage: python benchmarks/bench_demo.py [--workdir /tmp/edgekit-demo-bench]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/edgekit-demo-bench")
    a = ap.parse_args()
    t = time.perf_counter()
    proc = subprocess.run([PY, "-m", "edgekit.cli", "demo", "-o", a.workdir, "--force"], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        sys.exit(proc.stderr[-2000:])
    results = json.load(open(os.path.join(a.workdir, "results.json")))
    print(f"{'model':28s} {'stage':20s} {'seconds':>8s} {'edgekit RSS MB':>15s} {'bench process RSS MB':>21s}")
    for s in results["meta"]["stages"]:
        own = f"{s['process_peak_rss_mb']:.1f}" if s.get("process_peak_rss_mb") else "-"
        print(f"{s['model']:28s} {s['stage']:20s} {s['seconds']:8.2f} {s['host_peak_rss_mb']:15.1f} {own:>21s}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print()
    print(f"edgekit demo: {wall:.1f} s wall (target: within 600 s), exit status {proc.returncode}")
    print(f"largest process (the host, with TensorFlow): {children:.0f} MB peak RSS")
    for note in results["meta"]["notes"]:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
