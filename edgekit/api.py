"""edgekit's public API, for notebooks and scripts; every CLI command is a thin face over one of these.

    import edgekit
    bundles = edgekit.convert(model, precisions=["fp32", "int8"], calibration="photos/", outdir="out/",
                              mean=127.5, std=127.5, labels="labels.txt")
    mine    = edgekit.quantize("model.tflite", ["fp32", "int8"], "out/", calibration="photos/",
                               preprocessing="tf", eval_dir="labelled/", recover_accuracy=1.0)  # no TensorFlow
    result  = edgekit.benchmark(bundles["int8"], threads=[1, 4])     # or target="ssh://pi"
    preds   = edgekit.classify(bundles["int8"], ["cat.jpg"])
    acc     = edgekit.evaluate(bundles["int8"], "labelled/", compare=bundles["fp32"])
    study   = edgekit.run_study("study.toml")                        # or a Study built in code
    choice  = edgekit.recommend("out/results.json", max_top1_drop=0.5)  # the build to ship, or why not
"""

import os

from device_bench import api as device
from device_bench.errors import EdgekitError
from device_bench.options import DEFAULT_CALIBRATION_COUNT, DEFAULT_IO, DEFAULT_REPEAT, BenchParams
from device_bench.records import BenchResult, EvalResult, ImagePrediction, Predictions
from edgekit.conversion import convert, quantize  # noqa: F401  (part of the API)
from edgekit.study.recommend import recommend  # noqa: F401  (part of the API)
from edgekit.study.run import run_study  # noqa: F401  (part of the API)


def _targets(target, ssh_config):
    from edgekit.targets import read_targets
    return read_targets(target, None, ssh_config) if target else None


def benchmark(models, threads=(1,), *, target=None, ssh_config=None, install_runtime=False, cooldown=0.0,
              repeat=DEFAULT_REPEAT, params=None, progress=None, **options):
    """Benchmark bundles or .tflite files here or on ``target``: every runtime asked for (``runtime="all"``:
    every one installed), each configuration in ``repeat`` fresh processes, interleaved.

    ``options`` are BenchParams fields (num_runs, min_secs, runtime, api, accelerator, xnnpack, ...). Returns
    a list of BenchResult, one per model x runtime x thread count (x target), failures as error rows."""
    from dataclasses import replace
    targets = _targets(target, ssh_config)
    if not targets:
        return device.benchmark(models, threads, params, cooldown, progress=progress, repeat=repeat, **options)
    from edgekit.targets.jobs import bench_on_targets
    sweep = device.sweep_settings(threads, repeat, cooldown)
    params = replace(params or BenchParams(), threads=sweep.threads[0], **options).validate()
    rows = bench_on_targets(targets, device.as_paths(models), params, sweep, install_runtime,
                            progress or (lambda m: None))
    return [BenchResult.from_dict({"model": None, **r}) for r in rows]


def classify(model, images, top_k=None, *, labels=None, mean=None, std=None, target=None, ssh_config=None,
             install_runtime=False, progress=None, **open_options):
    """Top-k labels for image files or folders, here or on ``target``. Returns Predictions.

    ``open_options``: runtime, api, accelerator, verify (the bundle's sha256 check), max_memory_mb."""
    targets = _targets(target, ssh_config)
    if not targets:
        return device.classify(model, images, top_k, labels, mean, std, **open_options)
    from edgekit.targets.jobs import classify_on_targets
    if top_k is not None and top_k < 1:
        raise EdgekitError(f"--top-k must be at least 1, got {top_k}")
    rows = classify_on_targets(targets, os.fspath(model), device.as_paths(images), top_k, install_runtime,
                               progress or (lambda m: None), labels=labels, mean=mean, std=std, **open_options)
    return Predictions(model=os.path.basename(os.path.normpath(os.fspath(model))),
                       items=[ImagePrediction.from_dict({"image": None, **r}) for r in rows])


def inspect(model, **open_options):
    """What a phone app or a board will see in a bundle or .tflite (device-side dependencies only)."""
    return device.inspect(model, **open_options)


def evaluate(model, dataset, compare=None, *, labels=None, mean=None, std=None, target=None, ssh_config=None,
             install_runtime=False, progress=None, **open_options):
    """Top-1/top-5 on class folders (or a CSV here), in any runtime and API. An EvalResult, or a list of them
    with ``target``.

    ``open_options``: runtime, api, accelerator, verify (the bundle's sha256 check), max_memory_mb."""
    targets = _targets(target, ssh_config)
    if not targets:
        return device.evaluate(model, dataset, compare, labels, mean, std, **open_options)
    from edgekit.targets.jobs import evaluate_on_targets
    rows = evaluate_on_targets(targets, os.fspath(model), os.fspath(dataset),
                               None if compare is None else os.fspath(compare), install_runtime,
                               progress or (lambda m: None), labels=labels, mean=mean, std=std, **open_options)
    return [EvalResult.from_dict({"model": None, **r}) for r in rows]


def train(model, dataset, output, *, alpha=None, size=None, weights="imagenet", mean=None, std=None,
          preprocessing=None, crop=None, unsafe=False, force=False, progress=None, progress_bar=False, **settings):
    """Train a zoo model or a model file on class folders; writes a .keras file that carries its
    preprocessing and labels. ``settings`` are TrainSettings fields (epochs, lr, seed, ...).

    Uses pretrained weights (frozen backbone, then unfrozen) when they can be had, else trains from
    scratch and says so in ``note``. Returns a TrainResult."""
    from edgekit.training.fit import train_model, train_settings
    return train_model(model, dataset, output, train_settings(settings), alpha=alpha, size=size, weights=weights,
                       mean=mean, std=std, preprocessing=preprocessing, crop=crop, unsafe=unsafe, force=force,
                       progress=progress, bar=progress_bar)


def compress(model, dataset, output, methods=("prune",), *, sparsity=None, student=None, alpha=None, size=None,
             temperature=None, label_weight=None, baseline=True, mean=None, std=None, preprocessing=None,
             unsafe=False, force=False, progress=None, progress_bar=False, **settings):
    """Prune, distill and/or quantization-aware-train a model file, in the order of ``methods``; writes a
    .keras file that keeps the input's preprocessing and labels.

    ``settings`` are TrainSettings fields (epochs, lr, seed, ...); the held-out split defaults to the one
    the model was trained with. Each stage is measured (Keras and int8 top-1, raw and gzip size, latency).
    Returns a CompressResult."""
    from edgekit.training.compress import compress_model
    return compress_model(model, dataset, output, methods, settings, sparsity=sparsity, student=student, alpha=alpha,
                          size=size, temperature=temperature, label_weight=label_weight, baseline=baseline, mean=mean,
                          std=std, preprocessing=preprocessing, unsafe=unsafe, force=force, progress=progress,
                          bar=progress_bar)
