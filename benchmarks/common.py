"""Helpers shared by the benchmark scripts: a full-size MobileNetV2 int8 bundle, cached per run."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable


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
