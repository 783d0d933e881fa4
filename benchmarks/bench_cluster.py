"""A 6-bundle study (3 zoo models x fp32, int8) serial against `--cluster local:2`: wall time of the build stage
and of the whole study, rounds alternating (serial, cluster, serial, ...), every bundle rebuilt (--force).

The build stage is read from results.json's stages: the serial path's per-model "build and convert" stages
summed, the cluster's "builds on the cluster" stage (from submitting the builds to the last one in, so it
includes the workers' TensorFlow import). The whole study is the `edgekit run` process's wall time (for the
cluster: starting the LocalCluster too). The machine's load (`uptime`) is printed before and after.

Usage: python benchmarks/bench_cluster.py [--workdir /tmp/edgekit-cluster-bench] [--rounds 2] [--size 96]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, median  # noqa: E402

MODELS = [("squeezenet1_1", None), ("mobilenet_v1", 0.25), ("mobilenet_v2", 0.35)]


def study(size):
    text = 'precisions = ["fp32", "int8"]\nruns = 20\nmin_secs = 0.0\nrepeat = 1\n'
    for name, alpha in MODELS:
        text += f'[[models]]\nname = "{name}"\nsize = {size}\nclasses = 10\n' + (f"alpha = {alpha}\n" if alpha else "")
    return text


def run(config, out, cluster):
    args = [PY, "-m", "edgekit.cli", "run", str(config), "-o", str(out), "--force"]
    args += ["--cluster", cluster] if cluster else []
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"edgekit run failed:\n{proc.stderr[-3000:]}")
    stages = json.loads((out / "results.json").read_text())["meta"]["stages"]
    builds = sum(s["seconds"] for s in stages if s["stage"] in ("build and convert", "train", "compress")) \
        if not cluster else next(s["seconds"] for s in stages if s["stage"].startswith("builds on the cluster"))
    return builds, wall


def load():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/edgekit-cluster-bench")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--size", type=int, default=96)
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "study.toml").write_text(study(a.size))
    print(f"load before: {load()}")
    figures = {"serial": [], "local:2": []}
    for r in range(a.rounds):
        for name in (("serial", "local:2") if r % 2 == 0 else ("local:2", "serial")):
            builds, wall = run(work / "study.toml", work / name.replace(":", ""), None if name == "serial" else name)
            figures[name].append((builds, wall))
            print(f"round {r + 1} {name:8s} build stage {builds:6.1f} s   whole study {wall:6.1f} s   ({load()})")
    s_b, s_w = median(b for b, _ in figures["serial"]), median(w for _, w in figures["serial"])
    c_b, c_w = median(b for b, _ in figures["local:2"]), median(w for _, w in figures["local:2"])
    print(f"\nmedian over {a.rounds} round(s), 6 bundles ({', '.join(n for n, _ in MODELS)} at {a.size} px x fp32, int8):")
    print(f"  build stage:  serial {s_b:.1f} s, --cluster local:2 {c_b:.1f} s: speed-up {s_b / c_b:.2f}x")
    print(f"  whole study:  serial {s_w:.1f} s, --cluster local:2 {c_w:.1f} s: speed-up {s_w / c_w:.2f}x")
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
