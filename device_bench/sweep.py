"""A sweep: every model x runtime x thread count, each configuration in fresh processes of its own.

A fresh process per run keeps one configuration's memory out of the next one's figures, and turns a
runtime crash into an error row instead of the end of the sweep. Each configuration runs in
``repeat`` processes, interleaved across configurations (round robin, alternating direction, so a
slow drift of the machine falls on every configuration alike); device_bench.repeats combines them.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

from device_bench.errors import EdgekitError
from device_bench.options import ACCELERATORS, ALL, RUNTIME_APIS, SweepSettings, params_to_argv
from device_bench.records import BenchResult
from device_bench.repeats import combine

ORDER = "interleaved round robin, alternating direction"


def runner_command():
    """How to start this same device_bench in a child: from the zipapp, or as a package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(root):  # running from device_bench.pyz
        return [sys.executable, root], {}
    path = os.environ.get("PYTHONPATH")
    return [sys.executable, "-m", "device_bench"], {"PYTHONPATH": root + (os.pathsep + path if path else "")}


def error_row(model, params, message):
    """A configuration that could not be measured, as a row the sweep keeps (with the runtime it asked for)."""
    runtime = {"name": params.runtime, "api": params.api, "accelerator": params.accelerator}
    return BenchResult(model=os.path.basename(os.path.normpath(str(model))), path=os.path.abspath(str(model)),
                       runtime=runtime, threads=params.threads, xnnpack=params.xnnpack, error=message)


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


def wait_or_stop(cancel, seconds=0.0):
    """Sleep ``seconds``, but raise KeyboardInterrupt as soon as ``cancel`` (a threading.Event, or None) is set:
    how a run in a worker thread sees the Ctrl-C that only its main thread received."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise KeyboardInterrupt


def runtime_specs(params):
    """(runtime, api, accelerator) for each runtime a sweep covers: ``all`` expands to every installed
    runtime and API, accelerator ``all`` to cpu, gpu and npu for the compiled APIs (the Interpreter: cpu)."""
    from device_bench.runtime import installed_runtimes
    if params.runtime == ALL:
        pairs = [(r, a) for r, a in installed_runtimes() if params.api in (None, a)]
        if not pairs:
            raise EdgekitError(f"--runtime all: no runtime{' with the ' + params.api + ' API' if params.api else ''} "
                               f"is installed here (pip install ai-edge-litert)")
    else:
        pairs = [(params.runtime, params.api)]
    specs = []
    for runtime, api in pairs:
        compiled = (api or (RUNTIME_APIS[runtime][0] if runtime else "interpreter")) == "compiled"
        accelerators = (ACCELERATORS if compiled else ("cpu",)) if params.accelerator == ALL else (params.accelerator,)
        specs += [(runtime, api, accelerator) for accelerator in accelerators]
    return specs


def configurations(models, params, sweep):
    """Every model x runtime spec x thread count, as the BenchParams of one process."""
    specs = runtime_specs(params)
    return [(m, replace(params, runtime=r, api=a, accelerator=acc, threads=t))
            for m in models for r, a, acc in specs for t in sweep.threads]


def _run_one(model, params, isolate):
    from device_bench.bench import run_benchmark
    if isolate:
        return run_isolated(model, params)
    try:
        return run_benchmark(model, params)
    except EdgekitError as e:
        return error_row(model, params, str(e))


def _describe(model, p):
    where = p.runtime or "default runtime"
    where += f" {p.api}" if p.api else ""
    where += f" on {p.accelerator}" if p.accelerator != "cpu" else ""
    return f"{model}, {where}, {p.threads} thread{'s' if p.threads > 1 else ''}"


def run_sweep(models, params, sweep=None, isolate=True, progress=None):
    """Every model x runtime x thread count in ``sweep.repeat`` fresh processes, interleaved; one combined
    BenchResult each (error and unavailable rows included), in configuration order."""
    sweep = (sweep or SweepSettings()).validate()
    return run_configurations(configurations(models, params, sweep), sweep, isolate, progress)


def run_configurations(configs, sweep, isolate=True, progress=None, run_one=None, cancel=None):
    """(model, BenchParams) configurations, each in ``sweep.repeat`` fresh processes, interleaved (round robin,
    alternating direction); one combined BenchResult per configuration, in order. ``run_one(model, params)``
    runs one process elsewhere (a phone's benchmark_model); by default device_bench runs it here. Once
    ``cancel`` is set no further process starts (KeyboardInterrupt)."""
    run_one = run_one or (lambda model, p: _run_one(model, p, isolate))
    runs = [[] for _ in configs]
    done, total = 0, len(configs) * sweep.repeat
    for round_, i in interleaved_order(len(configs), sweep):
        if runs[i] and (runs[i][0].error or runs[i][0].unavailable):
            continue  # a failed or absent configuration fails again: do not repeat it
        model, p = configs[i]
        if done and sweep.cooldown:
            wait_or_stop(cancel, sweep.cooldown)
        wait_or_stop(cancel)
        done += 1
        if progress:
            progress(f"[{done}/{total}] {_describe(model, p)}" +
                     (f", process {round_ + 1} of {sweep.repeat}" if sweep.repeat > 1 else ""))
        runs[i].append(run_one(model, p))
    return combine_runs(runs, sweep)


def interleaved_order(count, sweep):
    """(round, configuration index) in the order a sweep runs its processes: round robin, alternating direction."""
    return [(round_, i) for round_ in range(sweep.repeat)
            for i in (range(count) if round_ % 2 == 0 else reversed(range(count)))]


def combine_runs(runs, sweep):
    """One combined BenchResult per configuration from its processes' results (a list per configuration)."""
    info = {"repeat": sweep.repeat, "cooldown_s": sweep.cooldown, "order": ORDER, "configurations": len(runs)}
    return [replace(combine(r), sweep=info) for r in runs]
