"""The model zoo: SqueezeNet 1.0/1.1, MobileNet V1 and V2."""

from edgekit.zoo.registry import create_model, get_spec, list_models, resolve_args
from edgekit.zoo.spec import ModelSpec, register_model

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model", "resolve_args"]
