"""The benchmark, shaped like tensorflow/lite/tools/benchmark: typed parameters with defaults, a fixed
order (model size -> init -> first inference -> warm-up -> timed runs), one result record.

`run_benchmark` measures one configuration in this process; `device_bench.sweep` runs each
configuration of a sweep in a fresh process.
"""

import os
import resource
import sys
import threading
import time
from dataclasses import asdict

import numpy as np

from device_bench import environment
from device_bench.ceiling import try_ceiling
from device_bench.engines import open_engine
from device_bench.errors import AcceleratorUnavailable, EdgekitError
from device_bench.inputs import make_input
from device_bench.manifest import check_tensors, read_bundle
from device_bench.options import BenchParams
from device_bench.records import BenchResult
from device_bench.repeats import with_processes
from device_bench.runtime import first_line, resolve_runtime
from device_bench.stats import summarize

POLL_SECONDS = 0.05


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
        """Take one reading of resident memory."""
        self.peak = max(self.peak, _status_mb("VmRSS") or 0.0)

    def run(self):
        """Poll until stopped."""
        self.sample()
        while not self.stop.wait(POLL_SECONDS):
            self.sample()


def timed_runs(invoke, params, warnings):
    """benchmark_model's run order after init: first inference, warm-up, then timed runs bounded by
    count and seconds. Returns (first ms, warm-up ms list, timed ms list)."""
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
    return first_ms, warm, times


def run_benchmark(model, params=BenchParams()):
    """Benchmark one model with one configuration, in this process. Returns a BenchResult (a row that says
    so when the accelerator asked for is not here)."""
    params.validate()
    ref = read_bundle(model, verify=params.verify)
    runtime = resolve_runtime(params.runtime, params.api)
    env = environment.collect(runtime)
    clock = {"before": environment.clock()}
    warnings = []
    memory = {"rss_before_load": _status_mb("VmRSS")}
    poller = _MemoryPoller() if params.poll_memory else None
    if poller:
        poller.start()
    t0 = time.perf_counter()
    try:
        engine = open_engine(ref.tflite_path, runtime, params.threads, params.xnnpack, params.delegate,
                             params.accelerator, params.max_memory_mb)
    except AcceleratorUnavailable as e:
        if poller:
            poller.stop.set()
        return BenchResult(model=ref.name, path=os.path.abspath(model), precision=(ref.manifest or {}).get("precision"),
                           runtime=dict(runtime.as_dict(), accelerator=params.accelerator), threads=params.threads,
                           unavailable=str(e), environment=env)
    with engine:
        init_ms = (time.perf_counter() - t0) * 1e3
        memory["rss_after_init"] = _status_mb("VmRSS")
        measured = _measure(engine, ref, params, warnings)
        if poller:
            poller.stop.set()
            poller.join()
            poller.sample()
        memory.update(rss_end=_status_mb("VmRSS"), peak_rss_vmhwm=_status_mb("VmHWM"),
                      peak_rss_polled_50ms=poller.peak if poller else None)
        delegation, env["runtime"] = engine.delegation(), engine.describe()
    clock["after"] = environment.clock()
    warnings += environment.clock_drift(clock["before"], clock["after"])
    if env.get("emulated"):
        warnings.append("emulated CPU: timings say nothing about the real device")
    precision = (ref.manifest or {}).get("precision") or _precision_of(measured["input_dtype"])
    ceiling = try_ceiling(runtime, params, precision, env, warnings)  # after the memory figures: not in them
    measured.update(init_ms=init_ms, memory=memory, warnings=warnings, delegation=delegation, clock=clock,
                    ceiling=ceiling)
    return _record(ref, model, params, measured, env)


def _precision_of(input_dtype):
    """A bare .tflite's precision for its ceiling, from its input type (None: unknown, bound by both kernels)."""
    return "int8" if input_dtype in ("int8", "uint8") else None


def _measure(engine, ref, params, warnings):
    """Feed the input and time first inference, warm-up and timed runs of an open engine."""
    inputs = engine.input_details
    if not inputs or not engine.output_details:
        raise EdgekitError(f"{ref.tflite_path}: the model has no input or no output tensor")
    check_tensors(ref, inputs[0], engine.output_details[0])
    if len(inputs) != 1:
        warnings.append("the model has several inputs; only the first is fed")
    x = make_input(inputs[0], ref, params.input)
    input_dtype = np.dtype(inputs[0]["dtype"]).name
    if engine.runtime.name == "tflite-runtime" and (input_dtype in ("int8", "uint8") or
                                                    (ref.manifest or {}).get("precision") == "int8"):
        warnings.append("tflite-runtime does not apply XNNPACK to int8 models: expect int8 to run many times "
                        "slower than in LiteRT (pip install ai-edge-litert)")
    warnings += engine.notes
    try:
        engine.set_input(x)
        first_ms, warm, times = timed_runs(engine.invoke, params, warnings)
    except (RuntimeError, ValueError) as e:  # "Input tensor 71 lacks data": a damaged graph
        raise EdgekitError(f"{ref.tflite_path}: the runtime failed running the model ({first_line(e)})") from None
    return {"first_ms": first_ms, "warm": warm, "times": times, "input_dtype": input_dtype}


def _record(ref, model, params, measured, env):
    """Assemble the BenchResult of one configuration (one process) from what run_benchmark measured."""
    latency, warm, memory = summarize(measured["times"]), measured["warm"], measured["memory"]
    manifest = ref.manifest or {}
    memory["note"] = ("peak_rss_* is this benchmark process's high-water mark (VmHWM: Python, numpy and the "
                      "runtime included), like benchmark_model's 'overall'; init delta = rss_after_init - "
                      "rss_before_load" + ("; polled every 50 ms in a thread, which may affect timing"
                                           if memory.get("peak_rss_polled_50ms") is not None else ""))
    peak_rss = memory["peak_rss_vmhwm"] or _maxrss_mb()
    result = BenchResult(
        model=ref.name, path=os.path.abspath(model), precision=manifest.get("precision"),
        params=manifest.get("params"), macs=manifest.get("macs"),
        model_size_bytes=os.path.getsize(ref.tflite_path), runtime=env["runtime"], threads=params.threads,
        xnnpack=params.xnnpack, delegate=params.delegate, input=params.input or "random",
        input_dtype=measured["input_dtype"], init_ms=measured["init_ms"], first_ms=measured["first_ms"],
        warmup_ms=summarize(warm) if warm else None, latency_ms=latency,
        throughput_per_s=1e3 / latency["mean"] if latency["mean"] else None,
        **measured["delegation"], peak_rss_mb=peak_rss, memory_mb=memory,
        timings_meaningful=not env.get("emulated"), params_used=asdict(params), warnings=measured["warnings"],
        environment=env, ceiling=measured["ceiling"], clock=measured["clock"])
    return with_processes(result)
