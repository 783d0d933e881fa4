"""edgekit's public API, for notebooks and scripts. Each CLI command is a thin face over the function of the
same name here (`bench` over `benchmark`, the one alias); the library modules never import this facade.

    import edgekit
    bundles = edgekit.convert(model, precisions=["fp32", "int8"], calibration="photos/", outdir="out/",
                              mean=127.5, std=127.5, labels="labels.txt")
    mine    = edgekit.quantize("model.tflite", ["fp32", "int8"], "out/", calibration="photos/",
                               preprocessing="tf", eval_dir="labelled/", recover_accuracy=1.0)  # no TensorFlow
    result  = edgekit.benchmark(bundles["int8"], threads=[1, 4])     # or target="ssh://pi"
    preds   = edgekit.classify(bundles["int8"], ["cat.jpg"])
    [acc]   = edgekit.evaluate(bundles["int8"], "labelled/", compare=bundles["fp32"])  # one per device
    study   = edgekit.run("study.toml")                              # or a Study built in code
    choice  = edgekit.recommend("out/results.json", max_top1_drop=0.5)  # the build to ship, or why not
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from device_bench import api as device
from device_bench.errors import EdgekitError
from device_bench.options import DEFAULT_REPEAT, BenchParams
from device_bench.records import BenchResult, BenchResults, EvalResult, ImagePrediction, Predictions
from edgekit.conversion import PathLike, convert, quantize
from edgekit.study.compare import Comparison
from edgekit.study.recommend import recommend
from edgekit.study.run import StudyResult, run_study

if TYPE_CHECKING:  # Keras-side records and the profile: imported for the annotations only, so `import edgekit.api` stays light
    from edgekit.profiling.table import Profile
    from edgekit.training.compress import CompressResult
    from edgekit.training.fit import TrainResult

__all__ = ["build", "benchmark", "classify", "compare", "compress", "convert", "demo", "deploy", "evaluate",
           "history_export", "history_plot", "history_records", "inspect", "models", "pack_runner", "profile",
           "quantize", "recommend", "report", "run", "train"]

Progress = Optional[Callable[[str], None]]


def models() -> list:
    """The zoo: one row per model at its default width and size (parameters, multiply-adds, input, preprocessing,
    where ImageNet weights come from). Builds each model, without weights."""
    from edgekit.zoo.catalog import describe_zoo
    return describe_zoo()


def build(name: str, output: PathLike, *, alpha: Optional[float] = None, size: Optional[int] = None,
          classes: Optional[int] = None, weights: str = "none", force: bool = False) -> dict:
    """Build zoo model ``name`` and save it as a .keras file that carries its preprocessing (and ImageNet labels
    with ImageNet weights), so `convert` needs no --mean/--std. Returns what was written."""
    from edgekit.zoo.catalog import build_to_file
    return build_to_file(name, output, alpha=alpha, size=size, classes=classes, weights=weights, force=force)


def _targets(target, ssh_config, adb=None):
    from edgekit.targets import read_targets
    return read_targets(target, ssh_config=ssh_config, adb=adb) if target else None


def benchmark(models: Union[PathLike, Sequence[PathLike]], threads: Sequence[int] = (1,), *,
              runtime: Optional[str] = None, api: Optional[str] = None, accelerator: Optional[str] = None,
              num_runs: Optional[int] = None, min_secs: Optional[float] = None, verify: Optional[bool] = None,
              max_memory_mb: Optional[float] = None, params: Optional[BenchParams] = None,
              repeat: int = DEFAULT_REPEAT, cooldown: float = 0.0, target: Union[None, str, Sequence[str]] = None,
              ssh_config: Optional[PathLike] = None, install_runtime: bool = False,
              adb: Optional[PathLike] = None, benchmark_binary: Optional[PathLike] = None,
              max_temp: Optional[float] = None, cooldown_max: Optional[float] = None, cpu_mask: Optional[str] = None,
              history: Optional[PathLike] = None, label: Optional[str] = None,
              progress: Progress = None) -> BenchResults:
    """Benchmark bundles or .tflite files here or on ``target`` (`edgekit bench`): every runtime asked for
    (``runtime="all"``: every one installed), each configuration in ``repeat`` fresh processes, interleaved.

    The keywords set the BenchParams field of the same name; ``params`` gives the rest (warm-up, delegate,
    input, ...). On an Android phone (``target="adb"`` or ``"adb://SERIAL"``) LiteRT's ``benchmark_binary`` runs,
    through ``adb`` (default: the one on PATH), each process entered below ``max_temp`` °C (waiting at most
    ``cooldown_max`` s; defaults: AdbSettings), pinned with taskset to ``cpu_mask`` if given. With ``history`` (a
    SQLite file), each measured configuration is appended there, tagged ``label``. Returns BenchResults: one
    BenchResult per model x runtime x thread count (x target), failures as error rows."""
    db = _open_history(history)
    results = _benchmark(models, threads, runtime=runtime, api=api, accelerator=accelerator, num_runs=num_runs,
                         min_secs=min_secs, verify=verify, max_memory_mb=max_memory_mb, params=params, repeat=repeat,
                         cooldown=cooldown, target=target, ssh_config=ssh_config, install_runtime=install_runtime,
                         adb=adb, benchmark_binary=benchmark_binary, max_temp=max_temp, cooldown_max=cooldown_max,
                         cpu_mask=cpu_mask, progress=progress)
    if db:
        from edgekit.study.rows import runs_from_bench
        _append(db, runs_from_bench([r.to_dict() for r in results]), "bench", label)
    return results


def _open_history(history):
    """The history to append to, checked before any work (a folder, an unwritable path, a foreign database)."""
    if history is None:
        return None
    from edgekit.study.history import History
    return History(history)


def _append(db, runs, kind, label):
    try:
        db.append(runs, kind, label)
    finally:
        db.close()


def _benchmark(models, threads, *, runtime, api, accelerator, num_runs, min_secs, verify, max_memory_mb, params,
               repeat, cooldown, target, ssh_config, install_runtime, adb, benchmark_binary, max_temp, cooldown_max,
               cpu_mask, progress):
    named: dict[str, Any] = {k: v for k, v in dict(runtime=runtime, api=api, accelerator=accelerator, num_runs=num_runs,
                                   min_secs=min_secs, verify=verify, max_memory_mb=max_memory_mb).items()
             if v is not None}
    from edgekit.targets.adb import AdbSettings
    given: dict[str, Any] = {k: v for k, v in dict(
        adb=os.fspath(adb) if adb is not None else None, max_temp=max_temp, cooldown_max=cooldown_max,
        benchmark_binary=os.fspath(benchmark_binary) if benchmark_binary is not None else None,
        cpu_mask=cpu_mask).items() if v is not None}
    phone = AdbSettings(**given)
    targets = _targets(target, ssh_config, phone)
    if given and not any(getattr(t, "native_runner", None) for t in targets or ()):
        flag = "--" + next(iter(given)).replace("_", "-")
        raise EdgekitError(f"{flag} is for an Android phone: add --target adb (or adb://SERIAL)")
    if not targets:
        return device.benchmark(models, threads, params, cooldown, progress=progress, repeat=repeat, **named)
    from edgekit.targets.jobs import bench_on_targets
    sweep = device.sweep_settings(threads, repeat, cooldown)
    native = all(getattr(t, "native_runner", None) for t in targets)  # every one a phone's benchmark_model
    params = replace(params or BenchParams(), threads=sweep.threads[0], **named).validate(native=native)
    rows = bench_on_targets(targets, device.as_paths(models), params, sweep, install_runtime,
                            progress or (lambda m: None))
    return BenchResults(items=[BenchResult.from_dict({"model": None, **r}) for r in rows])


def profile(model: PathLike, *, accelerator: Optional[str] = None, threads: int = 1, runs: int = 50,
            min_secs: float = 1.0, verify: bool = True, compare: Optional[PathLike] = None,
            target: Optional[str] = None, adb: Optional[PathLike] = None,
            benchmark_binary: Optional[PathLike] = None, progress: Progress = None) -> Profile:
    """Where the time goes in a bundle or .tflite, one row per operator, worst first (`edgekit profile`): here
    from OpenVINO's per-node counters (its kernels, not LiteRT's), on an Ethos-U ``accelerator`` (ethos-u55-128...)
    from Vela's estimate, on a phone (``target="adb"``) from benchmark_model's op profiler. ``compare``: a second
    build of the same graph, profiled alike; its Profile is ``.compared``, matched op by op in ``to_dict()``."""
    from edgekit.profiling import compare as check_same, profile_here, profile_record, same_graph

    def one(path: PathLike) -> Profile:
        if not target:
            return profile_here(path, accelerator, threads, runs, min_secs, verify)
        params = BenchParams(op_profile=True, num_runs=runs, min_secs=min_secs, verify=verify)
        [row] = benchmark([path], [threads], params=params, target=target, adb=adb, accelerator=accelerator,
                          benchmark_binary=benchmark_binary, repeat=1, progress=progress).items
        return profile_record(path, row.to_dict(), verify)

    if compare is not None:
        same_graph(model, compare, verify)
    first = one(model)
    if compare is not None:
        second = one(compare)
        check_same(first, second)
        first.compared = second
    return first


def classify(model: PathLike, images: Union[PathLike, Sequence[PathLike]], top_k: Optional[int] = None, *,
             labels: Optional[PathLike] = None, mean: Any = None, std: Any = None, runtime: Optional[str] = None,
             api: Optional[str] = None, accelerator: str = "cpu", verify: bool = True,
             max_memory_mb: Optional[float] = None, target: Union[None, str, Sequence[str]] = None,
             ssh_config: Optional[PathLike] = None, install_runtime: bool = False,
             progress: Progress = None) -> Predictions:
    """Top-k labels for image files or folders, here or on ``target``, in any runtime and API; ``verify``
    checks a bundle's sha256. Returns Predictions (a failed image is an item with ``error``)."""
    opened = dict(runtime=runtime, api=api, accelerator=accelerator, verify=verify, max_memory_mb=max_memory_mb)
    targets = _targets(target, ssh_config)
    if not targets:
        return device.classify(model, images, top_k, labels, mean, std, **opened)
    from edgekit.targets.jobs import classify_on_targets
    if top_k is not None and top_k < 1:
        raise EdgekitError(f"--top-k must be at least 1, got {top_k}")
    rows = classify_on_targets(targets, os.fspath(model), device.as_paths(images), top_k, install_runtime,
                               progress or (lambda m: None), labels=labels, mean=mean, std=std, **opened)
    return Predictions(model=os.path.basename(os.path.normpath(os.fspath(model))),
                       items=[ImagePrediction.from_dict({"image": None, **r}) for r in rows])


