"""`edgekit bench --target adb`: LiteRT's native benchmark_model on the phone, its printed report parsed into
the same BenchResult records, repeats and spread as a run here.

Each configuration runs in `repeat` fresh benchmark_model processes, interleaved across configurations
(device_bench.sweep), each entered cool (AdbTarget.wait_cool); the phone's clock and temperature are read
before and after every process.
"""

import hashlib
import os
import shlex
import signal
import tempfile
from dataclasses import fields, replace

from device_bench.benchmark_model_parse import failure_line, parse
from device_bench.errors import EdgekitError
from device_bench.manifest import read_bundle
from device_bench.options import BenchParams
from device_bench.records import BenchResult
from device_bench.sweep import error_row, run_configurations
from device_bench.environment import clock_drift
from device_bench.repeats import with_processes

RUNTIME_NAME = "LiteRT benchmark_model"
NIGHTLY = "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
ELF_ABIS = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86"}  # ELF e_machine -> Android ABI
# --accelerator -> benchmark_model's delegate flags; the one table. npu reaches the NPU through NNAPI, and nnapi
# (the name issue 20 lists) is the same delegate under its own name.
ACCELERATOR_FLAGS = {"cpu": [], "gpu": ["--use_gpu=true"], "npu": ["--use_nnapi=true"], "nnapi": ["--use_nnapi=true"]}
# BenchParams fields benchmark_model has a flag for, and those it honours otherwise (the ceiling is never timed on a
# phone, so --no-ceiling is a no-op there, as its help says).
FLAGS = {"threads": "num_threads", "num_runs": "num_runs", "min_secs": "min_secs", "max_secs": "max_secs",
         "warmup_runs": "warmup_runs", "warmup_min_secs": "warmup_min_secs", "run_delay": "run_delay"}
HANDLED = set(FLAGS) | {"xnnpack", "accelerator", "poll_memory", "verify", "api", "ceiling", "runtime", "op_profile"}


def check_params(params):
    """One line naming the first option benchmark_model cannot honour (never silently ignored)."""
    defaults = BenchParams()
    for f in fields(BenchParams):
        if f.name not in HANDLED and getattr(params, f.name) != getattr(defaults, f.name):
            flag = "--" + f.name.replace("_", "-")
            raise EdgekitError(f"{flag} is not supported on an Android phone (benchmark_model runs there)")
    if params.api not in (None, "interpreter"):
        raise EdgekitError(f"--api {params.api} on an Android phone: benchmark_model runs the interpreter API only "
                           f"(--accelerator gpu, npu or nnapi picks its delegate)")
    if params.runtime not in (None, "litert"):
        raise EdgekitError(f"--runtime {params.runtime} on an Android phone: only LiteRT's benchmark_model runs there")
    if params.accelerator not in ACCELERATOR_FLAGS:
        raise EdgekitError(f"--accelerator {params.accelerator} on an Android phone: choose one of "
                           f"{', '.join(ACCELERATOR_FLAGS)}")


def uses_xnnpack(params):
    """XNNPACK runs on the CPU only: with a GPU or NNAPI delegate benchmark_model is told not to apply it."""
    return params.xnnpack and params.accelerator == "cpu"


def benchmark_argv(binary, model, params):
    """benchmark_model's command line for one configuration."""
    argv = [binary, f"--graph={model}"]
    argv += [f"--{flag}={getattr(params, name)}" for name, flag in FLAGS.items()]
    argv += [f"--use_xnnpack={'true' if uses_xnnpack(params) else 'false'}"]
    argv += ACCELERATOR_FLAGS[params.accelerator]
    argv += ["--report_peak_memory_footprint=true"] if params.poll_memory else []
    return argv + (["--enable_op_profiling=true"] if params.op_profile else [])


def binary_abi(path):
    """The Android ABI a binary was built for, from its ELF header; one line when it is no binary at all."""
    if not path:
        raise EdgekitError("no benchmark_model binary: download LiteRT's for the phone's ABI (for arm64-v8a: "
                           f"{NIGHTLY}android_aarch64_benchmark_model) and pass --benchmark-binary PATH")
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError as e:
        raise EdgekitError(f"{path}: cannot read the benchmark binary ({e.strerror})") from None
    if head[:4] != b"\x7fELF":
        raise EdgekitError(f"{path}: not a benchmark_model binary (no ELF header)")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return ELF_ABIS.get(machine, f"ELF machine {machine}")


def _model_file(path, verify):
    """(model.tflite to push, what the record says of it), read as a run here reads it (a bundle is checked
    against its manifest first), so both name the model alike."""
    ref = read_bundle(os.fspath(path), verify)
    m = ref.manifest or {}
    return ref.tflite_path, {"name": ref.name, "precision": m.get("precision"), "params": m.get("params"),
                             "macs": m.get("macs")}


