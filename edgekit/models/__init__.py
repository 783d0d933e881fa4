"""The model zoo: SqueezeNet 1.0/1.1, MobileNet V1 and V2."""

from edgekit.models.registry import ModelSpec, create_model, get_spec, list_models, register_model, resolve_args

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model", "resolve_args"]
