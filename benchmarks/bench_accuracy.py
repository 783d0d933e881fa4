"""How close each build stays to fp32 on real labelled images: the figures the tests once asserted to the
point (int8 within 1 point of fp32, LiteRT quantizer agreeing with TFLiteConverter on >= 99%), which a
training seed moves by a point or two. Measured here side by side, per seed, so the spread shows.

The test suite's digits models (SqueezeNet 1.1, MobileNetV2 0.35, MobileNet V1 0.5 at 32 px, trained from
scratch on scikit-learn's digits as tests/conftest.py trains them), converted through the edgekit CLI with
their normalization folded in at every precision (int8 also with int8 and float32 I/O), each evaluated on
the 360 held-out digits: top-1, its distance from fp32 in points, and top-1 agreement with fp32. Then the
unfolded fp32 build quantized by `edgekit quantize` (LiteRT quantizer) against TFLiteConverter's int8.

Usage: python benchmarks/bench_accuracy.py [--seeds 0,1,2] [--workdir /tmp/edgekit-accuracy]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits_models import convert, digits_data, edgekit, evaluate, parse_seeds, seeds_option, trained_models  # noqa: E402

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


def measure(work, seed, data):
    """Rows of (seed, model, build, top-1, points from fp32, agreement with fp32)."""
    rows = []
    for name, (path, mode) in trained_models(work, seed, data).items():
        out = Path(work) / f"seed{seed}" / "bundles"
        builds = convert(path, mode, data, out / "uint8io", PRECISIONS)
        for io in ("int8", "float32"):
            builds[f"int8 {io} I/O"] = convert(path, mode, data, out / f"{io}io", ["int8"], io=io)["int8"]
        fp32 = evaluate(builds["fp32"], data)["top1"]
        for build, bundle in builds.items():
            r = evaluate(bundle, data, compare=None if build == "fp32" else builds["fp32"])
            rows.append((seed, name, build, r["top1"], 100 * (r["top1"] - fp32),
                         r["compare"]["top1_agreement"] if r.get("compare") else 1.0))
        # the LiteRT quantizer on the unfolded fp32 .tflite against TFLiteConverter's int8 (same 200 images)
        unfolded = convert(path, mode, data, out / "unfolded", ["fp32", "int8"], fold=False)
        made = edgekit("quantize", unfolded["fp32"], "-p", "int8", "--calibration", data["train"],
                       "--calibration-count", 200, "-o", out / "litert", "--force", "--json")["bundles"][0]
        r = evaluate(made["bundle"], data, compare=unfolded["int8"])
        rows.append((seed, name, "int8 LiteRT quantizer vs TFLiteConverter", r["top1"], 100 * (r["top1"] - fp32),
                     r["compare"]["top1_agreement"]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    seeds_option(ap)
    ap.add_argument("--workdir", default="/tmp/edgekit-accuracy")
    a = ap.parse_args()
    data = digits_data(a.workdir)
    rows = [row for seed in parse_seeds(a.seeds) for row in measure(a.workdir, seed, data)]
    print(f"\n{'seed':>4s} {'model':14s} {'build':42s} {'top-1':>7s} {'vs fp32':>8s} {'agreement':>10s}")
    for seed, name, build, top1, points, agree in rows:
        print(f"{seed:4d} {name:14s} {build:42s} {top1:7.2%} {points:+7.2f}p {agree:10.2%}")
    print("\nvs fp32: top-1 minus the fp32 build's, in points; agreement: share of the 360 held-out digits given the "
          "same top-1 as the fp32 build (the last row of each model: as TFLiteConverter's int8)")
    builds = sorted({r[2] for r in rows if r[2] != "fp32"})
    print(f"\nover seeds and models: {'build':42s} {'worst vs fp32':>14s} {'worst agreement':>16s}")
    for build in builds:
        sel = [r for r in rows if r[2] == build]
        print(f"{'':22s}{build:42s} {min(r[4] for r in sel):+13.2f}p {min(r[5] for r in sel):16.2%}")


if __name__ == "__main__":
    main()
