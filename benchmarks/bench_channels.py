"""Channel pruning guided by measured latency (`edgekit compress --method channels`, NetAdapt) against the dense
model, side by side on scikit-learn's digits: int8 p50, raw .tflite size and held-out top-1.

For each network (MobileNetV2 1.0, MobileNet V1 1.0, SqueezeNet 1.1 at --size px, trained from scratch by
`edgekit train`): `edgekit compress --method channels --speedup S` (latency measured here, or on --target),
then both int8 builds converted by `edgekit convert` and benchmarked by `edgekit bench` in fresh processes,
interleaved over --rounds rounds (median p50, 1 thread, LiteRT XNNPACK). Held-out top-1 is compress's own
measurement of the int8 .tflite in LiteRT on the 287 held-out training images, before and after.

The goals of issue 23: >= 1.5x faster, >= 1.5x smaller raw file, top-1 within 1 point. The machine's load
average is printed with the figures: on a shared machine latency ratios move.

Usage: python benchmarks/bench_channels.py [--models mobilenet_v2,mobilenet_v1,squeezenet1_1] [--size 64]
       [--speedup 1.6] [--epochs 15] [--tune-epochs 8] [--rounds 3] [--target ssh://board --ssh-config F]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import edgekit, median  # noqa: E402
from digits_models import digits_data  # noqa: E402

ALPHA = {"mobilenet_v2": 1.0, "mobilenet_v1": 1.0, "squeezenet1_1": None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/edgekit-channels-bench")
    ap.add_argument("--models", default="mobilenet_v2,mobilenet_v1,squeezenet1_1")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--speedup", type=float, default=1.6)
    ap.add_argument("--epochs", type=int, default=15, help="edgekit train epochs")
    ap.add_argument("--tune-epochs", type=int, default=8, help="compress's final fine-tune epochs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--target", help="measure compress's latency there (ssh://host, adb://serial)")
    ap.add_argument("--ssh-config")
    a = ap.parse_args()
    work = Path(a.workdir)
    data = digits_data(work)
    rows = []
    for name in a.models.split(","):
        dense = work / f"{name}_{a.size}.keras"
        if not dense.exists():
            alpha = ["--alpha", ALPHA[name]] if ALPHA[name] else []
            edgekit("train", name, *alpha, "--size", a.size, data["train"], "-o", dense, "--epochs", a.epochs,
                    "--weights", "none", "--augment", "none", "--json")
        thin = work / f"{name}_{a.size}_channels_{a.speedup:g}x.keras"
        where = (["--target", a.target] if a.target else []) + (["--ssh-config", a.ssh_config] if a.ssh_config else [])
        record = edgekit("compress", dense, data["train"], "--method", "channels", "--speedup", a.speedup, *where,
                         "--epochs", a.tune_epochs, "--augment", "none", "-o", thin, "--force", "--json")
        before, after = record["measurements"][0], record["measurements"][-1]
        d = record["steps"][0]["details"]
        bundles = []
        for src in (dense, thin):
            summary = edgekit("convert", src, "-p", "int8", "--calibration", data["train"], "--calibration-count", 100,
                              "-o", work / "bundles", "--force", "--json")
            bundles.append(summary["bundles"][0]["bundle"])
        p50 = {b: [] for b in bundles}
        for _ in range(a.rounds):
            for r in edgekit("bench", *bundles, "--runs", 200, "--min-secs", 1, "--json"):
                p50[r["path"] if r["path"] in p50 else os.path.dirname(r["path"])].append(r["latency_ms"]["p50"])
        dense_ms, thin_ms = median(p50[bundles[0]]), median(p50[bundles[1]])
        rows.append((name, dense_ms, thin_ms, before["tflite_bytes"], after["tflite_bytes"], before["int8_top1"],
                     after["int8_top1"], d))
        print(f"{name}: {len(d['steps'])} steps; chosen: " + ", ".join(f"{s['group']} {s['before']}->{s['after']}"
                                                                          for s in d["steps"]), flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores; latency measured by compress "
          f"on {a.target or 'this machine'}; p50 below: median of {a.rounds} interleaved rounds here, 1 thread")
    print(f"{'model':16s} {'dense ms':>9s} {'pruned ms':>9s} {'speed-up':>8s} {'dense KB':>9s} {'pruned KB':>9s} "
          f"{'smaller':>7s} {'dense top-1':>11s} {'pruned top-1':>12s} {'points':>7s}")
    for name, dms, tms, db, tb, dt, tt, d in rows:
        print(f"{name:16s} {dms:9.3f} {tms:9.3f} {dms / tms:7.2f}x {db / 1e3:9.0f} {tb / 1e3:9.0f} {db / tb:6.2f}x "
              f"{dt:11.2%} {tt:12.2%} {100 * (tt - dt):+7.2f}")
    print("goals (issue 23): >= 1.5x faster, >= 1.5x smaller, within 1 point of top-1")


if __name__ == "__main__":
    main()
