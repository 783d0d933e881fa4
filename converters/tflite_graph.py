"""What a .tflite file holds, read from its flatbuffer without TensorFlow: the operators of the main graph
in execution order, the tensors between them, multiply-adds per operator and the stored parameters; and the
operators of every subgraph (op_sequence, op_names, op_counts). The one place that decodes operator codes.

A model from elsewhere (litert-torch, a model hub) has no Keras model to count with, so the per-layer
report and the manifest take these figures from the file itself.
"""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from device_bench.errors import EdgekitError
from device_bench.manifest import tflite_schema

# Operators whose second input is a weight tensor, and how to count their multiply-adds.
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
_QUANTIZED_TYPES = ("INT8", "UINT8", "INT16", "FLOAT16")


@dataclass
class Op:
    """One operator: its type, its input and output tensor indices, and its multiply-adds."""
    index: int
    type: str
    inputs: list
    outputs: list
    macs: int = 0
    consumers: list = field(default_factory=list)  # indices of the ops that read its first output

    def scope(self, graph):
        """The name the LiteRT quantizer matches recipes against: the output tensor names, each followed by ';'."""
        return "".join(graph.tensors[i]["name"] + ";" for i in self.outputs if i >= 0)

    def name(self, graph):
        """A readable name: the first part of its output tensor's name (a Keras export fuses several)."""
        full = graph.tensors[self.outputs[0]]["name"] if self.outputs else f"op{self.index}"
        return full.split(";")[0]


@dataclass
class Graph:
    """The main subgraph of a .tflite file."""
    tensors: list  # {"name", "shape", "type", "constant"}
    ops: list
    inputs: list
    outputs: list
    has_signature: bool

    @property
    def macs(self):
        """Multiply-adds of one inference: convolutions and fully connected layers."""
        return sum(op.macs for op in self.ops)

    @property
    def params(self):
        """Elements of the constant tensors the operators read (weights and biases, BN already folded)."""
        seen = {i for op in self.ops for i in op.inputs if i >= 0 and self.tensors[i]["constant"]}
        return int(sum(int(np.prod(self.tensors[i]["shape"] or [1])) for i in seen
                       if self.tensors[i]["type"] not in ("INT32", "INT64")))

    def quantized(self, ignore=()):
        """Names of tensors stored as int8/uint8/int16/float16 (but those whose index is in ``ignore``): a
        quantized build, or not a float model."""
        return [t["name"] for i, t in enumerate(self.tensors) if t["type"] in _QUANTIZED_TYPES and i not in ignore]

    def float16_weights(self):
        """Indices of the float16 constants only DEQUANTIZE ops read, each into a float32 tensor: a float
        model stored with float16 weights (MediaPipe's models, TFLiteConverter's float16 optimization)."""
        readers = {}
        for op in self.ops:
            for i in op.inputs:
                readers.setdefault(i, []).append(op)
        return {i for i, ops in readers.items() if i >= 0 and self.tensors[i]["type"] == "FLOAT16"
                and self.tensors[i]["constant"] and all(op.type == "DEQUANTIZE" and len(op.outputs) == 1
                                                        and self.tensors[op.outputs[0]]["type"] == "FLOAT32"
                                                        for op in ops)}


def _names(namespace):
    return {v: k for k, v in vars(namespace).items() if not k.startswith("_")}


def builtin_code(code):
    """The builtin operator of an OperatorCode, as TFLite itself reads it: files of the older schema
    hold it in ``deprecated_builtin_code`` only (``builtin_code`` then reads 0, ADD)."""
    return max(code.BuiltinCode(), code.DeprecatedBuiltinCode())


def _model(data, where):
    """(the flatbuffer schema module, the Model table of ``data``); EdgekitError naming ``where`` if not a .tflite."""
    schema = tflite_schema()
    if schema is None:
        raise EdgekitError("reading a .tflite needs ai-edge-litert (pip install ai-edge-litert)")
    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise EdgekitError(f"{where}: not a TFLite model (no TFL3 identifier)")
    return schema, schema.Model.GetRootAs(data, 0)


def _operator_names(schema, model):
    """The name of each operator code ``model`` declares, in order ('CONV_2D', or a custom op's own name)."""
    names, out = _names(schema.BuiltinOperator), []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = builtin_code(code)
        out.append(names.get(builtin, str(builtin)) if builtin != schema.BuiltinOperator.CUSTOM
                   else (code.CustomCode() or b"CUSTOM").decode("utf-8", "replace"))
    return out


