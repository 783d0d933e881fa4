"""Where a model comes from: the zoo, a model file, or a keras.Model in memory.

Each becomes a keras.Model plus a ModelInfo (name, preprocessing, source record with its sha256,
parameters, multiply-adds, labels) that the converters need.
"""

import os
from pathlib import Path

from device_bench.errors import EdgekitError
from device_bench.images import make_preprocessing
from device_bench.manifest import KERAS_SUFFIXES, read_labels

SAMPLE_IMAGES = Path(__file__).resolve().parent / "sample_images"  # package data: in a wheel too


def default_calibration():
    """The photographs shipped inside the package (a checkout or an installed wheel)."""
    return str(SAMPLE_IMAGES) if SAMPLE_IMAGES.is_dir() else None


def is_model_path(source):
    """A path to a model file or folder, rather than a zoo name."""
    source = os.fspath(source)
    return os.path.exists(source) or source.endswith(KERAS_SUFFIXES) or os.sep in source


def source_name(source, alpha=None, size=None):
    """The name bundles of ``source`` get, known before the model loads: the zoo variant, the file's stem, or
    the in-memory model's name."""
    if not isinstance(source, (str, os.PathLike)):
        return getattr(source, "name", "model")
    if is_model_path(source):
        return Path(os.fspath(source).rstrip("/")).stem
    from edgekit.zoo import resolve_args
    spec, alpha, size, _, _ = resolve_args(os.fspath(source), alpha, size)
    return spec.variant_name(alpha, size)


def load_source(source, *, alpha=None, size=None, classes=None, weights="none", unsafe=False, mean=None,
                std=None, preprocessing=None, crop=None, labels=None, seed=0, progress=None):
    """(keras.Model, ModelInfo) for a zoo name, a model file or folder, or an in-memory keras.Model."""
    from converters.pipeline import ModelInfo
    from edgekit.zoo.macs import count_macs
    if isinstance(source, (str, os.PathLike)) and not is_model_path(source):
        from edgekit.zoo import get_spec
        spec = get_spec(os.fspath(source))  # an unknown name fails first, listing the close ones
        if mean is not None or std is not None or preprocessing is not None:
            raise EdgekitError(f"{source} is a zoo model and knows its preprocessing ({spec.preprocessing}); "
                               f"--mean/--std/--preprocessing are for your own model files")
        model, name, prep, record, spec = _from_zoo(os.fspath(source), dict(alpha=alpha, size=size, classes=classes,
                                                                             weights=weights), crop, seed)
    else:
        if alpha is not None or classes is not None or weights not in (None, "none"):
            raise EdgekitError(f"--alpha, --classes and --weights apply to zoo models, not to {_describe(source)}")
        model, name, record = _from_model(source, unsafe)
        spec = None
        model = _check_image_input(model, size, _describe(source))
        meta = _stored_meta(source, record)
        builtin = _builtin_normalization(model)
        scaled = mean is not None or std is not None or preprocessing is not None
        if builtin and scaled and progress:
            progress(f"warning: {_describe(source)} begins with a {builtin} layer: it normalizes its own pixels, "
                     f"and --mean/--std/--preprocessing normalize them a second time")
        if not scaled and meta.get("preprocessing"):
            prep = dict(meta["preprocessing"], **({} if crop is None else {"crop_fraction": crop}))
        elif not scaled and builtin:
            prep = make_preprocessing(None, [0.0], [1.0], 1.0 if crop is None else crop)
            if progress:
                progress(f"{_describe(source)} begins with a {builtin} layer: it takes raw pixels (mean 0, std 1)")
        elif not scaled:
            raise EdgekitError(f"{_describe(source)}: say how the model's pixels are scaled with --mean and --std "
                               f"(e.g. --mean 127.5 --std 127.5 for [-1, 1]) or --preprocessing tf|torch|caffe; "
                               f"a guess would calibrate on the wrong scale")
        else:
            prep = make_preprocessing(preprocessing, mean, std, 1.0 if crop is None else crop)
        if not labels and meta.get("labels"):
            labels = meta["labels"]
    names = labels_for(labels, spec, model, record.get("weights"))
    return model, ModelInfo(name=name, preprocessing=prep, source=record, params=model.count_params(),
                            macs=count_macs(model), labels=names)


def _stored_meta(source, record):
    """What a model file made by `edgekit train`/`compress` says of itself; its facts join ``record``."""
    from edgekit.zoo.meta import read_model_meta
    meta = read_model_meta(source) if isinstance(source, (str, os.PathLike)) else None
    if not meta:
        return {}
    record.update({k: meta[k] for k in ("family", "compression") if meta.get(k)})
    if (meta.get("training") or {}).get("dataset"):
        record["dataset"] = meta["training"]["dataset"]
    if meta.get("training"):
        record["trained"] = True
    elif (meta.get("source") or {}).get("weights"):  # `edgekit build`: random unless it was given weights
        record["trained"] = meta["source"]["weights"] != "none"
    return meta


