"""The Target interface: probe, upload, run, fetch, clean up. A new kind of device (adb, say) is one
more subclass in a file of its own; nothing else changes."""

import json
import shlex
import subprocess

from device_bench.errors import EdgekitError

RUN_TIMEOUT = 1800

# Run by the device's python3: what it has, as one JSON line.
PROBE = r"""
import json, os, platform, sys
out = {"python": platform.python_version(), "arch": platform.machine(), "runtime": None, "numpy": None,
       "board": None, "libc": " ".join(platform.libc_ver()).strip() or None}
try:
    out["board"] = open("/proc/device-tree/model").read().strip("\x00\n ") or None
except OSError:
    pass
try:
    import numpy
    out["numpy"] = numpy.__version__
except Exception as e:
    out["numpy_error"] = str(e)[:200]
for name, mod in (("litert", "ai_edge_litert"), ("tflite-runtime", "tflite_runtime")):
    try:
        m = __import__(mod + ".interpreter", fromlist=["Interpreter"])
        out["runtime"] = {"name": name, "version": getattr(sys.modules[mod], "__version__", "unknown")}
        break
    except Exception as e:
        out.setdefault("runtime_errors", {})[name] = str(e)[:200]
print(json.dumps(out))
"""


class Target:
    """A device that runs device_bench: subclasses say how to run a command and move files there."""

    spec = "?"

    def run(self, argv, stdin=None, timeout=RUN_TIMEOUT):
        """Run argv (argv[0] 'python3' is the device's Python); returns CompletedProcess with bytes."""
        raise NotImplementedError

    def upload(self, items, keep_dir=None):
        """Put each (local path, relative name) in a new private folder (or ``keep_dir``); returns it."""
        raise NotImplementedError

    def cleanup(self, folder):
        """Remove a private folder made by upload."""
        raise NotImplementedError

    def describe_failure(self, proc):
        """One line on why a command failed on this target."""
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return (err[-1] if err else f"exit status {proc.returncode}")[:400]

    def check(self, argv, what, stdin=None, timeout=RUN_TIMEOUT):
        """Run argv and return its stdout; EdgekitError naming the target and the step on failure."""
        proc = self.run(argv, stdin, timeout)
        if proc.returncode != 0:
            raise EdgekitError(f"{self.spec}: {what} failed: {self.describe_failure(proc)}")
        return proc.stdout.decode("utf-8", "replace")

    def probe(self, install_runtime=False):
        """What the device has: python3, its version, arch, a TFLite runtime, the board model."""
        out = self.check(["python3", "-c", PROBE], "probe", timeout=120)
        try:
            info = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise EdgekitError(f"{self.spec}: probe printed no JSON: {out[:200]!r}") from None
        if info["runtime"] is None:
            hint = install_hint(info)
            if install_runtime and hint.startswith("pip install"):
                self.check(["python3", "-m", "pip", "install", "--user", *shlex.split(hint)[2:]],
                           f"`{hint} --user`", timeout=RUN_TIMEOUT)
                return self.probe(install_runtime=False)
            raise EdgekitError(f"{self.spec}: no TFLite runtime for Python {info['python']} on {info['arch']}: "
                               f"{hint} (or pass --install-runtime)")
        return info

    def fetch(self, proc):
        """The records a device_bench --json run printed, as a list of dicts."""
        try:
            out = json.loads(proc.stdout.decode("utf-8", "replace"))
        except ValueError:
            raise EdgekitError(f"{self.spec}: the runner failed: {self.describe_failure(proc)}") from None
        return out if isinstance(out, list) else [out]

    def __str__(self):
        return self.spec


def install_hint(info):
    """The pip line that gives a device with ``info`` (from probe) a TFLite runtime."""
    py = info.get("python", "?")
    minor = tuple(int(v) for v in py.split(".")[:2]) if py != "?" else (0, 0)
    if info.get("arch") in ("aarch64", "x86_64"):
        return "pip install ai-edge-litert"
    if minor <= (3, 11):
        return "pip install tflite-runtime 'numpy<2'"
    return f"no TFLite runtime publishes wheels for Python {py} on {info.get('arch')}: use Python 3.11 or older " \
           f"with pip install tflite-runtime 'numpy<2'"


def completed(argv, stdin, timeout, where):
    """subprocess.run with bytes output, a timeout that becomes EdgekitError, and no traceback."""
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"{where}: no answer within {timeout} s") from None
