"""What folding the normalization into the graph costs: latency of folded / unfolded bundles, and how many
answers the folded and unfolded builds of the same trained model share.

Latency: MobileNetV2 1.0/224 (random weights: latency does not depend on them), every precision, 1 thread.
Each round benchmarks every bundle in a fresh process, in alternating order, and the ratio is taken
per round, so the machine's drift cancels; the median ratio over rounds is printed.

Agreement (the figure tests/test_phone.py once asserted, int8 >= 99%): the test suite's digits models
(tests/conftest.py's DIGIT_MODELS, one set per --seeds entry), converted folded and unfolded at fp32 and
int8 (each calibrated on the same 200 training images), evaluated on the 360 held-out digits: top-1 of
each and the share of images given the same top-1.

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


def agreement(workdir, seeds):
    """Folded against unfolded on the digits, per seed, model and precision; prints the table."""
    from digits_models import convert, digits_data, evaluate, trained_models
    data = digits_data(workdir)
    rows = []
    for seed in seeds:
        for name, (path, mode) in trained_models(workdir, seed, data).items():
            out = Path(workdir) / f"seed{seed}"
            folded = convert(path, mode, data, out / "folded", ["fp32", "int8"])
            unfolded = convert(path, mode, data, out / "unfolded", ["fp32", "int8"], fold=False)
            for p in ("fp32", "int8"):
                r = evaluate(folded[p], data, compare=unfolded[p])
                rows.append((seed, name, mode, p, r["top1"], evaluate(unfolded[p], data)["top1"],
                             r["compare"]["top1_agreement"]))
    print(f"\n{'seed':>4s} {'model':14s} {'normalization':13s} {'precision':9s} {'folded top-1':>12s} "
          f"{'unfolded top-1':>14s} {'agreement':>10s}")
    for seed, name, mode, p, a, b, agree in rows:
        print(f"{seed:4d} {name:14s} {mode:13s} {p:9s} {a:12.2%} {b:14.2%} {agree:10.2%}")
    for p in ("fp32", "int8"):
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