def _describe(source):
    return f"the model {source.name!r}" if not isinstance(source, (str, os.PathLike)) else f"the file {source}"


def _from_model(source, unsafe):
    """A keras.Model from a file or folder, or the one given; with its name and source record."""
    from converters.bundle_writer import sha256_of
    from converters.pipeline import weights_sha256
    if not isinstance(source, (str, os.PathLike)):
        if not hasattr(source, "input_shape") or not hasattr(source, "get_weights"):
            raise EdgekitError(f"expected a zoo name, a model file or a keras.Model, got {type(source).__name__}")
        return source, source.name, {"kind": "keras", "name": source.name, "sha256": weights_sha256(source)}
    from edgekit.zoo.loading import load_keras_model
    path = os.fspath(source)
    model = load_keras_model(path, unsafe=unsafe)
    return model, source_name(path), {"kind": "file", "path": os.path.abspath(path), "sha256": sha256_of(path)}


def _builtin_normalization(model):
    """The class name of a Rescaling or Normalization layer the model begins with (Keras's MobileNetV3 and
    EfficientNet carry their own preprocessing), or None."""
    for layer in model.layers[:4]:
        kind = type(layer).__name__
        if kind in ("Rescaling", "Normalization"):
            return kind
        if kind not in ("InputLayer", "Resizing"):
            return None
    return None


def _check_image_input(model, size, where):
    """An image classifier: one [N, H, W, 1 or 3] input of a fixed size (``size`` fixes one left open), one
    [N, classes] output. Returns the model, given its fixed input where ``size`` did."""
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4 or shape[-1] not in (1, 3):
        raise EdgekitError(f"{where}: expected one image input [N, H, W, C] with 1 or 3 channels, got {shape}")
    out = model.output_shape
    if isinstance(out, list) or len(out) != 2:
        raise EdgekitError(f"{where}: expected one class-score output [N, classes], got {out}")
    if None in shape[1:3]:
        if size is None:
            raise EdgekitError(f"{where}: the model's input has no fixed size {shape}; give one with --size")
        from edgekit.tf_import import import_tf
        _, keras = import_tf()
        try:  # the same layers and weights, every shape now known (multiply-adds can be counted)
            fixed = keras.models.clone_model(model, input_tensors=keras.Input((size, size, shape[-1])))
        except Exception as e:
            raise EdgekitError(f"{where}: cannot give the model a fixed {size}x{size} input ({str(e)[:200]})") from None
        fixed.set_weights(model.get_weights())
        return fixed
    if size is not None and size != shape[1]:
        raise EdgekitError(f"{where}: the model takes {shape[1]}x{shape[2]} inputs; got --size {size}")
    return model


def _from_zoo(source, build, crop_fraction, seed):
    """A zoo model built with ``build`` (alpha, size, classes, weights); random weights are seeded."""
    from converters.pipeline import weights_sha256
    from edgekit.zoo import create_model, resolve_args
    from edgekit.tf_import import import_tf
    spec, alpha, size, classes, weights = resolve_args(source, **build)
    _, keras = import_tf()
    if weights == "none":
        keras.utils.set_random_seed(seed)  # reproducible random weights: same settings, same bundle
    model = create_model(source, alpha=alpha, size=size, classes=classes, weights=weights)
    prep = make_preprocessing(spec.preprocessing, crop_fraction=spec.crop_fraction if crop_fraction is None
                              else crop_fraction)
    name = spec.variant_name(alpha, size)
    record = {"kind": "zoo", "model": source, "family": spec.family, "alpha": alpha, "size": size,
              "classes": classes, "weights": weights if weights in ("none", "imagenet") else os.path.abspath(weights),
              "trained": weights != "none", "sha256": weights_sha256(model)}
    return model, name, prep, record, spec


def labels_for(labels_file, spec, model, weights):
    """Class names: the user's file (or list), else ImageNet's for ImageNet weights, else None."""
    if labels_file is not None:
        where = labels_file if isinstance(labels_file, (str, os.PathLike)) else "labels"
        labels = read_labels(labels_file) if where is labels_file else [str(l) for l in labels_file]
        if len(labels) != model.output_shape[-1]:
            raise EdgekitError(f"{where}: {len(labels)} labels for a model with {model.output_shape[-1]} outputs")
        bad = next((i for i, l in enumerate(labels) if "\n" in l or "\r" in l or not l.strip()), None)
        if bad is not None:
            raise EdgekitError(f"{where}: label {bad + 1} is empty or holds a line break: {labels[bad]!r}")
        return labels
    if spec is not None and model.output_shape[-1] == 1000 and weights == "imagenet":
        from edgekit.zoo.imagenet import imagenet_labels
        return imagenet_labels()
    return None
