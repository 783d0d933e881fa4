"""A sweep: every model x thread count, each configuration in a fresh process of its own.

A fresh process per configuration keeps one configuration's memory out of the next one's figures,
and turns a runtime crash into an error row instead of the end of the sweep.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

from device_bench.errors import EdgekitError
from device_bench.options import params_to_argv
from device_bench.records import BenchResult


def runner_command():
    """How to start this same device_bench in a child: from the zipapp, or as a package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(root):  # running from device_bench.pyz
        return [sys.executable, root], {}
    path = os.environ.get("PYTHONPATH")
    return [sys.executable, "-m", "device_bench"], {"PYTHONPATH": root + (os.pathsep + path if path else "")}


def error_row(model, params, message):
    """A configuration that could not be measured, as a row the sweep keeps."""
    return BenchResult(model=os.path.basename(os.path.normpath(str(model))), path=os.path.abspath(str(model)),
                       threads=params.threads, xnnpack=params.xnnpack, error=message)


def run_isolated(model, params, timeout=None):
    """One configuration in a fresh process; a crash or an error becomes an error row."""
    cmd, extra_env = runner_command()
    cmd = cmd + ["bench", "--in-process", "--json", *params_to_argv(params), "--", str(model)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **extra_env), timeout=timeout)
    except subprocess.TimeoutExpired:
        return error_row(model, params, f"{model}: timed out after {timeout} s")
    try:
        return BenchResult.from_dict(json.loads(proc.stdout)[0])
    except (ValueError, IndexError, KeyError, TypeError):
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            return error_row(model, params, f"{model}: the runtime process crashed ({name}) in this configuration "
                                            f"(a damaged model or a faulty delegate)")
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return error_row(model, params, f"{model}: the benchmark process failed (exit {proc.returncode}): "
                                        f"{last[:300]}")


def run_sweep(models, params, threads=(1,), cooldown=0.0, isolate=True, progress=None):
    """Every model x thread count; one BenchResult (or error row) each, in a fresh process each."""
    from device_bench.bench import run_benchmark
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
                results.append(error_row(model, p, str(e)))
        if cooldown and i + 1 < len(configs):
            time.sleep(cooldown)
    return results
