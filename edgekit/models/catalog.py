"""Zoo-level operations behind `edgekit models` and `edgekit build`."""

from device_bench.errors import EdgekitError
from device_bench.safe_write import atomic_path, check_output
from edgekit.models import create_model, get_spec, list_models
from edgekit.models.macs import count_macs


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
    """Build a zoo model and save it as .keras for ``edgekit build``, checking the output path first."""
    check_output(output, force)
    if not str(output).endswith(".keras"):
        raise EdgekitError(f"output must end in .keras, got {output}")
    model = create_model(name, alpha=alpha, size=size, classes=classes, weights=weights)
    with atomic_path(output, force) as tmp:
        model.save(tmp)
    return {"path": str(output), "name": name, "params": model.count_params(), "macs": count_macs(model),
            "input_size": model.input_shape[1]}