def inspect(model: PathLike, *, runtime: Optional[str] = None, verify: bool = True,
            max_memory_mb: Optional[float] = None) -> dict:
    """What a phone app or a board will see in a bundle or .tflite (device-side dependencies only)."""
    return device.inspect(model, runtime=runtime, verify=verify, max_memory_mb=max_memory_mb)


def evaluate(model: PathLike, dataset: PathLike, compare: Optional[PathLike] = None, *,
             labels: Optional[PathLike] = None, mean: Any = None, std: Any = None, runtime: Optional[str] = None,
             api: Optional[str] = None, accelerator: str = "cpu", verify: bool = True,
             max_memory_mb: Optional[float] = None, target: Union[None, str, Sequence[str]] = None,
             ssh_config: Optional[PathLike] = None, install_runtime: bool = False,
             history: Optional[PathLike] = None, label: Optional[str] = None,
             progress: Progress = None) -> list[EvalResult]:
    """Top-1/top-5 on class folders (or a CSV of path,label), in any runtime and API, here or on each
    ``target``; ``compare`` adds top-1 agreement with a second bundle; ``history`` appends each device's top-1
    there, tagged ``label``. One EvalResult per device."""
    db = _open_history(history)
    opened = dict(runtime=runtime, api=api, accelerator=accelerator, verify=verify, max_memory_mb=max_memory_mb)
    targets = _targets(target, ssh_config)
    if not targets:
        results = [device.evaluate(model, dataset, compare, labels, mean, std, **opened)]
    else:
        from edgekit.targets.jobs import evaluate_on_targets
        rows = evaluate_on_targets(targets, os.fspath(model), os.fspath(dataset),
                                   None if compare is None else os.fspath(compare), install_runtime,
                                   progress or (lambda m: None), labels=labels, mean=mean, std=std, **opened)
        results = [EvalResult.from_dict({"model": None, **r}) for r in rows]
    if db:
        from edgekit.study.history import evaluation_runs
        _append(db, evaluation_runs(results, model, runtime, api), "evaluate", label)
    return results


