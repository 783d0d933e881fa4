"""Quantizing a float .tflite with the LiteRT quantizer (ai-edge-quantizer), without TensorFlow.

Calibration records each tensor's minimum and maximum over the calibration images, as
TFLiteConverter does (the quantizer's default moving average clips the logits' range); its int8
output then matches TFLiteConverter's. Each precision is one recipe; single layers can be kept
float or given int16 activations (mixed precision). Nothing here imports TensorFlow or Keras.
"""

import contextlib
import os
import re
import warnings

import numpy as np

from device_bench.errors import EdgekitError
from device_bench.options import DEFAULT_IO, IO_TYPES, KEEP_AS
from device_bench.silence import quiet_stderr
from device_bench.runtime import first_line

# What each precision quantizes. Dynamic range is limited to the ops XNNPACK runs with int8
# weights: quantized depthwise weights knock those nodes out of XNNPACK (2-3x slower than fp32).
DYNAMIC_OPS = ("CONV_2D", "FULLY_CONNECTED")
INSTALL_HINT = "pip install 'edgekit-tflite[quantize]' (ai-edge-quantizer; no TensorFlow)"


def _aeq():
    """The ai_edge_quantizer modules, or an EdgekitError saying how to install them."""
    try:
        from ai_edge_quantizer import calibrator, qtyping, quantizer, recipe
        from ai_edge_quantizer.utils import qsv_utils
    except ImportError as e:
        raise EdgekitError(f"quantizing a .tflite needs the LiteRT quantizer ({e}): {INSTALL_HINT}") from None
    return calibrator, qtyping, quantizer, recipe, qsv_utils


def quantizer_version():
    """ai-edge-quantizer's version, for the manifest (None when it is not installed)."""
    from importlib import metadata
    try:
        return metadata.version("ai-edge-quantizer")
    except metadata.PackageNotFoundError:
        return None


def scope_regex(scope):
    """A recipe regex matching exactly one op, whose scope is its output names each followed by ';'."""
    return "^" + re.escape(scope) + "$"


class LitertQuantizer:
    """One float model, calibrated once, quantized at any precision and with any per-layer overrides."""

    def __init__(self, float_bytes, calibration=None, threads=None):
        self.float_bytes = bytes(float_bytes)
        self.calibration = calibration  # [1,H,W,C] float32 batches, or None when no precision needs them
        self.threads = threads or os.cpu_count() or 1
        self._qsvs = None

    def qsvs(self):
        """Each tensor's min and max over the calibration images (computed once, on first use)."""
        if self._qsvs is None:
            if not self.calibration:
                raise EdgekitError("int8 and int16x8 need calibration images: give --calibration DIR")
            calibrator, _, quantizer, recipe, qsv_utils = _aeq()
            rm = quantizer.Quantizer(self.float_bytes, recipe.static_wi8_ai8())._recipe_manager
            with _quiet():
                # the profiler-based mode records min/max inside the runtime: 10-20x faster than keeping
                # every tensor for Python, and (once cast to float32 as that mode stores them) the same values
                cal = calibrator.Calibrator(self.float_bytes, num_threads=self.threads,
                                            mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED,
                                            qsv_update_func=qsv_utils.min_max_update)
                key, name = _signature(cal)
                cal.calibrate({key: [{name: b} for b in self.calibration]}, rm)
            self._qsvs = {t: {k: np.asarray(v, np.float32) for k, v in q.items()}
                          for t, q in cal.get_model_qsvs().items()}
        return self._qsvs

    def build(self, precision, io=DEFAULT_IO, overrides=None):
        """The model quantized at ``precision``; ``overrides`` maps op scopes to "float" or "int16"."""
        _, qtyping, quantizer, recipe, _ = _aeq()
        if io not in IO_TYPES:
            raise EdgekitError(f"--io must be one of {', '.join(IO_TYPES)}, got {io!r}")
        q = quantizer.Quantizer(self.float_bytes)
        if precision == "int8":
            q.load_quantization_recipe(recipe.static_wi8_ai8())
            _set_io(q, qtyping, io)
        elif precision == "int16x8":
            q.load_quantization_recipe(recipe.static_wi8_ai16())
            _set_io(q, qtyping, "float32")
        elif precision == "dynamic":
            for op in DYNAMIC_OPS:
                q.add_dynamic_config(".*", qtyping.TFLOperationName(op), num_bits=8)
        elif precision == "fp16":
            q.add_weight_only_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16, algorithm_key="float_casting")
        else:
            raise EdgekitError(f"the LiteRT quantizer makes fp16, dynamic, int8 and int16x8, not {precision!r}")
        for scope, keep in (overrides or {}).items():
            if keep == "float":
                q.update_quantization_recipe(scope_regex(scope), qtyping.TFLOperationName.ALL_SUPPORTED,
                                             algorithm_key="no_quantize")
            elif keep == "int16":
                q.add_static_config(scope_regex(scope), qtyping.TFLOperationName.ALL_SUPPORTED,
                                    activation_num_bits=16, weight_num_bits=8)
            else:
                raise EdgekitError(f"a layer can be kept as {' or '.join(KEEP_AS)}, not {keep!r}")
        qsvs = self.qsvs() if q.need_calibration else None
        try:
            with _quiet():
                return bytes(q.quantize(qsvs, enable_progress_bar=False, enable_progress_report=False).quantized_model)
        except (ValueError, RuntimeError, KeyError) as e:
            raise EdgekitError(f"the LiteRT quantizer failed at {precision}: {first_line(e)}") from None


