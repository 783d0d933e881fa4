"""A float .tflite rewritten so that the LiteRT quantizer reads it as TFLite runs it, without TensorFlow.

- Operator codes of the older schema: such files hold the operator only in ``deprecated_builtin_code``;
  the quantizer reads ``builtin_code`` (then 0, ADD), recognises no operator and writes the float model
  back under a quantized name (or an int8 model that does not load). The code TFLite itself uses,
  ``max(builtin_code, deprecated_builtin_code)``, is written into both fields.
- Float16 weights (every MediaPipe model; TFLiteConverter's float16 optimization): constant float16
  tensors read through DEQUANTIZE ops. They are stored as the float32 values DEQUANTIZE would compute
  and the DEQUANTIZE ops dropped, which gives the float32 graph the quantizer starts from.
"""

import numpy as np

from converters.tflite_graph import builtin_code, read_graph
from device_bench.errors import EdgekitError
from device_bench.manifest import tflite_schema

PLACEHOLDER_FOR_GREATER_OP_CODES = 127  # what deprecated_builtin_code holds for codes above it


def float32_model(data):
    """``data`` with normalised op codes and its float16 weights turned into float32 ones (the same bytes
    when it needs neither). Float16 weights are looked for in the main graph, where read_graph looks."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    weights = read_graph(data).float16_weights()
    table = tflite_schema().Model.GetRootAs(data, 0)
    codes = [table.OperatorCodes(i) for i in range(table.OperatorCodesLength())]
    if not weights and all(c.BuiltinCode() == builtin_code(c) for c in codes):
        return bytes(data)
    model = fbu.convert_bytearray_to_object(bytearray(data))
    _normalise_codes(model)
    if weights:
        _dequantize_weights(model, model.subgraphs[0], weights)
        _drop_unused_tensors(model, 0, model.subgraphs[0])
    return bytes(fbu.convert_object_to_bytearray(model))


def _normalise_codes(model):
    for code in model.operatorCodes:
        code.builtinCode = max(code.builtinCode, code.deprecatedBuiltinCode)
        code.deprecatedBuiltinCode = min(code.builtinCode, PLACEHOLDER_FOR_GREATER_OP_CODES)


def normalised_op_codes(data):
    """``data`` with each operator code in both fields, as TFLite reads it (the same bytes when it already is).
    The LiteRT quantizer writes QUANTIZE with deprecated_builtin_code 0 (ADD), which other readers (OpenVINO's
    TFLite frontend) take for an ADD."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    table = tflite_schema().Model.GetRootAs(data, 0)
    codes = [table.OperatorCodes(i) for i in range(table.OperatorCodesLength())]
    if all(c.BuiltinCode() == builtin_code(c) and c.DeprecatedBuiltinCode() == min(
            c.BuiltinCode(), PLACEHOLDER_FOR_GREATER_OP_CODES) for c in codes):
        return bytes(data)
    model = fbu.convert_bytearray_to_object(bytearray(data))
    _normalise_codes(model)
    return bytes(fbu.convert_object_to_bytearray(model))


def _dequantize_weights(model, subgraph, weights):
    """Store the float16 constants ``weights`` as float32, drop the DEQUANTIZE ops that read them (their
    only readers) and let those ops' readers read the constants themselves."""
    dequantize = [op for op in subgraph.operators if len(op.inputs) == 1 and int(op.inputs[0]) in weights]
    source = {int(op.outputs[0]): int(op.inputs[0]) for op in dequantize}
    for b in {subgraph.tensors[i].buffer for i in weights}:
        if model.buffers[b].data is None:
            raise EdgekitError("float16 weights stored outside the flatbuffer (a model over 2 GB) cannot be "
                               "turned into float32 ones here")
        values = np.frombuffer(np.asarray(model.buffers[b].data, np.uint8).tobytes(), "<f2").astype("<f4")
        model.buffers[b].data = np.frombuffer(values.tobytes(), np.uint8)
    for i in weights:
        subgraph.tensors[i].type = tflite_schema().TensorType.FLOAT32
    dropped = {id(op) for op in dequantize}
    subgraph.operators = [op for op in subgraph.operators if id(op) not in dropped]
    for op in subgraph.operators:
        op.inputs = [source.get(int(i), int(i)) for i in op.inputs]


def _drop_unused_tensors(model, index, subgraph):
    """Remove the tensors no operator, graph input or output refers to, renumbering every reference."""
    def refs(op):
        return [*op.inputs, *op.outputs, *(op.intermediates if op.intermediates is not None else [])]
    used = sorted({int(i) for op in subgraph.operators for i in refs(op) if i >= 0}
                  | {int(i) for i in subgraph.inputs} | {int(i) for i in subgraph.outputs})
    new = {old: k for k, old in enumerate(used)}
    renumber = lambda indices: [new[int(i)] if i >= 0 else int(i) for i in indices]  # noqa: E731
    subgraph.tensors = [subgraph.tensors[i] for i in used]
    for op in subgraph.operators:
        op.inputs, op.outputs = renumber(op.inputs), renumber(op.outputs)
        if op.intermediates is not None:
            op.intermediates = renumber(op.intermediates)
    subgraph.inputs, subgraph.outputs = renumber(subgraph.inputs), renumber(subgraph.outputs)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == index:
            for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
                entry.tensorIndex = new[entry.tensorIndex]
