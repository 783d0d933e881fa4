"""Checks on a .tflite file before it becomes a bundle, without TensorFlow: the model is an image
classifier, a converted file runs and outputs numbers, a quantized build holds quantized tensors."""

import numpy as np

from converters.tflite_graph import op_names, read_graph
from device_bench.errors import EdgekitError

_VARIABLE_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"}


def verify_tflite(tflite_bytes, engine, where):
    """Reject a file that kept its weights as variables, or that outputs NaN (the Keras 3 trap).

    ``engine`` is the converted model already open in LiteRT (a device_bench Engine; the fidelity check
    reuses it).
    """
    variable_ops = op_names(tflite_bytes, where) & _VARIABLE_OPS
    if variable_ops:
        raise EdgekitError(f"{where}: broken conversion, weights left as variable ops "
                           f"({', '.join(sorted(variable_ops))}); the file would output garbage")
    inp = engine.input_details[0]
    try:
        engine.set_input(np.zeros(inp["shape"], inp["dtype"]))
        engine.invoke()
        out = engine.get_output()
    except Exception as e:
        raise EdgekitError(f"{where}: the converted model does not run in LiteRT ({e})") from None
    if not np.all(np.isfinite(out.astype(np.float64))):
        raise EdgekitError(f"{where}: broken conversion, the converted model outputs NaN or infinity")


def check_quantized(tflite_bytes, precision, where):
    """Refuse a build of a quantized ``precision`` in which every tensor is still float32: the quantizer
    recognised none of the model's operators (or, TFLiteConverter, found no weights of 1024 values or more),
    and the bundle would be the float model under another name."""
    if not read_graph(tflite_bytes, where).quantized():
        raise EdgekitError(f"{where}: the {precision} build holds no quantized tensor: the quantizer left the "
                           f"whole model float32 (it recognised none of its operators, or found no weights "
                           f"large enough to quantize)")
