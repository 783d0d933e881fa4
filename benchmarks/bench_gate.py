"""The regression gate on real reruns: false alarms between identical reruns, and a planted slowdown caught.

Two builds of one model file, `net.keras` (MobileNetV2 alpha 0.75, 10 classes, fp32): the base at 96 px and a
heavier one at 108 px (1.27x the multiply-adds), each converted to a bundle named `net_fp32`, so both land in
the same configuration. Each round benches the base twice and the heavy build once, each in its own
`edgekit bench --repeat R --json` run (the order reversed every other round), then gates with the real CLI:
  - identical pair: `edgekit compare base1.json base2.json --fail-above 5`  (want exit 0: no false regression)
  - planted pair:   `edgekit compare base1.json heavy.json --fail-above 5`  (want exit 1: regression caught)
Prints each pair's change, interval and p-value, the tallies, and the heavy/base latency ratio measured.

Usage: python benchmarks/bench_gate.py [--rounds 10] [--repeat 5] [--workdir /tmp/edgekit-bench]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, median  # noqa: E402

BUILDS = {"base": 96, "heavy": 108}


def cli(*args, check=True):
    proc = subprocess.run([PY, "-m", "edgekit.cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if check and proc.returncode:
        sys.exit(f"edgekit {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return proc


def bundles(workdir):
    """net_fp32 at each size, built and converted once (reused when there)."""
    out = {}
    for name, size in BUILDS.items():
        folder = Path(workdir) / f"gate-{name}"
        out[name] = folder / "net_fp32"
        if not out[name].exists():
            folder.mkdir(parents=True, exist_ok=True)
            cli("build", "mobilenet_v2", "--alpha", 0.75, "--size", size, "--classes", 10, "-o", folder / "net.keras",
                "--force")
            cli("convert", folder / "net.keras", "-p", "fp32", "-o", folder, "--force")
    return out


def bench(bundle, path, repeat):
    path.write_text(cli("bench", bundle, "--repeat", repeat, "--json").stdout)
    return path


def gate(base, new):
    """The CLI's verdict at --fail-above 5, and its figures."""
    proc = cli("compare", base, new, "--fail-above", 5, "--json", check=False)
    if proc.returncode not in (0, 1):
        sys.exit(f"compare failed: {proc.stderr}")
    [change] = json.loads(proc.stdout)["changes"]
    return proc.returncode, change


def line(kind, i, code, c):
    return (f"{kind:9s} pair {i:2d}: exit {code}  p50 {c['base_p50_ms']:.3f} -> {c['new_p50_ms']:.3f} ms "
            f"({100 * c['p50_change']:+.1f}%, 95% {100 * c['p50_ci'][0]:+.1f}% .. {100 * c['p50_ci'][1]:+.1f}%, "
            f"p={c['p_value']:.3g}, processes {c['processes'][0]}/{c['processes'][1]})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/edgekit-bench")
    a = ap.parse_args()
    made = bundles(a.workdir)
    runs = Path(a.workdir) / "gate-runs"
    runs.mkdir(exist_ok=True)
    false_alarms, caught, ratios = 0, 0, []
    for i in range(1, a.rounds + 1):
        order = ["base1", "base2", "heavy"] if i % 2 else ["heavy", "base2", "base1"]
        files = {k: bench(made["heavy" if k == "heavy" else "base"], runs / f"{i}-{k}.json", a.repeat) for k in order}
        code, c = gate(files["base1"], files["base2"])
        false_alarms += code == 1
        print(line("identical", i, code, c), flush=True)
        code, c = gate(files["base1"], files["heavy"])
        caught += code == 1
        ratios.append(1 + c["p50_change"])
        print(line("planted", i, code, c), flush=True)
    print(f"\nidentical reruns: {false_alarms} false regressions in {a.rounds} pairs at --fail-above 5")
    print(f"planted slowdown (108 px against 96 px, 1.27x the MACs; measured heavy/base p50 median "
          f"{median(ratios):.3f}, range {min(ratios):.3f}..{max(ratios):.3f}): caught in {caught} of {a.rounds}")


if __name__ == "__main__":
    main()
