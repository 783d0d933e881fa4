"""From a model (a keras.Model, a model file or a zoo name) or a float .tflite to one bundle per precision:
the library behind `edgekit convert` and `edgekit quantize`, shared by studies and `compress`'s measurement."""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, Union

from device_bench.errors import EdgekitError
from device_bench.options import DEFAULT_CALIBRATION_COUNT, DEFAULT_IO
from device_bench.records import ConvertResult

PathLike = Union[str, "os.PathLike[str]"]


def convert(model: Any, precisions: Union[str, Sequence[str]] = ("fp32",), outdir: PathLike = ".", *,
            alpha: Optional[float] = None, size: Optional[int] = None, classes: Optional[int] = None,
            weights: str = "none", mean: Any = None, std: Any = None, preprocessing: Optional[str] = None,
            crop: Optional[float] = None, labels: Any = None, calibration: Optional[PathLike] = None,
            calibration_count: int = DEFAULT_CALIBRATION_COUNT, io: str = DEFAULT_IO,
            eval_dir: Optional[PathLike] = None, fold_preprocessing: Optional[bool] = None,
            allow_tf_ops: bool = False, debug_layers: bool = False, quantizers: Sequence[str] = ("tflite",),
            layer_report: bool = False, recover_accuracy: Optional[float] = None, keep_as: str = "float",
            latency_limit: bool = True, unsafe: bool = False, custom_objects: Sequence[str] = (), force: bool = False,
            reuse: bool = False, progress: Optional[Callable[[str], None]] = None) -> ConvertResult:
    """Convert a keras.Model, a model file or a zoo name to one bundle per precision.

    Keyword names follow `edgekit convert`'s options. ``fold_preprocessing`` (default: on for zoo models)
    makes the model take raw RGB pixels, its normalization the graph's first op. ``quantizers`` picks
    TFLiteConverter ("tflite"), the LiteRT quantizer ("litert", from the fp32 .tflite) or both. Returns a
    ConvertResult: a mapping from precision to Bundle (a failed precision is a Bundle with ``error`` set;
    the others are still written)."""
    from converters.pipeline import convert_model
    from edgekit.zoo.loading import register_custom_objects
    from edgekit.sources import load_source
    progress = progress or (lambda message: None)
    settings = _settings(precisions, outdir, calibration, calibration_count, eval_dir, recover_accuracy,
                         quantizers=quantizers, io=io, allow_tf_ops=allow_tf_ops, debug_layers=debug_layers,
                         layer_report=layer_report, keep_as=keep_as, latency_limit=latency_limit, force=force,
                         reuse=reuse)
    if debug_layers and ("int8", "tflite") not in settings.builds():
        raise EdgekitError("--debug-layers needs -p int8 with TFLiteConverter (--quantizer tflite)")
    if not (force or reuse):  # refuse existing bundles before a model load that can take a while
        from device_bench.safe_write import refuse_existing
        from edgekit.sources import source_name
        name = source_name(model, alpha, size)
        for p, q in settings.builds():
            refuse_existing(settings.folder(name, p, q), force)
    progress(f"loading {model if isinstance(model, (str, os.PathLike)) else getattr(model, 'name', 'the model')}")
    register_custom_objects(custom_objects)
    keras_model, info = load_source(model, alpha=alpha, size=size, classes=classes, weights=weights, unsafe=unsafe,
                                    mean=mean, std=std, preprocessing=preprocessing, crop=crop,
                                    labels=labels, progress=progress)
    trained_on = info.source.get("dataset")  # a model from edgekit train: calibrate on its own images
    if calibration is None and trained_on and os.path.isdir(trained_on):
        settings.calibration_dir = trained_on
    folding = None
    if fold_preprocessing if fold_preprocessing is not None else info.source["kind"] == "zoo":
        from converters.folding import RESCALING_NOTE, fold_preprocessing as fold
        folding, info.preprocessing = fold(keras_model, info.preprocessing)
        keras_model = folding.model
        if folding.method == "rescaling":
            but = " (but int8 with uint8 or int8 input: its input quantization)" if folding.scalar else ""
            progress(f"note: {info.name}: the normalization could not go into the first convolution "
                     f"({folding.reason}){but}: {RESCALING_NOTE}")
    elif len(set(info.preprocessing["mean"])) > 1 or len(set(info.preprocessing["std"])) > 1:
        progress(f"warning: {info.name}: per-channel normalization without --fold-preprocessing: MediaPipe "
                 f"Tasks will refuse these bundles' float inputs")
    return ConvertResult(info.name, info.source, convert_model(keras_model, info, settings, progress, folding))