def _record(model, params, transcript, target, binary, clock):
    """A BenchResult of one benchmark_model process, in milliseconds as every record is."""
    t = transcript
    latency = t.runs.to_ms()
    warnings = list(t.warnings)
    if "p50" not in latency:
        latency["p50"] = latency["mean"]
        warnings.append("this benchmark_model prints no median: p50 is the mean of the timed runs")
    if params.op_profile and not t.ops:
        warnings.append("--op-profile: benchmark_model printed no operator table")
    runtime = dict(runtime_record(binary, params, target), delegate=t.delegate)
    peak = t.memory_mb.get("peak_polled") or (t.memory_mb.get("overall") if t.memory_mb.get("format") == "peak" else None)
    return BenchResult(model=model["name"], path=os.path.abspath(model["path"]),
                       precision=model.get("precision"), params=model.get("params"), macs=model.get("macs"),
                       model_size_bytes=os.path.getsize(model["file"]), runtime=runtime, threads=params.threads,
                       xnnpack=uses_xnnpack(params), delegate=t.delegate,
                       init_ms=t.init_us / 1e3 if t.init_us is not None else None,
                       first_ms=t.first_us / 1e3 if t.first_us is not None else None,
                       warmup_ms=t.warmup.to_ms() if t.warmup else None, latency_ms=latency,
                       throughput_per_s=1e3 / latency["mean"] if latency.get("mean") else None,
                       delegated_nodes=t.delegated_nodes, total_nodes=t.total_nodes,
                       fully_delegated=t.fully_delegated, peak_rss_mb=peak, memory_mb=dict(t.memory_mb) or None,
                       timings_meaningful=True, params_used={"argv": benchmark_argv("benchmark_model", "MODEL", params)},
                       warnings=warnings + clock_drift(clock["before"], clock["after"]), clock=clock,
                       op_profile=[vars(o) for o in t.ops] if params.op_profile and t.ops else None)


def runtime_record(binary, params, target):
    """A phone row's runtime (error rows too): the binary, named by its sha256, and with its path and the target,
    which are what picks this runtime again."""
    return {"name": binary["name"], "version": binary["version"], "api": "interpreter",
            "accelerator": params.accelerator, "target": target, "binary": binary["path"]}


def bench_on_phone(target, models, params, sweep, say, cancel=None):
    """Every model x thread count on one phone, `sweep.repeat` processes each; the records as dicts. Once
    ``cancel`` (a threading.Event) is set, no further process starts and the phone is cleaned up."""
    check_params(params)
    binary = target.settings.benchmark_binary
    abi = binary_abi(binary)
    files = [(m, *_model_file(m, params.verify)) for m in models]
    say("probing")
    info = target.probe()
    if info["arch"] and abi != info["arch"]:
        raise EdgekitError(f"{binary} is built for {abi}, but the phone's ABI is {info['arch']}: "
                           f"use the benchmark_model for {info['arch']}")
    say(f"{info['board']} ({info['soc']}, Android {info['android']}, {info['arch']}); pushing")
    with open(binary, "rb") as f:
        binary_sha = hashlib.sha256(f.read()).hexdigest()
    # benchmark_model prints no version of its own: the binary is named by its sha256
    info["runtime"] = {"name": RUNTIME_NAME, "version": f"sha256 {binary_sha[:12]}", "binary_sha256": binary_sha,
                       "path": os.path.abspath(binary)}
    env = phone_environment(info, target.settings.cpu_mask)
    items = [(binary, "benchmark_model")] + [(f, f"m{i}.tflite") for i, (_, f, _) in enumerate(files)]
    folder = target.upload(items)
    try:
        target.shell(f"chmod 755 {shlex.quote(folder + '/benchmark_model')}", "chmod")
        models_on_phone = {m: {"path": m, "file": f, "remote": f"{folder}/m{i}.tflite", **meta}
                           for i, (m, f, meta) in enumerate(files)}
        configs = [(m, replace(params, threads=t)) for m in models for t in sweep.threads]

        def one(model, p):
            return _one_process(target, folder, models_on_phone[model], p, env, say, cancel)

        results = run_configurations(configs, sweep, progress=say, run_one=one, cancel=cancel)
    finally:
        target.cleanup(folder)
    return [dict(r.to_dict(), target=target.spec, device=info) for r in results]


def phone_environment(info, cpu_mask):
    """A record's environment, from the probe: what reports name the phone by (model, SoC, ABI, Android)."""
    return {"board": info["board"], "cpu": info["soc"], "arch": info["arch"], "cores": info["cores"],
            "governor": info["governor"], "os": f"Android {info['android']}", "serial": info["serial"],
            "runtime": info["runtime"], "cpu_mask": cpu_mask}


def _exit_status(status):
    """`exit status 139 (SIGSEGV)`: the shell reports death by signal N as 128 + N."""
    try:
        name = signal.Signals(int(status) - 128).name
    except ValueError:
        return f"exit status {status or '?'}"
    return f"exit status {status} ({name})"


def _one_process(target, folder, model, params, env, say, cancel):
    """One benchmark_model process, entered cool; an error row when it fails or the phone goes away."""
    try:
        before, hot = target.wait_cool(say, cancel)
        argv = benchmark_argv(f"{folder}/benchmark_model", model["remote"], params)
        if target.settings.cpu_mask:
            argv = ["taskset", target.settings.cpu_mask] + argv
        report = f"{folder}/report.txt"
        command = shlex.join(argv) + f" > {shlex.quote(report)} 2>&1"
        status = target.shell(f"{command}; echo exit=$?", "running benchmark_model").strip().rpartition("exit=")[2]
        clock = {"before": before, "after": target.thermal()}
        with tempfile.TemporaryDirectory(prefix="edgekit-adb-") as tmp:
            target.pull(report, os.path.join(tmp, "report.txt"))
            with open(os.path.join(tmp, "report.txt"), encoding="utf-8", errors="replace") as f:
                text = f.read()
        where = f"{target.spec}: {os.path.basename(model['path'])}"
        if status != "0":  # a crash or a failure, even after a report that looks whole
            raise EdgekitError(f"{where}: benchmark_model failed ({_exit_status(status)}): {failure_line(text)}")
        transcript = parse(text, where)
        result = with_processes(_record(model, params, transcript, target.spec, env["runtime"], clock))
        result.warnings += [hot] if hot else []
        result.environment = env
        return result
    except EdgekitError as e:
        return replace(error_row(model["path"], params, str(e)), xnnpack=uses_xnnpack(params),
                       runtime=runtime_record(env["runtime"], params, target.spec))
