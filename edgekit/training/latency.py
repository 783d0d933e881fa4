"""Latency of Keras models measured on the device channel pruning targets, not estimated from MACs.

A model is converted by the converter `edgekit convert` uses (TFLiteConverter on a batch-1 SavedModel, at the
chosen precision, int8 by default, with uint8 I/O; calibrated on random pixels, since latency does not depend
on the ranges, and without the bundle's fidelity check and metadata, which cost time and change no op) and
benchmarked on the target (this machine, ssh://host or adb://serial, through edgekit.targets; a
phone's thermal guard applies as in `edgekit bench`), each model in fresh processes, several models in
alternating rounds. Figures are cached per device fingerprint and architecture (a pruned model's latency
depends on its layer widths, not its weights), so a rerun, or the NetAdapt loop revisiting a width, measures
nothing twice.
"""

import hashlib
import json
import os
import platform
import shutil
import tempfile

from device_bench.errors import EdgekitError

CALIBRATION_COUNT = 4  # random inputs for int8 ranges: latency does not depend on them
NUM_RUNS, MIN_SECS, REPEAT = 30, 0.2, 2  # per process; processes per model (alternating rounds)


def cache_file():
    """Where measured latencies are kept: $EDGEKIT_CACHE_DIR/latency.json, else ~/.cache/edgekit/."""
    root = os.environ.get("EDGEKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "edgekit")
    return os.path.join(root, "latency.json")


def _local_fingerprint():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    from importlib import metadata
    try:
        litert = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        litert = None
    return {"host": platform.node(), "arch": platform.machine(), "cpu": cpu, "cores": os.cpu_count(),
            "litert": litert}


def architecture_key(model):
    """A digest of the model's layer configurations (widths, strides, input size): what latency depends on."""
    config = json.dumps(model.get_config(), sort_keys=True, default=str)
    return hashlib.sha256(config.encode()).hexdigest()[:24]


class LatencyMeter:
    """Whole-model p50 (ms, one thread) of Keras models on one device at one precision."""

    def __init__(self, target=None, precision="int8", *, ssh_config=None, progress=None, workdir=None):
        from device_bench.options import PRECISIONS
        if precision not in PRECISIONS:
            raise EdgekitError(f"--precision takes {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.progress = progress or (lambda m: None)
        self.targets = None
        if target and target != "here":
            from edgekit.targets import read_targets
            self.targets = read_targets(target, ssh_config=ssh_config)
            if len(self.targets) != 1:
                raise EdgekitError("channel pruning measures on one --target")
            probe = getattr(self.targets[0], "probe", None)
            try:
                info = probe() if probe else {}
            except EdgekitError as e:
                raise EdgekitError(f"--target {target}: {e}") from None
            self.device = {"target": self.targets[0].spec, **{k: info.get(k) for k in ("arch", "board", "runtime",
                                                                                          "python")}}
        else:
            self.device = {"target": "here", **_local_fingerprint()}
        self.fingerprint = hashlib.sha256(json.dumps(self.device, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self._own_dir = None if workdir else tempfile.TemporaryDirectory(prefix="edgekit-latency-")
        self.workdir = workdir or self._own_dir.name
        self.measured = 0  # models benchmarked (not from the cache)

    def _key(self, model):
        return f"{architecture_key(model)}:{self.precision}:1thread:{NUM_RUNS}runs"

    def _load_cache(self):
        try:
            with open(cache_file()) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _save_cache(self, figures):
        cache = self._load_cache()
        cache.setdefault(self.fingerprint, {"device": self.device, "p50_ms": {}})["p50_ms"].update(figures)
        path = cache_file()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(cache, f, indent=1)
            os.replace(tmp, path)
        except OSError as e:
            self.progress(f"latency cache not written ({e.strerror}): {path}")

    def measure(self, models):
        """p50 in ms of each Keras model, in order (None where the runtime cannot run it: e.g. XNNPACK refusing
        an int8 graph whose one-channel tensor got a zero range); the cached ones are not measured again."""
        cached = self._load_cache().get(self.fingerprint, {}).get("p50_ms", {})
        keys = [self._key(m) for m in models]
        todo = {k: m for k, m in zip(keys, models) if k not in cached}
        if todo:
            figures = self._bench(list(todo), [self._bundle(m) for m in todo.values()])
            self._save_cache({k: v for k, v in figures.items() if v is not None})
            cached = dict(cached, **figures)
        return [cached[k] for k in keys]

    def _bundle(self, model):
        """A .tflite of ``model`` at the meter's precision (see the module's docstring for why this lean path)."""
        import numpy as np
        from converters.keras_to_tflite import convert, export_saved_model
        from device_bench.silence import quiet_stderr
        step = os.path.join(self.workdir, str(len(os.listdir(self.workdir))))
        rng = np.random.default_rng(0)
        shape = (1, *model.input_shape[1:])
        with quiet_stderr():
            export_saved_model(model, f"{step}.savedmodel")
            data = convert(f"{step}.savedmodel", self.precision, representative=lambda: (
                rng.uniform(-1, 1, shape).astype("float32") for _ in range(CALIBRATION_COUNT)))
        shutil.rmtree(f"{step}.savedmodel", ignore_errors=True)
        with open(f"{step}.tflite", "wb") as f:
            f.write(data)
        return f"{step}.tflite"

    def _bench(self, keys, bundles):
        from device_bench import api as device
        from device_bench.options import BenchParams
        params = BenchParams(num_runs=NUM_RUNS, min_secs=MIN_SECS, warmup_min_secs=0.1, ceiling=False)
        if self.targets is None:
            rows = [r.to_dict() for r in device.benchmark(bundles, [1], params, repeat=REPEAT)]
        else:
            from dataclasses import replace
            from edgekit.targets.jobs import bench_on_targets
            rows = bench_on_targets(self.targets, bundles, replace(params, threads=1),
                                    device.sweep_settings([1], REPEAT), progress=lambda m: None)
        if len(rows) != len(bundles):
            raise EdgekitError(f"latency: {len(rows)} results for {len(bundles)} models")
        figures = {}
        for key, row in zip(keys, rows):
            if row.get("error") or not row.get("latency_ms"):
                self.progress(f"latency not measured on {self.device['target']}: {row.get('error')}")
                figures[key] = None
            else:
                figures[key] = float(row["latency_ms"]["p50"])
        self.measured += len(bundles)
        return figures
