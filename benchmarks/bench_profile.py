"""How much of OpenVINO's end-to-end time `edgekit profile`'s op rows account for, and Vela's estimate of the
default int8 MobileNetV2 0.35/96 bundle with the share of its input normalization (issue 21).

Host: the default int8 MobileNetV2 1.0/224 bundle, 1 thread; each round is a fresh `edgekit profile --json`
process; per round the op times' sum over the end-to-end p50 of the same runs (and each run's node times
summed, median over runs, over that p50). The medians over rounds are printed.

Vela: `edgekit profile --accelerator ethos-u55-128` (deterministic): total ms and cycles, and the MUL and ADD
of layer `normalize` (the folded preprocessing) as a share of the op cycles.

Usage: python benchmarks/bench_profile.py [--rounds 5] [--runs 100] [--workdir /tmp/edgekit-profile]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, median  # noqa: E402


def edgekit(*args):
    done = subprocess.run([PY, "-m", "edgekit.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr.strip())
    return done.stdout


def bundle(workdir, alpha=None, size=None):
    name = f"mobilenet_v2_{int(float(alpha or 1) * 100):03d}_{size or 224}_int8"
    path = Path(workdir) / name
    if not path.exists():
        extra = ["--alpha", alpha, "--size", size] if alpha else []
        edgekit("convert", "mobilenet_v2", *extra, "-p", "int8", "-o", workdir)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--workdir", default="/tmp/edgekit-profile")
    a = ap.parse_args()
    host, ratios, node_ratios = bundle(a.workdir), [], []
    for k in range(a.rounds):
        p = json.loads(edgekit("profile", host, "--runs", a.runs, "--min-secs", 2, "--json"))
        ratios.append(p["op_sum_over_end_to_end"])
        node_ratios.append(p["settings"]["node_sum_p50_ms"] / p["end_to_end_ms"])
        print(f"round {k + 1}: op sum {p['op_ms']:.2f} ms, end-to-end p50 {p['end_to_end_ms']:.2f} ms "
              f"({ratios[-1]:.2f}); per-run node sum p50 {p['settings']['node_sum_p50_ms']:.2f} ms", flush=True)
    print(f"host, {host.name}: op sum / end-to-end p50, median of {a.rounds} rounds: {median(ratios):.3f} "
          f"(per-run node sum: {median(node_ratios):.3f}); load average {os.getloadavg()[0]:.1f}")
    small = bundle(a.workdir, "0.35", "96")
    v = json.loads(edgekit("profile", small, "--accelerator", "ethos-u55-128", "--json"))
    norm = [r for r in v["rows"] if r["layer"] == "normalize"]
    cycles = sum(r["cycles"] or 0 for r in v["rows"])
    share = sum(r["cycles"] for r in norm) / cycles
    print(f"Vela, {small.name} on ethos-u55-128: {v['end_to_end_ms']:.3f} ms, {v['settings']['cycles_total']:,} "
          f"cycles total, {cycles:,} op cycles; normalization ({', '.join(r['op'] for r in norm)}) "
          f"{sum(r['cycles'] for r in norm):,} cycles = {share:.1%} of op cycles")


if __name__ == "__main__":
    main()
