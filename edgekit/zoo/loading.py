"""Loading a user's own Keras model: .keras, .h5 or a SavedModel folder."""

import importlib
import os
import re
import sys

from device_bench.errors import EdgekitError
from device_bench.manifest import KERAS_SUFFIXES
from device_bench.runtime import first_line
from edgekit.tf_import import import_tf, quiet_stderr


def load_keras_model(path, unsafe=False):
    """Load a model file or folder; safe deserialization unless ``unsafe``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise EdgekitError(f"{path}: no such model file or folder")
    tf, keras = import_tf()
    try:
        with quiet_stderr():
            if os.path.isdir(path):
                return _load_saved_model(path, tf, keras)
            if not path.endswith(KERAS_SUFFIXES):
                raise EdgekitError(f"{path}: not a Keras model (expected .keras, .h5 or a SavedModel folder)")
            import edgekit.zoo.qat_layers  # noqa: F401  (registers the QAT layers a compressed model may hold)
            return keras.saving.load_model(path, safe_mode=not unsafe, compile=False)
    except EdgekitError:
        raise
    except Exception as e:
        msg = first_line(e)
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", str(e))
        if missing:
            raise EdgekitError(f"{path}: the model uses {missing.group(1)!r}, a custom Keras object that is not "
                               f"registered here: pass --custom-objects MODULE (the module that defines it with "
                               f"@keras.saving.register_keras_serializable) or MODULE:NAME") from None
        if "safe_mode" in str(e) or "unsafe" in str(e).lower():
            raise EdgekitError(f"{path}: the model needs unsafe deserialization (it holds a Lambda layer "
                               f"or other arbitrary code); pass --unsafe only if you trust the file") from None
        raise EdgekitError(f"{path}: cannot load the model ({msg[:300]})") from None


def register_custom_objects(specs):
    """Import each ``module`` or ``module:name`` (from the working folder too, as `python -m` would), so that
    a model file holding custom layers loads: a module registers its classes with
    @keras.saving.register_keras_serializable; ``module:name`` registers that one object under its name."""
    if not specs:
        return
    _, keras = import_tf()
    for spec in [specs] if isinstance(specs, str) else specs:
        module_name, _, name = spec.partition(":")
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # the user's own code: any failure is theirs to see, in one line
            raise EdgekitError(f"--custom-objects {spec}: cannot import {module_name} ({first_line(e)})") from None
        finally:
            sys.path.remove(os.getcwd())
        if name:
            if not hasattr(module, name):
                raise EdgekitError(f"--custom-objects {spec}: {module_name} has no {name!r}")
            keras.saving.get_custom_objects()[name] = getattr(module, name)


def _load_saved_model(path, tf, keras):
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise EdgekitError(f"{path}: a folder, but not a SavedModel (no saved_model.pb)")
    loaded = tf.saved_model.load(path)
    sig = loaded.signatures.get("serving_default")
    if sig is None:
        raise EdgekitError(f"{path}: the SavedModel has no 'serving_default' signature")
    specs = list(sig.structured_input_signature[1].values())
    if len(specs) != 1 or len(specs[0].shape) != 4:
        raise EdgekitError(f"{path}: expected one image input [N, H, W, C], got {specs}")
    shape = specs[0].shape
    if None in shape[1:]:
        raise EdgekitError(f"{path}: the SavedModel's input has no fixed size ({shape}); export it with one")
    inputs = keras.Input(shape=tuple(shape[1:]), name="input")
    outputs = keras.layers.TFSMLayer(path, call_endpoint="serving_default")(inputs)
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise EdgekitError(f"{path}: expected one output, got {sorted(outputs)}")
        outputs = next(iter(outputs.values()))
    return keras.Model(inputs, outputs, name=os.path.basename(os.path.normpath(path)))
