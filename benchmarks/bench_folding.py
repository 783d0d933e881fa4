"""What folding the normalization into the graph costs: latency of folded / unfolded bundles, and how many
answers the folded and unfolded builds of the same trained model share.

Latency: MobileNetV2 1.0/224 (random weights: latency does not depend on them), every precision, 1 thread.
Each round benchmarks every bundle in a fresh process, in alternating order, and the ratio is taken
per round, so the machine's drift cancels; the median ratio over rounds is printed. The same rounds
measure the I/O edge: the folded int8 build with uint8 input and output against the same with int8 I/O.

Agreement: the test suite's digits models (tests/conftest.py's DIGIT_MODELS, one set per --seeds entry),
converted folded and unfolded at every precision (int8 calibrated on the same 200 training images),
evaluated on the 360 held-out digits: top-1 of each and the share of images given the same top-1.

Usage: python benchmarks/bench_folding.py [--rounds 6] [--runs 200] [--workdir /tmp/edgekit-fold]
                                          [--seeds 0,1,2] [--skip-latency] [--skip-agreement]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, median  # noqa: E402

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


def convert(out, fold, precisions=PRECISIONS, io="uint8"):
    """MobileNetV2 bundles, folded or not, through the edgekit CLI (reused if already there)."""
    suffix = "" if io == "uint8" else f"_{io}io"
    want = {p: out / f"mobilenet_v2_100_224_{p}{suffix if p == 'int8' else ''}" for p in precisions}
    if not all(w.exists() for w in want.values()):
        args = [PY, "-m", "edgekit.cli", "convert", "mobilenet_v2", "-o", str(out), "--force", "--io", io,
                "--fold-preprocessing" if fold else "--no-fold-preprocessing"]
        for p in precisions:
            args += ["-p", p]
        subprocess.run(args, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return want


def p50(bundle, runs):
    out = subprocess.run([PY, "-m", "device_bench", "bench", str(bundle), "--runs", str(runs), "--min-secs", "0",
                          "--warmup-runs", "20", "--warmup-secs", "0", "--in-process", "--json"],
                         capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return json.loads(out.stdout)[0]["latency_ms"]["p50"]


def agreement(workdir, seeds):
    """Folded against unfolded on the digits, per seed, model and precision; prints the table."""
    from digits_models import convert, digits_data, evaluate, trained_models
    data = digits_data(workdir)
    rows = []
    for seed in seeds:
        for name, (path, mode) in trained_models(workdir, seed, data).items():
            out = Path(workdir) / f"seed{seed}"
            folded = convert(path, mode, data, out / "folded", PRECISIONS)
            unfolded = convert(path, mode, data, out / "unfolded", PRECISIONS, fold=False)
            for p in PRECISIONS:
                r = evaluate(folded[p], data, compare=unfolded[p])
                rows.append((seed, name, mode, p, r["top1"], evaluate(unfolded[p], data)["top1"],
                             r["compare"]["top1_agreement"]))
    print(f"\n{'seed':>4s} {'model':14s} {'normalization':13s} {'precision':9s} {'folded top-1':>12s} "
          f"{'unfolded top-1':>14s} {'agreement':>10s}")
    for seed, name, mode, p, a, b, agree in rows:
        print(f"{seed:4d} {name:14s} {mode:13s} {p:9s} {a:12.2%} {b:14.2%} {agree:10.2%}")
    for p in PRECISIONS:
        sel = [r[6] for r in rows if r[3] == p]
        print(f"{p}: folded/unfolded top-1 agreement over {len(sel)} model(s): min {min(sel):.2%}, "
              f"median {median(sel):.2%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workdir", default="/tmp/edgekit-fold")
    parser.add_argument("--seeds", default="0", help="Comma-separated training seeds for the agreement figures.")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-agreement", action="store_true")
    a = parser.parse_args()
    if not a.skip_agreement:
        agreement(a.workdir, [int(s) for s in a.seeds.split(",") if s.strip()])
    if a.skip_latency:
        return
    work = Path(a.workdir)
    folded, unfolded = convert(work / "folded", True), convert(work / "unfolded", False)
    int8io = convert(work / "folded", True, ["int8"], io="int8")["int8"]
    # (label, A, B): each round measures A and B back to back, in alternating order; the ratio is A / B
    pairs = [(p, folded[p], unfolded[p]) for p in PRECISIONS] + [("int8 uint8-I/O / int8-I/O", folded["int8"],
                                                                  int8io)]
    ratios = {label: [] for label, *_ in pairs}
    times = {label: ([], []) for label, *_ in pairs}
    for r in range(a.rounds):
        for label, first, second in pairs:
            order = [(0, first), (1, second)]
            measured = dict((k, p50(b, a.runs)) for k, b in (order if r % 2 == 0 else order[::-1]))
            for k, ms in measured.items():
                times[label][k].append(ms)
            ratios[label].append(measured[0] / measured[1])
    print(f"MobileNetV2 1.0/224, 1 thread, {a.rounds} alternating rounds of {a.runs} runs")
    print(f"{'build':26s} {'A p50 ms':>10s} {'B p50 ms':>10s} {'A/B median':>11s}  per-round A/B")
    for label, *_ in pairs:
        name = label if " / " in label else f"{label} folded / unfolded"
        print(f"{name:26s} {median(times[label][0]):10.3f} {median(times[label][1]):10.3f} "
              f"{median(ratios[label]):11.3f}  {' '.join(f'{x:.3f}' for x in ratios[label])}")


if __name__ == "__main__":
    main()
