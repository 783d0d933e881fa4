"""`edgekit convert`: a zoo name or a model file in, one bundle per precision out."""

import os
from pathlib import Path

from device_bench.errors import EdgekitError
from device_bench.images import make_preprocessing
from device_bench.manifest import read_labels

SAMPLE_IMAGES = Path(__file__).resolve().parent.parent / "sample_images"


def default_calibration():
    return str(SAMPLE_IMAGES) if SAMPLE_IMAGES.is_dir() else None


def load_source(source, alpha=None, size=None, classes=None, weights="none", unsafe=False,
                mean=None, std=None, preprocessing=None, crop_fraction=None, seed=0):
    """Build or load the model once. Returns (model, name, preprocessing record, source record, spec)."""
    from converters.bundle import sha256_of
    from converters.package import weights_sha256
    from edgekit.models import create_model, resolve_args
    from edgekit.tf import import_tf

    if os.path.exists(source) or source.endswith((".keras", ".h5", ".hdf5")) or os.sep in source:
        from edgekit.loading import load_keras_model
        if alpha is not None or classes is not None or weights not in (None, "none"):
            raise EdgekitError(f"--alpha, --classes and --weights apply to zoo models, not to the file {source}")
        if mean is None and std is None and preprocessing is None:
            raise EdgekitError(f"{source}: say how the model's pixels are scaled with --mean and --std "
                               f"(e.g. --mean 127.5 --std 127.5 for [-1, 1]) or --preprocessing tf|torch|caffe; "
                               f"a guess would calibrate on the wrong scale")
        model = load_keras_model(source, unsafe=unsafe)
        shape = model.input_shape
        if isinstance(shape, list) or len(shape) != 4:
            raise EdgekitError(f"{source}: expected one image input [N, H, W, C], got {shape}")
        if None in shape[1:3]:
            raise EdgekitError(f"{source}: the model's input has no fixed size {shape}; rebuild it with one")
        if size is not None and size != shape[1]:
            raise EdgekitError(f"{source}: the model takes {shape[1]}x{shape[2]} inputs; got --size {size}")
        prep = make_preprocessing(preprocessing, mean, std, 1.0 if crop_fraction is None else crop_fraction)
        name = Path(source.rstrip("/")).stem
        record = {"kind": "file", "path": os.path.abspath(source), "sha256": sha256_of(source)}
        return model, name, prep, record, None
    spec, alpha, size, classes, weights = resolve_args(source, alpha, size, classes, weights)
    if mean is not None or std is not None or preprocessing is not None:
        raise EdgekitError(f"{source} is a zoo model and knows its preprocessing ({spec.preprocessing}); "
                           f"--mean/--std/--preprocessing are for your own model files")
    _, keras = import_tf()
    if weights == "none":
        keras.utils.set_random_seed(seed)  # reproducible random weights: same settings, same bundle
    model = create_model(source, alpha=alpha, size=size, classes=classes, weights=weights)
    prep = make_preprocessing(spec.preprocessing, crop_fraction=spec.crop_fraction if crop_fraction is None
                              else crop_fraction)
    name = f"{source}_{round(alpha * 100):03d}_{size}" if len(spec.alphas) > 1 else f"{source}_{size}"
    record = {"kind": "zoo", "model": source, "family": spec.family, "alpha": alpha, "size": size,
              "classes": classes, "weights": weights if weights in ("none", "imagenet") else os.path.abspath(weights),
              "trained": weights != "none", "sha256": weights_sha256(model)}
    return model, name, prep, record, spec


def labels_for(labels_file, spec, model, weights):
    if labels_file:
        labels = read_labels(labels_file)
        if len(labels) != model.output_shape[-1]:
            raise EdgekitError(f"{labels_file}: {len(labels)} labels for a model with {model.output_shape[-1]} outputs")
        return labels
    if spec is not None and model.output_shape[-1] == 1000 and weights == "imagenet":
        from edgekit.imagenet import imagenet_labels
        return imagenet_labels()
    return None


def run_convert(source, precisions, outdir, *, alpha=None, size=None, classes=None, weights="none",
                unsafe=False, mean=None, std=None, preprocessing=None, crop_fraction=None, labels=None,
                calibration=None, calibration_count=200, io="int8", allow_tf_ops=False, eval_dir=None,
                debug_layers=False, force=False, progress=print, reuse=False):
    from converters.package import package
    from edgekit.models.macs import count_macs

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
    progress(f"loading {source}")
    model, name, prep, record, spec = load_source(source, alpha, size, classes, weights, unsafe, mean, std,
                                                  preprocessing, crop_fraction)
    names = labels_for(labels, spec, model, record.get("weights"))
    results = package(model, name=name, precisions=list(dict.fromkeys(precisions)), outdir=outdir,
                      preprocessing=prep, source=record, params=model.count_params(), macs=count_macs(model),
                      labels=names, calibration_dir=calibration, calibration_count=calibration_count, io=io,
                      allow_tf_ops=allow_tf_ops, eval_dir=eval_dir,
                      debug_layers=debug_layers, force=force,
                      progress=progress, reuse=reuse)
    return {"model": name, "source": record, "bundles": results}
