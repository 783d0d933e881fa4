"""The model zoo as a registry, in the style of timm's ``_registry.py``.

One small registered function per model, a frozen spec per model, ``list_models()`` and
``create_model(name, **kw)``. Nothing here imports TensorFlow; the builders do, when called.
"""

import difflib
from dataclasses import dataclass, field

from device_bench.errors import EdgekitError


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one model, so arguments can be checked before TensorFlow is imported."""
    name: str
    family: str
    default_size: int
    min_size: int
    imagenet_sizes: tuple  # sizes with published ImageNet weights
    alphas: tuple
    default_alpha: float
    preprocessing: str  # a mode of device_bench.images.MODES
    crop_fraction: float = 0.875  # ImageNet evaluation: resize to 256, centre-crop 224
    num_classes: int = 1000
    weights: str = "none"  # where ImageNet weights come from
    builder: object = field(default=None, compare=False, repr=False)

    @property
    def has_imagenet_weights(self):
        """Whether ``--weights imagenet`` can work: only Keras-provided models have ImageNet weights."""
        return self.weights.startswith("keras")


_REGISTRY = {}


def register_model(spec):
    """Decorator: register ``fn(alpha, size, classes, weights)`` under ``spec.name``."""
    def wrap(fn):
        if spec.name in _REGISTRY:
            raise ValueError(f"model {spec.name!r} registered twice")
        _REGISTRY[spec.name] = ModelSpec(**{**spec.__dict__, "builder": fn})
        return fn
    return wrap


def list_models():
    """All registered model names, sorted, so callers can enumerate the zoo."""
    _load_builders()
    return sorted(_REGISTRY)


def get_spec(name):
    """Look up a model's spec, suggesting close matches on failure so a typo is easy to fix."""
    _load_builders()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EdgekitError(f"unknown model {name!r}{hint} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def resolve_args(name, alpha=None, size=None, classes=None, weights="none"):
    """Validate and complete build arguments; returns (spec, alpha, size, classes, weights)."""
    spec = get_spec(name)
    alpha = spec.default_alpha if alpha is None else float(alpha)
    if alpha not in spec.alphas:
        raise EdgekitError(f"{name} supports alpha {', '.join(map(str, spec.alphas))}; got {alpha}")
    size = spec.default_size if size is None else int(size)
    if size < spec.min_size:
        raise EdgekitError(f"{name} needs an input of at least {spec.min_size} pixels; got {size}")
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
    from edgekit.models.weights import build_with_weights
    return build_with_weights(spec, alpha, size, classes, weights)


def _load_builders():
    # importing the modules runs their @register_model decorators
    from edgekit.models import mobilenet, squeezenet  # noqa: F401
