"""Train, then prune / distill / QAT, side by side on scikit-learn's digits: method x top-1 x size x latency.

Everything goes through the edgekit CLI: `edgekit train` (MobileNetV2 0.35 and SqueezeNet 1.1 at 48 px,
from scratch), `edgekit compress` for each method (its --json record gives held-out top-1 in Keras and
of the int8 .tflite in LiteRT, raw and gzip size), then every int8 bundle is benchmarked in fresh
processes, interleaved over several rounds (median p50, 1 thread).

Usage: python benchmarks/bench_compress.py [--workdir /tmp/edgekit-compress-bench] [--rounds 3]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, median  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))


def edgekit(*args):
    """Run the edgekit CLI; its stdout (JSON) parsed."""
    proc = subprocess.run([PY, "-m", "edgekit.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode:
        sys.exit(f"edgekit {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def main():
    """Train both networks, compress with each method, benchmark every int8 bundle, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/edgekit-compress-bench")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(args.workdir)
    import digits
    train_dir = work / "digits" / "train"
    if not train_dir.exists():
        digits.write_digits(work / "digits")
    rows, files = [], {}
    for name, extra in (("mobilenet_v2", ["--alpha", 0.35]), ("squeezenet1_1", [])):
        files[name] = work / f"{name}.keras"
        edgekit("train", name, *extra, "--size", 48, train_dir, "-o", files[name], "--epochs", 12, "--augment", "none",
                "--force", "--json")
    runs = [("prune 75%", files["mobilenet_v2"], ["--method", "prune", "--sparsity", 0.75, "--epochs", 15,
                                                  "--augment", "none"]),
            ("qat", files["mobilenet_v2"], ["--method", "qat", "--epochs", 2, "--augment", "none"]),
            ("prune 75% + qat", files["mobilenet_v2"], ["--method", "prune", "--method", "qat", "--sparsity", 0.75,
                                                        "--epochs", 15, "--augment", "none"]),
            ("distill sq1.1 -> mnv2 0.35", files["squeezenet1_1"], ["--method", "distill", "--student", "mobilenet_v2",
                                                                    "--alpha", 0.35, "--epochs", 4])]
    outputs = {}
    for label, source, options in runs:
        out = work / (label.replace(" ", "_").replace("%", "").replace(">", "") + ".keras")
        record = edgekit("compress", source, train_dir, "-o", out, "--force", "--json", *options)
        if not rows or label.startswith("distill"):
            first = record["measurements"][0]
            rows.append(dict(first, method=f"dense ({Path(record['source']).stem})"))
        rows.append(dict(record["measurements"][-1], method=label))
        if label.startswith("distill"):
            d = record["steps"][0]["details"]
            rows.append({"method": "student alone (same seed, epochs)", "top1": d["student_alone_top1"]})
        outputs[label] = out
    # latency again, interleaved over rounds in fresh processes, from bundles `edgekit convert` writes
    bundles = {}
    for row in rows:
        src = outputs.get(row["method"]) or files["mobilenet_v2" if "mobilenet" in row["method"] else "squeezenet1_1"]
        if row.get("tflite_bytes") and src not in bundles:
            summary = edgekit("convert", src, "-p", "int8", "--calibration", train_dir, "--calibration-count", 100,
                              "-o", work / "bundles", "--force", "--json")
            bundles[src] = summary["bundles"][0]["bundle"]
    p50 = {b: [] for b in bundles.values()}
    for _ in range(args.rounds):
        for r in edgekit("bench", *bundles.values(), "--runs", 200, "--min-secs", 1, "--json"):
            p50[r["path"] if r["path"] in p50 else os.path.dirname(r["path"])].append(r["latency_ms"]["p50"])
    print(f"\n{'method':34s} {'top-1':>7s} {'int8 top-1':>10s} {'raw KB':>7s} {'gzip KB':>8s} {'gzip/dense':>10s} "
          f"{'p50 ms':>7s}")
    dense = {}
    for row in rows:
        src = outputs.get(row["method"]) or files["mobilenet_v2" if "mobilenet" in row["method"] else "squeezenet1_1"]
        latency = median(p50[bundles[src]]) if src in bundles and p50[bundles[src]] else None
        if row["method"].startswith("dense"):
            dense = row
        ratio = row["gzip_bytes"] / dense["gzip_bytes"] if row.get("gzip_bytes") and dense.get("gzip_bytes") else None
        print(f"{row['method']:34s} {row['top1']:7.2%} " + (f"{row['int8_top1']:10.2%} {row['tflite_bytes'] / 1e3:7.0f} "
              f"{row['gzip_bytes'] / 1e3:8.0f} {ratio:10.2f} {latency:7.3f}" if row.get("tflite_bytes") else ""))
    print("\ntop-1 on the 287 held-out training images (Keras fp32; int8 .tflite in LiteRT); p50: median over "
          f"{args.rounds} interleaved fresh-process rounds, 1 thread, XNNPACK")


if __name__ == "__main__":
    main()
