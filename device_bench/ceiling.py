"""The measured ceiling: how many multiply-adds per second this runtime, API, accelerator and thread
count reach on a dense kernel (a large 1x1 convolution, at fp32 and int8), timed in the same process
as the model. A model's "fraction of peak" is its MAC/s over this figure, so for the same runtime and
threads it cannot exceed 1 the way a nominal clock-times-lanes figure can when the core boosts.

The kernels ship in device_bench/data/ (made by tools/make_ceiling_models.py; see ceiling.json).
"""

import functools
import json
import os
import pkgutil
import tempfile
import time

from device_bench.errors import EdgekitError
from device_bench.inputs import make_input
from device_bench.safe_write import atomic_path

# Which kernel bounds a build: fp16 weights run as fp32 (XNNPACK's default); dynamic-range builds run
# int8 and float kernels, so either may bound them; an unknown build takes the faster of the two.
KERNELS_FOR = {"fp32": ("fp32",), "fp16": ("fp32",), "int8": ("int8",), "dynamic": ("fp32", "int8")}
MIN_RUNS, WARMUP_RUNS, MAX_SECS = 5, 2, 2.0


@functools.cache
def kernel_info():
    """ceiling.json: the kernel's shape, multiply-adds, files (with sha256 and size) and how they were made."""
    return json.loads(pkgutil.get_data("device_bench", "data/ceiling.json"))


def kernel_path(precision):
    """A real file for the kernel (runtimes need a path): in the package, or copied out of the zipapp to one
    temporary file named by its sha256, shared by every process (a sweep runs many) and written atomically."""
    kernel = kernel_info()["kernels"][precision]
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", kernel["file"])
    if os.path.isfile(here):
        return here
    shared = os.path.join(tempfile.gettempdir(), f"device_bench-ceiling-{kernel['sha256'][:16]}.tflite")
    if not (os.path.isfile(shared) and os.path.getsize(shared) == kernel["bytes"]):
        with atomic_path(shared, force=True) as part, open(part, "wb") as f:
            f.write(pkgutil.get_data("device_bench", f"data/{kernel['file']}"))
    return shared


def _time_kernel(engine, min_secs):
    """Best and median milliseconds of the kernel after a short warm-up, bounded by runs and seconds."""
    detail = engine.input_details[0]
    engine.set_input(make_input(detail, None, None))
    for _ in range(WARMUP_RUNS):
        engine.invoke()
    times, start = [], time.perf_counter()
    while (len(times) < MIN_RUNS or time.perf_counter() - start < min_secs) and time.perf_counter() - start < MAX_SECS:
        t = time.perf_counter()
        engine.invoke()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[0], times[len(times) // 2]


def measure_ceiling(runtime, params, precision):
    """{kernel, precision, macs, best_ms, p50_ms, macs_per_s} for the kernel(s) bounding ``precision``: the
    best run's rate, so that it is an upper bound. Raises EdgekitError when a kernel cannot run here."""
    from device_bench.engines import open_engine
    info = kernel_info()
    best = None
    for kernel in KERNELS_FOR.get(precision, ("fp32", "int8")):
        with open_engine(kernel_path(kernel), runtime, params.threads, params.xnnpack, params.delegate,
                         params.accelerator) as engine:
            best_ms, p50_ms = _time_kernel(engine, min(params.min_secs, 0.25))
        rate = info["macs"] / (best_ms / 1e3)
        if best is None or rate > best["macs_per_s"]:
            best = {"kernel": info["kernel"], "precision": kernel, "macs": info["macs"], "best_ms": best_ms,
                    "p50_ms": p50_ms, "macs_per_s": rate}
    return best


def try_ceiling(runtime, params, precision, env, warnings):
    """measure_ceiling, or None with a warning saying why (emulated CPU, a kernel the runtime cannot load)."""
    from device_bench.environment import nominal_peak_macs_per_s
    if not params.ceiling:
        return None
    nominal = nominal_peak_macs_per_s(env, params.threads, precision)
    if env.get("emulated"):
        return {"macs_per_s": None, "nominal_macs_per_s": nominal, "note": "not measured on an emulated CPU"}
    try:
        result = measure_ceiling(runtime, params, precision)
    except EdgekitError as e:
        warnings.append(f"the ceiling kernel would not run, so no fraction of peak: {e}")
        return {"macs_per_s": None, "nominal_macs_per_s": nominal}
    return dict(result, nominal_macs_per_s=nominal)
