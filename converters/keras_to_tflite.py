"""Keras -> SavedModel with a fixed batch of one -> TFLiteConverter.from_saved_model.

Why this path: with a dynamic batch, MobileNet V1 gains SHAPE/STRIDED_SLICE/PACK ops and is no
longer fully delegated to XNNPACK; and from_concrete_functions(..., keras_model) writes a broken
file under Keras 3 (weights left as variables, NaN outputs). converters.tflite_check.verify_tflite
catches such a file.
"""

import re

from device_bench.errors import EdgekitError
from device_bench.options import DEFAULT_IO, IO_TYPES, PRECISIONS


def export_saved_model(model, path):
    """Export ``model`` as a SavedModel whose serving signature takes exactly [1, H, W, C]."""
    import keras
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4 or None in shape[1:]:
        raise EdgekitError(f"expected one image input with a fixed size [N, H, W, C], got {shape}")
    model.export(str(path), format="tf_saved_model", verbose=False,
                 input_signature=[keras.InputSpec(shape=(1, *shape[1:]), dtype="float32")])


def convert(saved_model_dir, precision, representative=None, io=DEFAULT_IO, allow_tf_ops=False):
    """Convert a SavedModel to .tflite bytes at ``precision``; ``representative`` yields float batches."""
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise EdgekitError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if representative is None:
            raise EdgekitError("int8 needs calibration images")
        if io not in IO_TYPES:
            raise EdgekitError(f"--io must be one of {', '.join(IO_TYPES)}, got {io!r}")
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: ([b] for b in representative())
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io != "float32":
            c.inference_input_type = c.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[io]
    if allow_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    c.target_spec.supported_ops = ops
    try:
        return c.convert()
    except Exception as e:
        raise EdgekitError(describe_conversion_error(e)) from None


def describe_conversion_error(e):
    """Turn a converter failure into one line naming the unsupported ops, their layer and the fix."""
    text = str(e)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    if not ops:
        ops = sorted(set(re.findall(r"failed to legalize operation '([\w.]+)'", text)))
    if ops:
        # the op's graph scope names the Keras layer: model/layer/.../Op
        scopes = sorted(set(re.findall(r'fused\["(\w+):", "[^/"]+/([^/"@]+)/[^"@]*\1@', text)))
        where = f" (from layer {', '.join(dict.fromkeys(s for _, s in scopes))})" if scopes else ""
        return (f"TFLite builtins cannot express {', '.join(ops)}{where}; change that layer, "
                f"or pass --allow-tf-ops (the result then needs TensorFlow on the device)")
    lines = [l for l in text.splitlines() if "error" in l.lower()] or text.splitlines() or [type(e).__name__]
    return f"conversion failed: {lines[0].strip()[:400]}"
