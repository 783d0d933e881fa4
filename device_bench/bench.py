"""The benchmark, shaped like tensorflow/lite/tools/benchmark: typed parameters with defaults, a fixed
order (model size -> init -> first inference -> warm-up -> timed runs), one result record.

Each configuration of a sweep runs in a fresh subprocess, so memory figures never include an
earlier configuration's, and a runtime crash becomes an error row instead of ending the sweep.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from device_bench import environment
from device_bench.errors import EdgekitError
from device_bench.images import load_input, quantize
from device_bench.manifest import read_bundle
from device_bench.runtime import delegated_nodes, open_interpreter, resolve_runtime

POLL_SECONDS = 0.05


@dataclass(frozen=True)
class BenchParams:
    """Defaults as in TFLite's benchmark_model."""
    threads: int = 1
    warmup_runs: int = 1
    warmup_min_secs: float = 0.5
    num_runs: int = 50
    min_secs: float = 1.0
    max_secs: float = 150.0
    run_delay: float = 0.0
    xnnpack: bool = True
    delegate: str = None
    runtime: str = None
    input: str = None  # None (random), an image, or a .npy file
    poll_memory: bool = False

    def validate(self):
        if self.threads < 1:
            raise EdgekitError(f"threads must be at least 1, got {self.threads}")
        for name in ("warmup_runs", "num_runs"):
            if getattr(self, name) < 0 or (name == "num_runs" and self.num_runs < 1):
                raise EdgekitError(f"{name} must be {'at least 1' if name == 'num_runs' else '>= 0'}, "
                                   f"got {getattr(self, name)}")
        for name in ("warmup_min_secs", "min_secs", "max_secs", "run_delay"):
            if getattr(self, name) < 0:
                raise EdgekitError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_secs < self.min_secs:
            raise EdgekitError(f"max_secs ({self.max_secs}) is below min_secs ({self.min_secs})")
        return self


def parse_threads(text):
    """'1,2,4' -> [1, 2, 4]; ValueError with a message for anything else."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"threads must be integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"threads must be at least 1, got {text!r}")
    return values


def _status_mb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _maxrss_mb():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class _MemoryPoller(threading.Thread):
    """Polls resident memory every 50 ms, as benchmark_model's report_peak_memory_footprint does."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0.0
        self.stop = threading.Event()

    def sample(self):
        self.peak = max(self.peak, _status_mb("VmRSS") or 0.0)

    def run(self):
        self.sample()
        while not self.stop.wait(POLL_SECONDS):
            self.sample()


