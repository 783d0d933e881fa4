"""What the zoo knows about a model (ModelSpec) and the decorator that registers its builder.

A module of its own so that the builders (mobilenet, squeezenet) register without importing the
registry that lists them. Nothing here imports TensorFlow.
"""

from dataclasses import dataclass, field


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

    def variant_name(self, alpha, size):
        """The name of one built variant (``mobilenet_v2_035_96``, ``squeezenet1_1_224``): bundles, trained
        models and study rows are all named by it."""
        return f"{self.name}_{round(alpha * 100):03d}_{size}" if len(self.alphas) > 1 else f"{self.name}_{size}"


REGISTRY = {}


def register_model(spec):
    """Decorator: register ``fn(alpha, size, classes, weights)`` under ``spec.name``."""
    def wrap(fn):
        if spec.name in REGISTRY:
            raise ValueError(f"model {spec.name!r} registered twice")
        REGISTRY[spec.name] = ModelSpec(**{**spec.__dict__, "builder": fn})
        return fn
    return wrap
