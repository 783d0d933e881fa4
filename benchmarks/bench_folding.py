"""What folding the normalization into the graph costs: latency of folded / unfolded bundles.

MobileNetV2 1.0/224 (random weights: latency does not depend on them), every precision, 1 thread.
Each round benchmarks every bundle in a fresh process, in alternating order, and the ratio is taken
per round, so the machine's drift cancels; the median ratio over rounds is printed.

Usage: python benchmarks/bench_folding.py [--rounds 6] [--runs 200] [--workdir /tmp/edgekit-fold]
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, median  # noqa: E402

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


def convert(out, fold):
    """MobileNetV2 bundles, folded or not, through the edgekit CLI (reused if already there)."""
    want = {p: out / f"mobilenet_v2_100_224_{p}" for p in PRECISIONS}
    if not all(w.exists() for w in want.values()):
        args = [PY, "-m", "edgekit.cli", "convert", "mobilenet_v2", "-o", str(out), "--force",
                "--fold-preprocessing" if fold else "--no-fold-preprocessing"]
        for p in PRECISIONS:
            args += ["-p", p]
        subprocess.run(args, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return want


def p50(bundle, runs):
    out = subprocess.run([PY, "-m", "device_bench", "bench", str(bundle), "--runs", str(runs), "--min-secs", "0",
                          "--warmup-runs", "20", "--warmup-secs", "0", "--in-process", "--json"],
                         capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return json.loads(out.stdout)[0]["latency_ms"]["p50"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workdir", default="/tmp/edgekit-fold")
    a = parser.parse_args()
    from pathlib import Path
    folded, unfolded = convert(Path(a.workdir) / "folded", True), convert(Path(a.workdir) / "unfolded", False)
    ratios = {p: [] for p in PRECISIONS}
    times = {(p, kind): [] for p in PRECISIONS for kind in ("folded", "unfolded")}
    for r in range(a.rounds):
        for p in PRECISIONS:
            order = [("folded", folded[p]), ("unfolded", unfolded[p])]
            measured = dict((kind, p50(b, a.runs)) for kind, b in (order if r % 2 == 0 else order[::-1]))
            for kind, ms in measured.items():
                times[(p, kind)].append(ms)
            ratios[p].append(measured["folded"] / measured["unfolded"])
    print(f"MobileNetV2 1.0/224, 1 thread, {a.rounds} alternating rounds of {a.runs} runs")
    print(f"{'precision':10s} {'folded p50 ms':>14s} {'unfolded p50 ms':>16s} {'folded/unfolded':>16s}")
    for p in PRECISIONS:
        print(f"{p:10s} {median(times[(p, 'folded')]):14.3f} {median(times[(p, 'unfolded')]):16.3f} "
              f"{median(ratios[p]):16.3f}")


if __name__ == "__main__":
    main()
