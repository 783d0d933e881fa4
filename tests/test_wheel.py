"""The wheel a device or a workstation installs holds everything the commands need: every subpackage,
the ceiling kernels and the sample photographs. Run from the unpacked wheel, far from the checkout, a
study calibrates on the packaged photographs."""

import json
import os
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_the_wheel_runs_a_study_without_the_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("edgekit_tflite-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    packaged = {os.path.dirname(p) for p in z.namelist() if p.endswith("__init__.py")}
    in_tree = {str(p.parent.relative_to(ROOT)) for pkg in ("edgekit", "converters", "device_bench")
               for p in (ROOT / pkg).rglob("__init__.py")}
    assert packaged == in_tree
    (tmp_path / "study.toml").write_text('precisions = ["int8"]\nruns = 2\nmin_secs = 0.0\nrepeat = 1\n'
                                         '[[models]]\nname = "squeezenet1_1"\nsize = 48\nclasses = 3\n')
    env = dict(os.environ, PYTHONPATH=str(site))
    code = ("import sys, edgekit.cli; assert edgekit.cli.__file__.startswith(sys.argv[1]), edgekit.cli.__file__;"
            "sys.argv = ['edgekit', 'run', 'study.toml', '-o', 'out']; edgekit.cli.main()")
    proc = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    # int8 needs calibration images: with none given, the photographs packaged in the wheel
    assert results["rows"][0]["precision"] == "int8" and "error" not in results["rows"][0], results["rows"][0]
    assert results["rows"][0]["bench"][0]["latency_ms"]["p50"] > 0