def train(model: Any, dataset: PathLike, output: PathLike, *, alpha: Optional[float] = None,
          size: Optional[int] = None, weights: str = "imagenet", mean: Any = None, std: Any = None,
          preprocessing: Optional[str] = None, crop: Optional[float] = None, epochs: Optional[int] = None,
          fine_tune_epochs: Optional[int] = None, batch_size: Optional[int] = None, lr: Optional[float] = None,
          seed: Optional[int] = None, val_split: Optional[float] = None, augment: Optional[str] = None,
          patience: Optional[int] = None, unsafe: bool = False, custom_objects: Sequence[str] = (),
          force: bool = False, progress: Progress = None, progress_bar: bool = False) -> TrainResult:
    """Train a zoo model or a model file on class folders (one per class); writes the .keras file ``output``,
    which carries its preprocessing and labels. Training keywords left None take TrainSettings' defaults.

    Uses pretrained weights (frozen backbone, then unfrozen) when they can be had, else trains from
    scratch and says so in ``note``. Returns a TrainResult."""
    from edgekit.zoo.loading import register_custom_objects
    from edgekit.training.fit import train_model, train_settings
    register_custom_objects(custom_objects)
    settings = train_settings(dict(epochs=epochs, fine_tune_epochs=fine_tune_epochs, batch_size=batch_size, lr=lr,
                                   seed=seed, val_split=val_split, augment=augment, patience=patience))
    return train_model(model, dataset, output, settings, alpha=alpha, size=size, weights=weights, mean=mean, std=std,
                       preprocessing=preprocessing, crop=crop, unsafe=unsafe, force=force, progress=progress,
                       bar=progress_bar)