@contextlib.contextmanager
def _quiet():
    """Hide the quantizer's progress bars, XNNPACK's INFO line and the runtime's "preserve_all_tensors is
    for debugging" warning (the quantizer opens such an interpreter to check the calibration)."""
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _set_io(q, qtyping, io):
    """Input and output type: int8 (the quantizer's own), uint8 (as phone apps feed pixels) or float32."""
    if io == "float32":
        for op in ("INPUT", "OUTPUT"):
            q.update_quantization_recipe(".*", qtyping.TFLOperationName(op), algorithm_key="no_quantize")
    elif io == "uint8":
        cfg = qtyping.OpQuantizationConfig(
            activation_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=8, symmetric=False, dtype=qtyping.TensorDataType.UINT),
            weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=True),
            compute_precision=qtyping.ComputePrecision.INTEGER)
        for op in ("INPUT", "OUTPUT"):
            q.update_quantization_recipe(".*", qtyping.TFLOperationName(op), cfg)


def _signature(cal):
    """The (signature key, input name) to calibrate through: one image input is expected."""
    signatures = cal.get_signature_list()
    if not signatures:
        raise EdgekitError("the model has no signature; add_signature() should have given it one")
    key = next(iter(signatures))
    inputs = signatures[key]["inputs"]
    if len(inputs) != 1:
        raise EdgekitError(f"expected one image input, the model's signature {key!r} has {len(inputs)}: "
                           f"{', '.join(inputs)}")
    return key, inputs[0]


def add_signature(data, graph):
    """The model with a 'serving_default' signature over its inputs and outputs, if it had none
    (older converters wrote none, and the quantizer finds its inputs through one)."""
    if graph.has_signature:
        return bytes(data)
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    model = fbu.convert_bytearray_to_object(bytearray(data))

    def tensor_map(index):
        """A signature entry naming tensor ``index`` by its own name."""
        m = schema.TensorMapT()
        m.name, m.tensorIndex = graph.tensors[index]["name"] or f"tensor_{index}", index
        return m

    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    sig.inputs = [tensor_map(i) for i in graph.inputs]
    sig.outputs = [tensor_map(i) for i in graph.outputs]
    model.signatureDefs = [sig]
    return bytes(fbu.convert_object_to_bytearray(model))
