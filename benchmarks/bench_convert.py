"""edgekit convert against a bare TFLiteConverter script with the same settings, interleaved.

MobileNetV2 1.0/224, int8, 100 calibration images (crops and mirror images of the real sample
photographs). Each side runs as a fresh process (TensorFlow import, model build, calibration,
export, conversion, file written), alternating which goes first. edgekit additionally verifies
the file, runs the fidelity check against Keras and writes the bundle with embedded metadata.
Prints the time ratio (target <= 1.15) and the size ratios of fp16/dynamic/int8 against fp32.

Usage: python benchmarks/bench_convert.py [--rounds 3] [--workdir /tmp/edgekit-bench]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT  # noqa: E402
from device_bench.repeats import median  # noqa: E402

BARE = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf, keras
from PIL import Image
keras.utils.set_random_seed(0)
model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None)
def load(path):  # the same centre crop 0.875, bilinear resize and (x - 127.5) / 127.5
    im = Image.open(path).convert("RGB"); w, h = im.size; s = min(w, h) * 0.875
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    return ((np.asarray(im.resize((224, 224), Image.BILINEAR, box=box), np.float32) - 127.5) / 127.5)[None]
folder = sys.argv[1]
batches = [load(os.path.join(folder, f)) for f in sorted(os.listdir(folder))[:100]]
model.export(sys.argv[2] + "/sm", format="tf_saved_model", verbose=False,
             input_signature=[keras.InputSpec(shape=(1, 224, 224, 3), dtype="float32")])
c = tf.lite.TFLiteConverter.from_saved_model(sys.argv[2] + "/sm")
c.optimizations = [tf.lite.Optimize.DEFAULT]
c.representative_dataset = lambda: ([b] for b in batches)
c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
c.inference_input_type = c.inference_output_type = tf.int8
open(sys.argv[2] + "/model.tflite", "wb").write(c.convert())
"""


def make_calibration(folder, count=100):
    """100 real-photo crops: every sample photograph, cropped at several places, and mirrored."""
    from PIL import Image, ImageOps
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".jpg", ".png"))
    for i in range(count):
        p, k = photos[i % len(photos)], i // len(photos)
        im = Image.open(p).convert("RGB")
        w, h = im.size
        f = 0.6 + 0.04 * ((k * 37) % 10)
        x0, y0 = int((w - w * f) * ((k * 13) % 7) / 6), int((h - h * f) * ((k * 5) % 7) / 6)
        crop = im.crop((x0, y0, x0 + int(w * f), y0 + int(h * f)))
        (ImageOps.mirror(crop) if k % 2 else crop).save(folder / f"{i:03d}.jpg", quality=90)
    return folder


def timed(cmd):
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t, proc.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/edgekit-bench")
    a = ap.parse_args()
    cal = make_calibration(Path(a.workdir) / "calibration100")
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        edgekit = [PY, "-m", "edgekit.cli", "convert", "mobilenet_v2", "-p", "int8", "--calibration", str(cal),
                   "--calibration-count", "100", "-o", tmp, "--force", "--json"]
        bare = [PY, "-c", BARE, str(cal), tmp]
        for r in range(a.rounds):
            pair = [("edgekit", edgekit), ("bare", bare)]
            for label, cmd in (pair if r % 2 == 0 else pair[::-1]):
                (ours if label == "edgekit" else theirs).append(timed(cmd)[0])
            print(f"round {r + 1}: edgekit convert {ours[-1]:.2f} s, bare TFLiteConverter {theirs[-1]:.2f} s")
        _, out = timed([PY, "-m", "edgekit.cli", "convert", "mobilenet_v2", "-p", "fp32", "-p", "fp16", "-p",
                        "dynamic", "-p", "int8", "--calibration", str(cal), "-o", tmp, "--force", "--json"])
        sizes = {b["precision"]: b["file_size"] for b in json.loads(out)["bundles"]}
    print()
    print(f"MobileNetV2 1.0/224 int8, 100 calibration images, {a.rounds} interleaved rounds, fresh process each")
    print(f"edgekit convert / bare TFLiteConverter: {median(ours) / median(theirs):.3f}  (target <= 1.15)")
    for p in ("fp32", "fp16", "dynamic", "int8"):
        print(f"{p:8s} {sizes[p] / 1e6:6.2f} MB  {sizes[p] / sizes['fp32']:.3f} x fp32")


if __name__ == "__main__":
    main()
