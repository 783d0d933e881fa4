"""edgekit quantize (the LiteRT quantizer on an fp32 .tflite, no TensorFlow) against edgekit convert -p int8
(TFLiteConverter from the Keras model), side by side in one run.

MobileNetV2 1.0/224 (random weights: the timing does not depend on them), int8, 100 calibration images
(crops and mirror images of the real sample photographs), the fidelity check on for both. The fp32
.tflite that quantize starts from is made once beforehand and not counted. Each command runs as a
fresh process, alternating which goes first; its wall time and its own peak resident memory (the
child's ru_maxrss from wait4) are recorded. Prints the medians and the ratios (targets: time <= 0.2x,
memory <= 0.3x).

Usage: python benchmarks/bench_quantize.py [--rounds 3] [--workdir /tmp/edgekit-bench]
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, bench_setup, median, mobilenet_v2_bundles  # noqa: E402


def measured(cmd):
    """(wall seconds, peak RSS in MB) of one fresh process running ``cmd``."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main():
    """Interleaved rounds of both commands, then the medians and their ratios."""
    a, cal = bench_setup(__doc__)
    fp32 = mobilenet_v2_bundles(a.workdir, ("fp32",))[0]  # made once, not counted
    common = ["-p", "int8", "--calibration", str(cal), "--calibration-count", "100", "--force"]
    figures = {"quantize": [], "convert": []}
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {"quantize": [PY, "-m", "edgekit.cli", "quantize", str(fp32), "-o", f"{tmp}/q", *common],
                "convert": [PY, "-m", "edgekit.cli", "convert", "mobilenet_v2", "-o", f"{tmp}/c", *common]}
        for r in range(a.rounds):
            order = ["quantize", "convert"] if r % 2 == 0 else ["convert", "quantize"]
            for label in order:
                figures[label].append(measured(cmds[label]))
            print(f"round {r + 1}: " + ", ".join(f"edgekit {k} {v[-1][0]:.2f} s, {v[-1][1]:.0f} MB"
                                                for k, v in figures.items()))
        sizes = {k: os.path.getsize(Path(tmp) / k[0] / "mobilenet_v2_100_224_int8" / "model.tflite")
                 for k in figures}
    t = {k: median([s for s, _ in v]) for k, v in figures.items()}
    m = {k: median([mb for _, mb in v]) for k, v in figures.items()}
    print()
    print(f"MobileNetV2 1.0/224 int8, 100 calibration images, {a.rounds} interleaved rounds, fresh process each")
    print(f"edgekit quantize (fp32 .tflite -> int8, LiteRT quantizer): {t['quantize']:.2f} s, {m['quantize']:.0f} MB "
          f"peak RSS, {sizes['quantize'] / 1e6:.2f} MB file")
    print(f"edgekit convert -p int8 (Keras -> int8, TFLiteConverter): {t['convert']:.2f} s, {m['convert']:.0f} MB "
          f"peak RSS, {sizes['convert'] / 1e6:.2f} MB file")
    print(f"time   quantize / convert: {t['quantize'] / t['convert']:.3f}  (target <= 0.2)")
    print(f"memory quantize / convert: {m['quantize'] / m['convert']:.3f}  (target <= 0.3)")


if __name__ == "__main__":
    main()
