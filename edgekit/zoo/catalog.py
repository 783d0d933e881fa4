"""Zoo-level operations behind `edgekit models` and `edgekit build`."""

from edgekit.zoo import create_model, get_spec, list_models, resolve_args
from edgekit.zoo.macs import count_macs


def describe_zoo():
    """One row per registered model at its default width and size (builds each, without weights)."""
    rows = []
    for name in list_models():
        spec = get_spec(name)
        model = create_model(name)
        rows.append({
            "name": name, "family": spec.family, "params": model.count_params(), "macs": count_macs(model),
            "input_size": spec.default_size, "alphas": ",".join(f"{a:g}" for a in spec.alphas),
            "preprocessing": spec.preprocessing, "weights": spec.weights,
        })
    return rows


def build_to_file(name, output, alpha=None, size=None, classes=None, weights="none", force=False):
    """Build a zoo model and save it as .keras for ``edgekit build``, carrying its preprocessing (and ImageNet's
    labels with ImageNet weights) as `edgekit train` does, so that `edgekit convert` needs no --mean/--std."""
    from device_bench.images import make_preprocessing
    from edgekit.zoo.imagenet import imagenet_labels
    from edgekit.zoo.meta import check_keras_output, save_model
    check_keras_output(output, force)
    spec, alpha, size, classes, weights = resolve_args(name, alpha, size, classes, weights)
    model = create_model(name, alpha=alpha, size=size, classes=classes, weights=weights)
    labels = imagenet_labels() if weights == "imagenet" else None
    meta = {"family": spec.family, "name": spec.variant_name(alpha, size),
            "source": {"model": name, "alpha": alpha, "size": size, "weights": weights},
            "preprocessing": make_preprocessing(spec.preprocessing, crop_fraction=spec.crop_fraction),
            "labels": labels}
    save_model(model, output, {k: v for k, v in meta.items() if v is not None}, force=force)
    return {"path": str(output), "name": name, "params": model.count_params(), "macs": count_macs(model),
            "input_size": model.input_shape[1]}