def read_graph(data, where="model"):
    """Parse ``data`` (.tflite bytes) into a Graph; EdgekitError naming ``where`` if it is not one."""
    schema, model = _model(data, where)
    try:
        graph = model.Subgraphs(0)
        op_names, type_names = _operator_names(schema, model), _names(schema.TensorType)
        tensors = [_tensor(graph.Tensors(i), model, type_names) for i in range(graph.TensorsLength())]
        ops = [_op(k, graph.Operators(k), op_names) for k in range(graph.OperatorsLength())]
        result = Graph(tensors, ops, list(graph.InputsAsNumpy()), list(graph.OutputsAsNumpy()),
                       model.SignatureDefsLength() > 0)
    except EdgekitError:
        raise
    except Exception as e:  # a damaged flatbuffer can fail in many ways
        raise EdgekitError(f"{where}: damaged TFLite model ({e})") from None
    _link(result)
    return result


def op_sequence(data, where="model"):
    """The operators of a .tflite file in execution order, every subgraph's, e.g. ['QUANTIZE', 'CONV_2D', ...]."""
    schema, model = _model(data, where)
    try:
        names = _operator_names(schema, model)
        return [names[g.Operators(i).OpcodeIndex()]
                for g in (model.Subgraphs(k) for k in range(model.SubgraphsLength()))
                for i in range(g.OperatorsLength())]
    except Exception as e:
        raise EdgekitError(f"{where}: damaged TFLite model ({e})") from None


def op_names(data, where="model"):
    """The operators a .tflite file uses, to spot broken conversions and ops that need TensorFlow."""
    return set(op_sequence(data, where))


def op_counts(data, where="model"):
    """How many times each operator runs in a .tflite file, e.g. {'CONV_2D': 35, 'ADD': 10}."""
    return dict(Counter(op_sequence(data, where)))


def _tensor(t, model, type_names):
    buf = t.Buffer()
    constant = buf > 0 and (model.Buffers(buf).DataLength() > 0 or model.Buffers(buf).Offset() > 1)
    return {"name": (t.Name() or b"").decode("utf-8", "replace"), "shape": [int(v) for v in t.ShapeAsNumpy()]
            if t.ShapeLength() else [], "type": type_names.get(t.Type(), str(t.Type())), "constant": bool(constant)}


def _op(index, op, op_names):
    ins = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
    outs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
    return Op(index, op_names[op.OpcodeIndex()], ins, outs)


def _link(graph):
    """Fill in each op's multiply-adds and the ops that consume its output."""
    producer = {o: op.index for op in graph.ops for o in op.outputs}
    for op in graph.ops:
        op.macs = op_macs(op, graph)
        for i in op.inputs:
            if i in producer and graph.ops[producer[i]].outputs[0] == i:
                graph.ops[producer[i]].consumers.append(op.index)


def op_macs(op, graph):
    """Multiply-adds of one convolution or fully connected operator (0 for the others)."""
    if op.type not in WEIGHTED_OPS or len(op.inputs) < 2 or not op.outputs:
        return 0
    shape = lambda i: graph.tensors[i]["shape"]  # noqa: E731
    if op.type == "TRANSPOSE_CONV":  # inputs: output shape, weights [O, kh, kw, I], input
        w, x = shape(op.inputs[1]), shape(op.inputs[2])
        return int(np.prod(x) * np.prod(w[:3])) if len(w) == 4 else 0
    out, w = shape(op.outputs[0]), shape(op.inputs[1])
    if not out or not w:
        return 0
    if op.type == "CONV_2D":  # weights [O, kh, kw, I]: every output element reads kh*kw*I inputs
        return int(np.prod(out) * np.prod(w[1:]))
    if op.type == "DEPTHWISE_CONV_2D":  # weights [1, kh, kw, C*M]
        return int(np.prod(out) * w[1] * w[2])
    return int(np.prod(out) * w[-1])  # FULLY_CONNECTED: weights [O, I]


def activation_ops(graph):
    """The ops whose output is an activation the quantizer may store in integers (not the model's input)."""
    return [op for op in graph.ops if op.outputs and not graph.tensors[op.outputs[0]]["constant"]
            and graph.tensors[op.outputs[0]]["type"] in ("FLOAT32", "INT8", "UINT8", "INT16")]