def quantize(model: PathLike, precisions: Union[str, Sequence[str]] = ("int8",), outdir: PathLike = ".", *,
             mean: Any = None, std: Any = None, preprocessing: Optional[str] = None, crop: Optional[float] = None,
             labels: Optional[PathLike] = None, calibration: Optional[PathLike] = None,
             calibration_count: int = DEFAULT_CALIBRATION_COUNT, io: str = DEFAULT_IO,
             eval_dir: Optional[PathLike] = None, layer_report: bool = False, recover_accuracy: Optional[float] = None,
             keep_as: str = "float", latency_limit: bool = True, force: bool = False,
             progress: Optional[Callable[[str], None]] = None) -> ConvertResult:
    """Quantize a float .tflite (or a bundle holding one) with the LiteRT quantizer, without TensorFlow.

    Keyword names follow `edgekit quantize`'s options; "fp32" packages the float file as it is. Pixel
    scaling and labels default to what the file says of itself (a bundle's manifest and labels, else the
    standard TFLite Metadata). Returns a ConvertResult."""
    from converters.quantize import quantize_model, tflite_info, tflite_source
    from device_bench.images import make_preprocessing
    from device_bench.manifest import read_labels
    progress = progress or (lambda message: None)
    settings = _settings(precisions, outdir, calibration, calibration_count, eval_dir, recover_accuracy,
                         quantizers=["litert"], io=io, layer_report=layer_report, keep_as=keep_as,
                         latency_limit=latency_limit, force=force)
    data, graph, ref = tflite_source(model)
    if mean is not None or std is not None or preprocessing is not None:
        prep = make_preprocessing(preprocessing, mean, std, 1.0 if crop is None else crop)
    elif ref.preprocessing:  # the embedded manifest's, else the standard TFLite Metadata's normalization
        prep = dict(ref.preprocessing, **({} if crop is None else {"crop_fraction": crop}))
    else:
        raise EdgekitError(f"{model}: say how the model's pixels are scaled with --mean and --std (e.g. --mean "
                           f"127.5 --std 127.5 for [-1, 1]) or --preprocessing tf|torch|caffe; a guess would "
                           f"calibrate on the wrong scale")
    info = tflite_info(model, data, graph, prep, read_labels(labels) if labels else ref.labels)
    return ConvertResult(info.name, info.source, quantize_model(data, graph, info, settings, progress))


def _settings(precisions, outdir, calibration, calibration_count, eval_dir, recover_accuracy, quantizers, **rest):
    """The ConvertSettings both convert and quantize run with, after the checks they share."""
    from converters.pipeline import ConvertSettings
    from device_bench.options import CALIBRATED, KEEP_AS, QUANTIZERS
    from edgekit.sources import default_calibration
    precisions = list(dict.fromkeys([precisions] if isinstance(precisions, str) else precisions))
    quantizers = [q for q in QUANTIZERS if q in ([quantizers] if isinstance(quantizers, str) else quantizers)]
    if not precisions:
        raise EdgekitError("give at least one precision with -p (fp32, fp16, dynamic, int8)")
    if not quantizers:
        raise EdgekitError(f"give a quantizer: {', '.join(QUANTIZERS)}")
    if calibration_count < 1:
        raise EdgekitError(f"--calibration-count must be at least 1, got {calibration_count}")
    calibration = calibration or default_calibration()
    if any(p in CALIBRATED for p in precisions) and calibration is None:
        raise EdgekitError(f"{' and '.join(p for p in precisions if p in CALIBRATED)} need calibration images: "
                           f"give --calibration DIR")
    if rest.get("keep_as", "float") not in KEEP_AS:
        raise EdgekitError(f"--keep-as must be one of {', '.join(KEEP_AS)}, got {rest['keep_as']!r}")
    if recover_accuracy is not None:
        if recover_accuracy < 0:
            raise EdgekitError(f"--recover-accuracy is a top-1 drop in points, at least 0; got {recover_accuracy}")
        if "int8" not in precisions or "litert" not in quantizers:
            raise EdgekitError("--recover-accuracy works on -p int8 made by the LiteRT quantizer")
        if eval_dir is None:
            raise EdgekitError("--recover-accuracy needs --eval DIR: labelled images, one subfolder per class")
    outdir = os.path.abspath(outdir)
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise EdgekitError(f"{outdir} exists and is not a folder")
    settings = ConvertSettings(precisions=precisions, outdir=outdir, calibration_dir=calibration,
                               calibration_count=calibration_count, eval_dir=eval_dir, quantizers=quantizers,
                               recover_accuracy=recover_accuracy, **rest)
    settings.builds()  # an unknown precision, or int16x8 without the LiteRT quantizer, fails here
    return settings
