"""The model zoo as a registry, in the style of timm's ``_registry.py``.

One small registered function per model, a frozen spec per model, ``list_models()`` and
``create_model(name, **kw)``. Nothing here imports TensorFlow; the builders do, when called.
"""

import difflib

from device_bench.errors import EdgekitError
from edgekit.zoo import mobilenet, squeezenet  # noqa: F401  (their @register_model fill the registry)
from edgekit.zoo.spec import REGISTRY

MAX_SIZE = 1024  # larger inputs allocate gigabytes of activations before anything could be measured


def list_models():
    """All registered model names, sorted, so callers can enumerate the zoo."""
    return sorted(REGISTRY)


def get_spec(name):
    """Look up a model's spec, suggesting close matches on failure so a typo is easy to fix."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EdgekitError(f"unknown model {name!r}{hint} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]


def resolve_args(name, alpha=None, size=None, classes=None, weights="none"):
    """Validate and complete build arguments; returns (spec, alpha, size, classes, weights)."""
    spec = get_spec(name)
    alpha = spec.default_alpha if alpha is None else float(alpha)
    if alpha not in spec.alphas:
        raise EdgekitError(f"{name} supports alpha {', '.join(map(str, spec.alphas))}; got {alpha}")
    size = spec.default_size if size is None else int(size)
    if size < spec.min_size:
        raise EdgekitError(f"{name} needs an input of at least {spec.min_size} pixels; got {size}")
    if size > MAX_SIZE:
        raise EdgekitError(f"{name}: an input of at most {MAX_SIZE} pixels (a classifier on a device); got {size}")
    classes = spec.num_classes if classes is None else int(classes)
    if classes < 2:
        raise EdgekitError(f"a classifier needs at least 2 classes; got {classes}")
    weights = weights or "none"
    if weights == "imagenet":
        if not spec.has_imagenet_weights:
            raise EdgekitError(f"no published ImageNet weights for {name} in Keras; pass a local weights "
                               f"file with --weights PATH; got --weights imagenet")
        if size not in spec.imagenet_sizes:
            raise EdgekitError(f"ImageNet weights for {name} exist at sizes "
                               f"{', '.join(map(str, spec.imagenet_sizes))}; got {size}")
        if classes != 1000:
            raise EdgekitError(f"ImageNet weights need 1000 classes; got {classes}")
    return spec, alpha, size, classes, weights


def create_model(name, alpha=None, size=None, classes=None, weights="none"):
    """Build a Keras model from the zoo. ``weights`` is 'none', 'imagenet' or a local weights file."""
    spec, alpha, size, classes, weights = resolve_args(name, alpha, size, classes, weights)
    from edgekit.zoo.weights import build_with_weights
    return build_with_weights(spec, alpha, size, classes, weights)
