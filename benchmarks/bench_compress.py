"""Train, then prune / distill / QAT, side by side on scikit-learn's digits: method x top-1 x size x latency.

Everything goes through the edgekit CLI: `edgekit train` (MobileNetV2 0.35 and SqueezeNet 1.1 at 48 px,
from scratch), `edgekit compress` for each method (its --json record gives held-out top-1 in Keras and
of the int8 .tflite in LiteRT, raw and gzip size), then every int8 bundle is benchmarked in fresh
processes, interleaved over several rounds (median p50, 1 thread).

It closes with the training outcomes tests/test_train_compress.py once asserted (a seed moves them by a
point or two, so they are figures, not tests): pruned 75% against dense top-1, the distilled student
against the same student trained alone, QAT int8 against fp32 and post-training int8. With --seeds
0,1,2 the whole run is repeated per seed (training and compression; latency on the first only), so
the spread shows.

Usage: python benchmarks/bench_compress.py [--workdir /tmp/edgekit-compress-bench] [--rounds 3] [--seeds 0]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, edgekit, median  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))


def main():
    """Train both networks, compress with each method, benchmark every int8 bundle, print the table; then the
    outcome figures, per seed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/edgekit-compress-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seeds", default="0", help="Comma-separated training seeds (the whole run once per seed).")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    outcomes = [run_seed(Path(args.workdir) / f"seed{seed}", seed, args.rounds if i == 0 else 0)
                for i, seed in enumerate(seeds)]
    print("\ntraining outcomes (top-1 on the 287 held-out training images; points = difference x 100):")
    print(f"{'seed':>4s} {'dense':>7s} {'pruned':>7s} {'pruned-dense':>12s} {'int8 pruned-dense':>17s} "
          f"{'alone':>7s} {'distilled':>9s} {'distilled-alone':>15s} {'QAT int8':>8s} {'PTQ int8':>8s} "
          f"{'QAT-fp32':>8s}")
    for seed, o in zip(seeds, outcomes):
        print(f"{seed:4d} {o['dense']:7.2%} {o['pruned']:7.2%} {100 * (o['pruned'] - o['dense']):+11.2f}p "
              f"{100 * (o['pruned_int8'] - o['dense_int8']):+16.2f}p {o['alone']:7.2%} {o['distilled']:9.2%} "
              f"{100 * (o['distilled'] - o['alone']):+14.2f}p {o['qat_int8']:8.2%} {o['dense_int8']:8.2%} "
              f"{100 * (o['qat_int8'] - o['dense']):+7.2f}p")
    print("(the tests once asserted |pruned-dense| <= 1 point, distilled >= alone, QAT int8 >= fp32 - 0.5 point)")


def run_seed(work, seed, rounds):
    """One seed's run: the table (latency when rounds > 0) printed; returns the outcome figures."""
    import digits
    train_dir = work / "digits" / "train"
    if not train_dir.exists():
        digits.write_digits(work / "digits")
    rows, files = [], {}
    for name, extra in (("mobilenet_v2", ["--alpha", 0.35]), ("squeezenet1_1", [])):
        files[name] = work / f"{name}.keras"
        edgekit("train", name, *extra, "--size", 48, train_dir, "-o", files[name], "--epochs", 12, "--augment", "none",
                "--seed", seed, "--force", "--json")
    runs = [("prune 75%", files["mobilenet_v2"], ["--method", "prune", "--sparsity", 0.75, "--epochs", 15,
                                                  "--augment", "none"]),
            ("qat", files["mobilenet_v2"], ["--method", "qat", "--epochs", 4, "--augment", "none"]),
            ("prune 75% + qat", files["mobilenet_v2"], ["--method", "prune", "--method", "qat", "--sparsity", 0.75,
                                                        "--epochs", 15, "--augment", "none"]),
            ("distill sq1.1 -> mnv2 0.35", files["squeezenet1_1"], ["--method", "distill", "--student", "mobilenet_v2",
                                                                    "--alpha", 0.35, "--epochs", 4])]
    outputs, records = {}, {}
    for label, source, options in runs:
        out = work / (label.replace(" ", "_").replace("%", "").replace(">", "") + ".keras")
        record = edgekit("compress", source, train_dir, "-o", out, "--force", "--json", "--seed", seed, *options)
        records[label] = record
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
        if rounds and row.get("tflite_bytes") and src not in bundles:
            summary = edgekit("convert", src, "-p", "int8", "--calibration", train_dir, "--calibration-count", 100,
                              "-o", work / "bundles", "--force", "--json")
            bundles[src] = summary["bundles"][0]["bundle"]
    p50 = {b: [] for b in bundles.values()}
    for _ in range(rounds):
        for r in edgekit("bench", *bundles.values(), "--runs", 200, "--min-secs", 1, "--json"):
            p50[r["path"] if r["path"] in p50 else os.path.dirname(r["path"])].append(r["latency_ms"]["p50"])
    print(f"\nseed {seed}\n{'method':34s} {'top-1':>7s} {'int8 top-1':>10s} {'raw KB':>7s} {'gzip KB':>8s} {'gzip/dense':>10s} "
          f"{'p50 ms':>7s}")
    dense = {}
    for row in rows:
        src = outputs.get(row["method"]) or files["mobilenet_v2" if "mobilenet" in row["method"] else "squeezenet1_1"]
        latency = median(p50[bundles[src]]) if src in bundles and p50[bundles[src]] else None
        if row["method"].startswith("dense"):
            dense = row
        ratio = row["gzip_bytes"] / dense["gzip_bytes"] if row.get("gzip_bytes") and dense.get("gzip_bytes") else None
        print(f"{row['method']:34s} {row['top1']:7.2%} " + (f"{row['int8_top1']:10.2%} {row['tflite_bytes'] / 1e3:7.0f} "
              f"{row['gzip_bytes'] / 1e3:8.0f} {ratio:10.2f} " + (f"{latency:7.3f}" if latency else "")
              if row.get("tflite_bytes") else ""))
    print("\ntop-1 on the 287 held-out training images (Keras fp32; int8 .tflite in LiteRT); p50: median over "
          f"{rounds} interleaved fresh-process rounds, 1 thread, XNNPACK" if rounds else "(latency: first seed only)")
    dense, pruned = records["prune 75%"]["measurements"][0], records["prune 75%"]["measurements"][-1]
    d = records["distill sq1.1 -> mnv2 0.35"]["steps"][0]["details"]
    return {"dense": dense["top1"], "dense_int8": dense["int8_top1"], "pruned": pruned["top1"],
            "pruned_int8": pruned["int8_top1"], "alone": d["student_alone_top1"], "distilled": d["distilled_top1"],
            "qat_int8": records["qat"]["measurements"][-1]["int8_top1"]}


if __name__ == "__main__":
    main()