def make_input(detail, ref, source):
    """The input tensor: random by default, or an image / .npy preprocessed per the manifest."""
    shape = [int(v) for v in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if source is None:
        # random bytes rather than numpy.random, whose import alone costs ~7 MB of resident memory
        count = int(np.prod(shape))
        raw = np.frombuffer(os.urandom(count * dtype.itemsize), dtype=np.uint8)
        if dtype.kind == "f":
            return (raw[:count].astype(np.float32) / 127.5 - 1.0).astype(dtype).reshape(shape)
        return raw.view(dtype).reshape(shape).copy()
    if source.endswith(".npy"):
        try:
            arr = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EdgekitError(f"{source}: cannot read as .npy ({e})") from None
        if list(arr.shape) != shape:
            raise EdgekitError(f"{source}: shape {list(arr.shape)} does not fit the model's input {shape}")
        if arr.dtype == dtype:
            return arr
        if arr.dtype.kind == "f":
            return quantize(arr.astype(np.float32), dtype, scale, zero)
        raise EdgekitError(f"{source}: dtype {arr.dtype} does not fit the model's input {dtype.name}")
    prep = (ref.manifest or {}).get("input", {}).get("preprocessing")
    if prep is None:
        raise EdgekitError(f"{ref.tflite_path}: no manifest, so an image input cannot be preprocessed; use a .npy")
    return quantize(load_input(source, shape, prep), dtype, scale, zero)


def percentile(sorted_values, q):
    """Linear interpolation between closest ranks, as numpy.percentile's default (without its import cost)."""
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _stats(ms):
    s = sorted(ms)
    mean = sum(s) / len(s)
    out = {"count": len(s), "min": s[0], "max": s[-1], "mean": mean,
           "std": (sum((v - mean) ** 2 for v in s) / len(s)) ** 0.5}
    out.update({f"p{q}": percentile(s, q) for q in (5, 50, 90, 95, 99)})
    return out


def run_benchmark(model, params=BenchParams()):
    """Benchmark one model with one configuration, in this process. Returns the result record."""
    params.validate()
    ref = read_bundle(model)
    runtime = resolve_runtime(params.runtime)
    env_before = environment.collect(runtime)
    warnings = []
    size = os.path.getsize(ref.tflite_path)
    rss_before = _status_mb("VmRSS")
    poller = _MemoryPoller() if params.poll_memory else None
    if poller:
        poller.start()

    t0 = time.perf_counter()
    interpreter = open_interpreter(ref.tflite_path, runtime, params.threads, params.xnnpack, params.delegate)
    init_ms = (time.perf_counter() - t0) * 1e3
    rss_init = _status_mb("VmRSS")
    detail = interpreter.get_input_details()[0]
    if len(interpreter.get_input_details()) != 1:
        warnings.append("the model has several inputs; only the first is fed")
    interpreter.set_tensor(detail["index"], make_input(detail, ref, params.input))
    quantized = np.dtype(detail["dtype"]).kind in "iu" or (ref.manifest or {}).get("precision") == "int8"
    if runtime.name == "tflite-runtime" and quantized:
        warnings.append("tflite-runtime does not apply XNNPACK to int8 models: expect int8 to run many times "
                        "slower than in LiteRT (pip install ai-edge-litert)")
    invoke = interpreter.invoke

    t = time.perf_counter()
    invoke()
    first_ms = (time.perf_counter() - t) * 1e3

    warm = []
    start = time.perf_counter()
    while len(warm) < params.warmup_runs or time.perf_counter() - start < params.warmup_min_secs:
        t = time.perf_counter()
        invoke()
        warm.append((time.perf_counter() - t) * 1e3)
        if time.perf_counter() - start > params.max_secs:
            break

    times = []
    start = time.perf_counter()
    while len(times) < params.num_runs or time.perf_counter() - start < params.min_secs:
        if params.run_delay:
            time.sleep(params.run_delay)
        t = time.perf_counter()
        invoke()
        times.append((time.perf_counter() - t) * 1e3)
        if time.perf_counter() - start >= params.max_secs:
            warnings.append(f"stopped after max_secs={params.max_secs} with {len(times)} runs")
            break
    if poller:
        poller.stop.set()
        poller.join()
        poller.sample()

    taken, total = delegated_nodes(interpreter)
    env = environment.collect(runtime)
    drift = _drift(env_before, env)
    if drift:
        warnings.append(drift)
    if env.get("emulated"):
        warnings.append("emulated CPU: timings say nothing about the real device")
    latency = _stats(times)
    manifest = ref.manifest or {}
    return {
        "model": ref.name,
        "path": os.path.abspath(model),
        "precision": manifest.get("precision"),
        "params": manifest.get("params"),
        "macs": manifest.get("macs"),
        "model_size_bytes": size,
        "runtime": runtime.as_dict(),
        "threads": params.threads,
        "xnnpack": params.xnnpack,
        "delegate": params.delegate,
        "input": params.input or "random",
        "input_dtype": np.dtype(detail["dtype"]).name,
        "init_ms": init_ms,
        "first_ms": first_ms,
        "warmup_ms": _stats(warm) if warm else None,
        "latency_ms": latency,
        "throughput_per_s": 1e3 / latency["mean"] if latency["mean"] else None,
        "delegated_nodes": taken,
        "total_nodes": total,
        "fully_delegated": (taken == total) if taken is not None and (params.xnnpack or params.delegate) else None,
        "peak_rss_mb": _status_mb("VmHWM") or _maxrss_mb(),
        "memory_mb": {
            "rss_before_load": rss_before,
            "rss_after_init": rss_init,
            "rss_end": _status_mb("VmRSS"),
            "peak_rss_vmhwm": _status_mb("VmHWM"),
            "peak_rss_ru_maxrss": _maxrss_mb(),
            "peak_rss_polled_50ms": poller.peak if poller else None,
            "note": ("peak_rss_* is the whole process's high-water mark (Python, numpy and the runtime "
                     "included), like benchmark_model's 'overall'; init delta = rss_after_init - rss_before_load"
                     + ("; polled every 50 ms in a thread, which may affect timing" if poller else "")),
        },
        "timings_meaningful": not env.get("emulated"),
        "params_used": asdict(params),
        "warnings": warnings,
        "environment": env,
    }


def _drift(before, after):
    notes = []
    f0, f1 = before.get("frequency_mhz"), after.get("frequency_mhz")
    if f0 and f1 and abs(f1 - f0) / f0 > 0.1:
        notes.append(f"CPU frequency moved from {f0} to {f1} MHz")
    t0, t1 = before.get("temperature_c"), after.get("temperature_c")
    if t0 is not None and t1 is not None and abs(t1 - t0) >= 5:
        notes.append(f"temperature moved from {t0:.0f} to {t1:.0f} °C")
    return ("during the run: " + "; ".join(notes) + " (throttling may skew timings)") if notes else None


def runner_command():
    """How to start this same device_bench in a child: from the zipapp, or as a package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(root):  # running from device_bench.pyz
        return [sys.executable, root], {}
    path = os.environ.get("PYTHONPATH")
    return [sys.executable, "-m", "device_bench"], {"PYTHONPATH": root + (os.pathsep + path if path else "")}


def params_to_args(p):
    args = ["--threads", str(p.threads), "--warmup-runs", str(p.warmup_runs), "--warmup-secs", str(p.warmup_min_secs),
            "--runs", str(p.num_runs), "--min-secs", str(p.min_secs), "--max-secs", str(p.max_secs),
            "--run-delay", str(p.run_delay)]
    if not p.xnnpack:
        args.append("--no-xnnpack")
    for flag, value in (("--delegate", p.delegate), ("--runtime", p.runtime), ("--input", p.input)):
        if value:
            args += [flag, value]
    if p.poll_memory:
        args.append("--poll-memory")
    return args


def run_isolated(model, params, timeout=None):
    """One configuration in a fresh process; a crash or an error becomes an error row."""
    cmd, extra_env = runner_command()
    cmd = cmd + ["bench", "--in-process", "--json", *params_to_args(params), "--", str(model)]
    env = dict(os.environ, **extra_env)
    base = {"model": os.path.basename(os.path.normpath(str(model))), "path": os.path.abspath(str(model)),
            "threads": params.threads, "xnnpack": params.xnnpack}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(base, error=f"{model}: timed out after {timeout} s")
    try:
        rows = json.loads(proc.stdout)
        row = rows[0]
    except (ValueError, IndexError, KeyError):
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            return dict(base, error=f"{model}: the runtime process crashed ({name}) in this configuration "
                                    f"(a damaged model or a faulty delegate)")
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return dict(base, error=f"{model}: the benchmark process failed (exit {proc.returncode}): {last[:300]}")
    return row


def run_sweep(models, params, threads=(1,), cooldown=0.0, isolate=True, progress=None):
    """Every model x thread count; one record (or error row) each, in a fresh process each."""
    results = []
    configs = [(m, replace(params, threads=t)) for m in models for t in threads]
    for i, (model, p) in enumerate(configs):
        if progress:
            progress(f"[{i + 1}/{len(configs)}] {model}, {p.threads} thread{'s' if p.threads > 1 else ''}")
        if isolate:
            results.append(run_isolated(model, p))
        else:
            try:
                results.append(run_benchmark(model, p))
            except EdgekitError as e:
                results.append({"model": os.path.basename(str(model)), "threads": p.threads, "error": str(e)})
        if cooldown and i + 1 < len(configs):
            time.sleep(cooldown)
    return results
