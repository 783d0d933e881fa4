"""The fallback runtime, tflite-runtime 2.14 (its last release), and its known limits.

`make test` installs it in .venv-tflite-runtime (with NumPy 1.x, which it needs). The runner runs
there as on a device that has only tflite-runtime: no TensorFlow, no LiteRT.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

QUICK = ["--runs", "3", "--min-secs", "0", "--warmup-runs", "1", "--warmup-secs", "0", "--repeat", "1"]


@pytest.fixture(scope="module")
def tfrt_python():
    py = Path(os.environ.get("EDGEKIT_TFLITE_RUNTIME_PYTHON", ROOT / ".venv-tflite-runtime" / "bin" / "python"))
    if not py.exists():
        pytest.skip(f"tflite-runtime venv not found at {py}: `make test` creates it")
    return str(py)


def run(py, args, extra_path=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*map(str, extra_path), str(ROOT)]))
    return subprocess.run([py, "-m", "device_bench", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def full_mobilenet_v2(invoke, tmp_path_factory):
    out = tmp_path_factory.mktemp("tfrt")
    result = invoke("convert", "mobilenet_v2", "-p", "dynamic", "-p", "int8", "-o", out, "--calibration-count", 2)
    assert result.exit_code == 0, result.output
    return {p: out / f"mobilenet_v2_100_224_{p}" for p in ("dynamic", "int8")}


def test_int8_runs_with_a_warning_and_new_ops_are_named(tfrt_python, full_mobilenet_v2):
    proc = run(tfrt_python, ["bench", full_mobilenet_v2["int8"], full_mobilenet_v2["dynamic"], *QUICK, "--json"])
    int8, dynamic = json.loads(proc.stdout)
    assert int8["runtime"] == {"name": "tflite-runtime", "version": "2.14.0", "api": "interpreter", "accelerator": "cpu"}
    assert any("does not apply XNNPACK to int8" in w for w in int8["warnings"])
    assert int8["latency_ms"]["p50"] > 0
    assert "the model needs a newer runtime: tflite-runtime 2.14.0 has no FULLY_CONNECTED version 12" in dynamic["error"]


def test_numpy_2_is_named(tfrt_python, full_mobilenet_v2, tmp_path):
    """tflite-runtime 2.14 under NumPy 2 fails inside Interpreter(); the error says to install numpy<2."""
    import numpy
    site = Path(numpy.__file__).parent.parent
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (tmp_path / name).symlink_to(site / name)
    proc = run(tfrt_python, ["bench", full_mobilenet_v2["int8"], *QUICK, "--json", "--runtime", "tflite-runtime"],
               extra_path=[tmp_path])
    error = json.loads(proc.stdout)[0]["error"]
    assert "built for NumPy 1.x" in error and "pip install 'numpy<2'" in error
