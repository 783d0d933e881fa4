"""Helpers shared by the benchmark scripts: full-size MobileNetV2 bundles cached per run, calibration photos."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import median  # noqa: F401  (the scripts' one median)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable


def edgekit(*args):
    """Run the edgekit CLI; its stdout (JSON) parsed."""
    proc = subprocess.run([PY, "-m", "edgekit.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode:
        sys.exit(f"edgekit {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def mobilenet_v2_bundles(workdir, precisions=("int8",)):
    """Convert MobileNetV2 1.0/224 through the edgekit CLI (reused if already there)."""
    out = Path(workdir) / "bundles"
    want = [out / f"mobilenet_v2_100_224_{p}" for p in precisions]
    if not all(w.exists() for w in want):
        args = [PY, "-m", "edgekit.cli", "convert", "mobilenet_v2", "-o", str(out), "--force"]
        for p in precisions:
            args += ["-p", p]
        subprocess.run(args, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return want


def make_calibration(folder, count=100):
    """100 real-photo crops: every sample photograph, cropped at several places, and mirrored."""
    from PIL import Image, ImageOps
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in (ROOT / "edgekit" / "sample_images").iterdir() if p.suffix in (".jpg", ".png"))
    for i in range(count):
        p, k = photos[i % len(photos)], i // len(photos)
        im = Image.open(p).convert("RGB")
        w, h = im.size
        f = 0.6 + 0.04 * ((k * 37) % 10)
        x0, y0 = int((w - w * f) * ((k * 13) % 7) / 6), int((h - h * f) * ((k * 5) % 7) / 6)
        crop = im.crop((x0, y0, x0 + int(w * f), y0 + int(h * f)))
        (ImageOps.mirror(crop) if k % 2 else crop).save(folder / f"{i:03d}.jpg", quality=90)
    return folder


def bench_setup(doc):
    """The scripts' shared arguments (--rounds, --workdir) and the 100 calibration photos in the workdir."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/edgekit-bench")
    a = ap.parse_args()
    return a, make_calibration(Path(a.workdir) / "calibration100")