def compress(model: PathLike, dataset: PathLike, output: PathLike, methods: Sequence[str] = ("prune",), *,
             sparsity: Optional[float] = None, student: Optional[str] = None, alpha: Optional[float] = None,
             size: Optional[int] = None, temperature: Optional[float] = None, label_weight: Optional[float] = None,
             baseline: bool = True, mean: Any = None, std: Any = None, preprocessing: Optional[str] = None,
             crop: Optional[float] = None, epochs: Optional[int] = None, fine_tune_epochs: Optional[int] = None,
             batch_size: Optional[int] = None, lr: Optional[float] = None, seed: Optional[int] = None, val_split: Optional[float] = None,
             augment: Optional[str] = None, patience: Optional[int] = None, unsafe: bool = False,
             custom_objects: Sequence[str] = (), force: bool = False, progress: Progress = None,
             progress_bar: bool = False, speedup: Optional[float] = None, target_latency_ms: Optional[float] = None,
             target: Optional[str] = None, ssh_config: Optional[PathLike] = None, precision: str = "int8",
             max_top1_drop: Optional[float] = None, keep: Sequence[str] = ()) -> CompressResult:
    """Prune, channel-prune, distill and/or quantization-aware-train a model file, in the order of ``methods``;
    writes the .keras file ``output``, which keeps the input's preprocessing and labels.

    ``methods=["channels"]`` removes whole channels until the ``precision`` build's p50 on ``target`` (default:
    here) is ``speedup`` times lower or at most ``target_latency_ms`` (NetAdapt); ``keep`` names layers whose
    channels stay whole, ``max_top1_drop`` (points) stops it early.

    Training keywords left None take the defaults (the held-out split: the one the model was trained with).
    Each stage is measured on the int8 bundle `convert` makes of it (Keras and int8 top-1, raw and gzip size,
    latency). Returns a CompressResult."""
    from edgekit.zoo.loading import register_custom_objects
    from edgekit.training.compress import compress_model
    register_custom_objects(custom_objects)
    settings = dict(epochs=epochs, fine_tune_epochs=fine_tune_epochs, batch_size=batch_size, lr=lr, seed=seed,
                    val_split=val_split, augment=augment, patience=patience)
    return compress_model(model, dataset, output, methods, settings, sparsity=sparsity, student=student, alpha=alpha,
                          size=size, temperature=temperature, label_weight=label_weight, baseline=baseline, mean=mean,
                          std=std, preprocessing=preprocessing, crop=crop, unsafe=unsafe, force=force,
                          progress=progress, bar=progress_bar, speedup=speedup, target_latency_ms=target_latency_ms,
                          target=target, ssh_config=None if ssh_config is None else os.fspath(ssh_config),
                          precision=precision, max_top1_drop=max_top1_drop,
                          keep=(keep,) if isinstance(keep, str) else tuple(keep))


def run(study: Any, outdir: Optional[PathLike] = None, *, force: bool = False,
        history: Optional[PathLike] = None, label: Optional[str] = None,
        progress: Callable[[str], None] = print, cluster: Optional[str] = None) -> StudyResult:
    """Run a study (a TOML path, a config dict or a Study): convert, benchmark, classify, evaluate, then write
    report.md, report.html, results.json/csv and the chart in ``outdir``; ``history`` appends each measured
    configuration there, tagged ``label``. ``cluster``: a Dask cluster (local[:N] or tcp://host:port) that runs
    the steps, builds side by side and each device leased to one benchmark at a time. Returns a StudyResult."""
    db = _open_history(history)
    result = run_study(study, outdir, force=force, progress=progress, cluster=cluster)
    if db:
        _append(db, [result.to_dict()], "run", label)
    return result


