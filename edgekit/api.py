"""edgekit's public API, for notebooks and scripts; every CLI command is a thin face over one of these.

    import edgekit
    bundles = edgekit.convert(model, precisions=["fp32", "int8"], calibration="photos/", outdir="out/",
                              mean=127.5, std=127.5, labels="labels.txt")
    result  = edgekit.benchmark(bundles["int8"], threads=[1, 4])     # or target="ssh://pi"
    preds   = edgekit.classify(bundles["int8"], ["cat.jpg"])
    acc     = edgekit.evaluate(bundles["int8"], "labelled/", compare=bundles["fp32"])
    study   = edgekit.run_study("study.toml")                        # or a Study built in code
    choice  = edgekit.recommend("out/results.json", max_top1_drop=0.5)  # the build to ship, or why not
"""

import os

from device_bench import api as device
from device_bench.errors import EdgekitError
from device_bench.options import DEFAULT_CALIBRATION_COUNT, DEFAULT_REPEAT, BenchParams
from device_bench.records import BenchResult, EvalResult, ImagePrediction, Predictions
from edgekit.recommendation import recommend  # noqa: F401  (part of the API)
from edgekit.study import run_study  # noqa: F401  (part of the API)


def convert(model, precisions=("fp32",), outdir=".", *, alpha=None, size=None, classes=None, weights="none",
            mean=None, std=None, preprocessing=None, crop=None, labels=None, calibration=None,
            calibration_count=DEFAULT_CALIBRATION_COUNT, io="int8", eval_dir=None, allow_tf_ops=False,
            debug_layers=False, unsafe=False, force=False, reuse=False, progress=None):
    """Convert a keras.Model, a model file or a zoo name to one bundle per precision.

    Keyword names follow `edgekit convert`'s options. Returns a ConvertResult: a mapping from precision
    to Bundle (a failed precision is a Bundle with ``error`` set; the others are still written)."""
    from converters.pipeline import ConvertSettings, convert_model
    from device_bench.records import ConvertResult
    from edgekit.sources import default_calibration, load_source
    progress = progress or (lambda message: None)
    precisions = list(dict.fromkeys([precisions] if isinstance(precisions, str) else precisions))
    if not precisions:
        raise EdgekitError("give at least one precision with -p (fp32, fp16, dynamic, int8)")
    if calibration_count < 1:
        raise EdgekitError(f"--calibration-count must be at least 1, got {calibration_count}")
    calibration = calibration or default_calibration()
    if "int8" in precisions and calibration is None:
        raise EdgekitError("int8 needs calibration images: give --calibration DIR")
    if debug_layers and "int8" not in precisions:
        raise EdgekitError("--debug-layers needs -p int8")
    outdir = os.path.abspath(outdir)
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise EdgekitError(f"{outdir} exists and is not a folder")
    progress(f"loading {model if isinstance(model, (str, os.PathLike)) else getattr(model, 'name', 'the model')}")
    keras_model, info = load_source(model, alpha=alpha, size=size, classes=classes, weights=weights, unsafe=unsafe,
                                    mean=mean, std=std, preprocessing=preprocessing, crop_fraction=crop,
                                    labels=labels)
    settings = ConvertSettings(precisions=precisions, outdir=outdir, calibration_dir=calibration,
                               calibration_count=calibration_count, io=io, allow_tf_ops=allow_tf_ops,
                               eval_dir=eval_dir, debug_layers=debug_layers, force=force, reuse=reuse)
    return ConvertResult(info.name, info.source, convert_model(keras_model, info, settings, progress))


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
    rows = bench_on_targets(targets, device._paths(models), params, sweep, install_runtime,
                            progress or (lambda m: None))
    return [BenchResult.from_dict({"model": None, **r}) for r in rows]


def classify(model, images, top_k=None, *, labels=None, mean=None, std=None, runtime=None, api=None,
             accelerator="cpu", target=None, ssh_config=None, install_runtime=False, progress=None):
    """Top-k labels for image files or folders, in any runtime, here or on ``target``. Returns Predictions."""
    targets = _targets(target, ssh_config)
    if not targets:
        return device.classify(model, images, top_k, labels, mean, std, runtime, api, accelerator)
    from edgekit.targets.jobs import classify_on_targets
    if top_k is not None and top_k < 1:
        raise EdgekitError(f"--top-k must be at least 1, got {top_k}")
    rows = classify_on_targets(targets, os.fspath(model), device._paths(images), top_k, install_runtime,
                               progress or (lambda m: None), labels=labels, mean=mean, std=std, runtime=runtime,
                               api=api, accelerator=accelerator)
    return Predictions(model=os.path.basename(os.path.normpath(os.fspath(model))),
                       items=[ImagePrediction.from_dict({"image": None, **r}) for r in rows])


def evaluate(model, dataset, compare=None, *, labels=None, mean=None, std=None, runtime=None, api=None,
             accelerator="cpu", target=None, ssh_config=None, install_runtime=False, progress=None):
    """Top-1/top-5 on class folders (or a CSV here), in any runtime. An EvalResult, or a list of them with
    ``target``."""
    targets = _targets(target, ssh_config)
    if not targets:
        return device.evaluate(model, dataset, compare, labels, mean, std, runtime, api, accelerator)
    from edgekit.targets.jobs import evaluate_on_targets
    rows = evaluate_on_targets(targets, os.fspath(model), os.fspath(dataset),
                               None if compare is None else os.fspath(compare), install_runtime,
                               progress or (lambda m: None), labels=labels, mean=mean, std=std, runtime=runtime,
                               api=api, accelerator=accelerator)
    return [EvalResult.from_dict({"model": None, **r}) for r in rows]
