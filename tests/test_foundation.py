"""Start-up without TensorFlow, and the device side importable with TF/Keras/click blocked."""

import subprocess
import sys

from conftest import ROOT, run_device


def test_help_does_not_import_tensorflow():
    code = ("import sys; from edgekit.cli import cli; from click.testing import CliRunner; r = CliRunner();"
            "names = ['--help'] + [[c, '--help'] for c in cli.commands];"
            "[r.invoke(cli, n if isinstance(n, list) else [n]) for n in names];"
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_device_bench_imports_without_tensorflow_keras_click(blocked_env):
    proc = subprocess.run([sys.executable, "-c", "import device_bench, device_bench.images, device_bench.manifest;"
                           "import device_bench.__main__"], env=blocked_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-c", "import click"], env=blocked_env, capture_output=True, text=True)
    assert proc.returncode != 0  # the blocker itself works
    help_ = run_device(["--help"], blocked_env)
    assert help_.returncode == 0 and "bench" in help_.stdout


def test_tensorflow_noise_hidden_unless_verbose(tmp_path):
    def build(*flags):
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TF_CPP")}
        return subprocess.run([sys.executable, "-m", "edgekit.cli", *flags, "build", "squeezenet1_1", "--size", "48",
                               "-o", tmp_path / f"m{len(flags)}.keras"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
    quiet = build()
    assert quiet.returncode == 0, quiet.stderr
    assert "oneDNN" not in quiet.stderr and "absl" not in quiet.stderr and quiet.stderr == ""
    loud = build("--verbose")
    assert loud.returncode == 0, loud.stderr  # what TensorFlow prints then depends on the CPU


def test_native_stderr_hidden_unless_verbose():
    """What C++ writes straight to fd 2 is hidden by quiet_stderr, and let through with VERBOSE."""
    code = ("import os, sys; from device_bench import silence; silence.VERBOSE = sys.argv[1] == 'loud';"
            "ctx = silence.quiet_stderr(); ctx.__enter__(); os.write(2, b'native line'); ctx.__exit__(None, None, None)")
    quiet = subprocess.run([sys.executable, "-c", code, "quiet"], cwd=ROOT, capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-c", code, "loud"], cwd=ROOT, capture_output=True, text=True)
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stderr == "" and loud.stderr == "native line"
