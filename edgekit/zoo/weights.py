"""Building a zoo model with its weights: none, Keras's ImageNet download, or a local file."""

import os

from device_bench.errors import EdgekitError, WeightsUnavailable
from device_bench.runtime import first_line
from edgekit.tf_import import import_tf, quiet_stderr


def build_with_weights(spec, alpha, size, classes, weights):
    """Build a zoo model with its weights, turning download and load failures into actionable errors."""
    _, keras = import_tf()
    local = weights not in ("none", "imagenet")
    if local and not os.path.isfile(weights):
        raise EdgekitError(f"weights file not found: {weights}")
    try:
        with quiet_stderr():
            model = spec.builder(alpha, size, classes, weights)
    except Exception as e:
        if weights == "imagenet":
            first = first_line(e)[:200]
            raise WeightsUnavailable(
                f"could not fetch ImageNet weights for {spec.name} (alpha {alpha}, size {size}) through "
                f"Keras: {first}; download them where there is network and pass --weights PATH",
                reason=first.split(" -- ")[-1]) from None
        raise
    if local:
        try:
            model.load_weights(weights)
        except Exception as e:
            raise EdgekitError(f"{weights}: cannot load these weights into {spec.name} "
                               f"(alpha {alpha}, size {size}, {classes} classes): {first_line(e)[:300]}") from None
    return model