def demo(outdir: PathLike = "demo-out", *, force: bool = False,
         progress: Callable[[str], None] = print) -> StudyResult:
    """The built-in study: SqueezeNet 1.1, MobileNet V1 and V2 at 224, every precision, measured here."""
    from edgekit.study.config import demo_study
    return run_study(demo_study(), outdir, force=force, progress=progress)


def report(results: Sequence[PathLike], outdir: PathLike, *, force: bool = False,
           progress: Callable[[str], None] = print) -> list[dict]:
    """Rebuild report.md, report.html, results.csv and the chart from saved results files (several devices);
    returns the flat rows. A report already in ``outdir`` is replaced only with ``force``."""
    from device_bench.safe_write import refuse_existing
    from edgekit.study.report import write_report
    from edgekit.study.rows import load_results
    refuse_existing(os.path.join(os.fspath(outdir), "report.md"), force)
    return write_report(load_results(device.as_paths(results)), outdir, progress=progress)[0]


def deploy(bundles: Sequence[PathLike], target: Union[str, Sequence[str]], *, folder: str = "edgekit",
           ssh_config: Optional[PathLike] = None, install_runtime: bool = False,
           progress: Callable[[str], None] = print) -> list[dict]:
    """Copy bundles and device_bench.pyz to ``folder`` on each target and leave them there; one row per target."""
    from edgekit.targets.jobs import deploy as copy
    targets = _targets(target, ssh_config)
    if not targets:
        raise EdgekitError("deploy needs --target or --targets")
    return copy(targets, device.as_paths(bundles), folder, install_runtime, progress)


def pack_runner(output: PathLike = "device_bench.pyz", *, force: bool = False) -> str:
    """Write device_bench.pyz, the one-file device runner (needs only NumPy and a TFLite runtime there)."""
    from edgekit.targets.runner_pack import pack_runner as pack
    return pack(output, force)


def compare(base: Union[PathLike, str], new: Union[PathLike, str], *, history: Optional[PathLike] = None,
            fail_above: Optional[float] = None) -> Comparison:
    """Compare two results files (results.json, or `edgekit bench --json` output) or history selections
    (``"history:LABEL"``, read from ``history`` or the default database) configuration by configuration: the
    change in p50 with its 95% bootstrap interval and Mann-Whitney p-value over the per-process medians, memory,
    top-1. With ``fail_above`` (percent), a configuration slower by more than that, significantly, is a
    regression (``comparison.ok`` is False)."""
    from edgekit.study.compare import compare_runs, load_side
    if fail_above is not None and not fail_above >= 0:  # before any file is read
        raise EdgekitError(f"--fail-above must be a percentage of 0 or more, got {fail_above}")
    return compare_runs(load_side(os.fspath(base), history), load_side(os.fspath(new), history), os.fspath(base),
                        os.fspath(new), fail_above)


def history_records(history: Optional[PathLike] = None, *, label: Optional[str] = None,
                    model: Optional[str] = None, ids: Optional[Sequence[int]] = None,
                    limit: Optional[int] = None) -> list[dict]:
    """Records of a results history (default: EDGEKIT_HISTORY, else the user's data folder), oldest first; each
    has the indexed columns, ``bundle`` (the manifest) and ``record`` (a one-row results run)."""
    from edgekit.study.history import History
    db = History(history, create=False)
    try:
        return db.records(label=label, model=model, ids=ids, limit=limit)
    finally:
        db.close()


def history_export(output: PathLike, history: Optional[PathLike] = None, *, format: Optional[str] = None,
                   label: Optional[str] = None, force: bool = False) -> str:
    """Write a history's records (those with ``label``, or all) to ``output`` as CSV or JSON (``format``, else
    the extension), atomically; an existing file is replaced only with ``force``. Returns the format."""
    from edgekit.study.history import export
    return export(history_records(history, label=label), output, format, force)


def history_plot(output: PathLike, history: Optional[PathLike] = None, *, label: Optional[str] = None,
                 force: bool = False) -> str:
    """Write a self-contained HTML page (no network) of p50 over time, one line per configuration."""
    from edgekit.study.history_plot import write_plot
    return write_plot(history_records(history, label=label), output, force)
