"""Per-operator times on this machine from OpenVINO's performance counters, read on the same .tflite.

OpenVINO's TFLite frontend keeps few TFLite tensor names (its layout passes rename the nodes), so each node
of the model it reads is tied to a TFLite operator in three ways, first that applies: its output carries the
operator's tensor name; it is the n-th node of the operator's kind (Convolution for CONV_2D, GroupConvolution
for DEPTHWISE_CONV_2D matched by weight shape; Add, ReduceMean, Softmax... in order, where both sides have as
many); else it belongs to the nearest tied node upstream (a convolution's bias, clamp and requantization),
or downstream for the input's own layout nodes. A compiled node lists the nodes it fused
(``originalLayersNames``): its time is split over their operators in proportion to their multiply-adds
(equally when none has any), and the rows say so. Nodes that stand for no node of the read model (layout
reorders) are rows of their own. The times are OpenVINO's CPU kernels, not LiteRT's.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict

import numpy as np

from converters.tflite_rewrite import normalised_op_codes
from device_bench.errors import EdgekitError
from edgekit.profiling.table import Profile, ProfileRow

# TFLite operator -> OpenVINO node types it becomes (the node that carries its work).
KINDS = {"CONV_2D": ("Convolution",), "DEPTHWISE_CONV_2D": ("GroupConvolution",),
         "FULLY_CONNECTED": ("MatMul",), "TRANSPOSE_CONV": ("ConvolutionBackpropData",),
         "ADD": ("Add",), "MUL": ("Multiply",), "SUB": ("Subtract",), "MEAN": ("ReduceMean",),
         "AVERAGE_POOL_2D": ("AvgPool",), "MAX_POOL_2D": ("MaxPool",), "SOFTMAX": ("Softmax",),
         "CONCATENATION": ("Concat",), "PAD": ("Pad",), "LOGISTIC": ("Sigmoid",), "HARD_SWISH": ("HSwish",)}
_BINARY = ("ADD", "MUL", "SUB")


def openvino_module():
    """openvino, or the one-line error naming the extra that installs it."""
    try:
        import openvino
    except ImportError:
        raise EdgekitError("the host profile needs OpenVINO: pip install 'edgekit-tflite[openvino]'") from None
    return openvino


def _const_derived(model):
    """Names of the read model's nodes computed from constants only (weights and their dequantization)."""
    out = set()
    for node in model.get_ordered_ops():
        ins = [i.get_source_output().get_node() for i in node.inputs()]
        if node.get_type_name() == "Constant" or (ins and all(i.get_friendly_name() in out for i in ins)):
            out.add(node.get_friendly_name())
    return out


def _weight_key(node, const):
    """(output channels, kernel elements per output) of a convolution, as both formats can say it."""
    shape = [int(d) for d in node.input(1).get_partial_shape().to_shape()] \
        if node.input(1).get_partial_shape().is_static else []
    if node.get_type_name() == "GroupConvolution" and len(shape) == 5:
        return shape[0] * shape[1], int(np.prod(shape[3:])) * shape[2]
    if len(shape) == 4:
        return shape[0], int(np.prod(shape[1:]))
    return None


def _tflite_key(op, graph):
    w = graph.tensors[op.inputs[1]]["shape"] if len(op.inputs) > 1 else []
    if op.type == "DEPTHWISE_CONV_2D" and len(w) == 4:
        return w[3], w[1] * w[2]
    if op.type == "CONV_2D" and len(w) == 4:
        return w[0], int(np.prod(w[1:]))
    return None


def _is_activation_op(op, graph, kind):
    """Whether a TFLite binary op reads two activations (a residual ADD), as its OpenVINO node would."""
    if kind not in _BINARY:
        return True
    return sum(i >= 0 and not graph.tensors[i]["constant"] for i in op.inputs) >= 2


def _tie(model, graph):
    """Read-model node name -> TFLite operator index, the three ways the module docstring says."""
    const = _const_derived(model)
    nodes = [n for n in model.get_ordered_ops() if n.get_friendly_name() not in const]
    tied = {}
    by_tensor = {graph.tensors[o]["name"]: op.index for op in graph.ops for o in op.outputs}
    for n in nodes:
        for out in n.outputs():
            hit = next((by_tensor[t] for t in out.get_names() if t in by_tensor), None)
            if hit is not None:
                tied[n.get_friendly_name()] = hit
    for kind, ov_types in KINDS.items():
        ops = [op for op in graph.ops if op.type == kind and op.index not in tied.values()
               and _is_activation_op(op, graph, kind)]
        cands = [n for n in nodes if n.get_type_name() in ov_types and n.get_friendly_name() not in tied
                 and (kind not in _BINARY or sum(i.get_source_output().get_node().get_friendly_name() not in const
                                                 for i in n.inputs()) >= 2)]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            for op in ops:
                n = next((c for c in cands if _weight_key(c, const) == _tflite_key(op, graph)), None)
                if n is not None:
                    tied[n.get_friendly_name()] = op.index
                    cands.remove(n)
        elif len(ops) == len(cands):
            tied.update({n.get_friendly_name(): op.index for n, op in zip(cands, ops)})
    return _spread(nodes, tied, const)


def _spread(nodes, tied, const):
    """Tie every other node to the nearest tied node upstream, else downstream."""
    consumers = defaultdict(list)
    for n in nodes:
        for i in n.inputs():
            consumers[i.get_source_output().get_node().get_friendly_name()].append(n)
    for n in nodes:  # topological order: a node's inputs are settled before it
        name = n.get_friendly_name()
        if name not in tied:
            ups = [i.get_source_output().get_node().get_friendly_name() for i in n.inputs()]
            up = next((tied[u] for u in ups if u in tied and u not in const), None)
            if up is not None:
                tied[name] = up
    for n in reversed(nodes):
        name = n.get_friendly_name()
        if name not in tied:
            down = next((tied[c.get_friendly_name()] for c in consumers[name] if c.get_friendly_name() in tied), None)
            if down is not None:
                tied[name] = down
    return tied


def _measure(compiled, model, runs, min_secs):
    """Run ``runs`` inferences (and at least ``min_secs``) on random inputs; per compiled node the median time in
    ms, and the end-to-end p50 of the same inferences."""
    request = compiled.create_infer_request()
    feed = {}
    for k, port in enumerate(model.inputs):
        dtype = port.get_element_type().to_dtype()
        shape = tuple(port.get_shape())
        rng = np.random.default_rng(k)
        feed[k] = (rng.integers(0, 256, shape) if np.issubdtype(dtype, np.integer) else rng.random(shape)).astype(dtype)
    for _ in range(3):  # warm-up
        request.infer(feed)
    per_node, wall, sums = defaultdict(list), [], []
    start = time.perf_counter()
    while len(wall) < runs or time.perf_counter() - start < min_secs:
        t = time.perf_counter()
        request.infer(feed)
        wall.append(time.perf_counter() - t)
        infos = request.get_profiling_info()
        for info in infos:
            per_node[(info.node_name, info.node_type, info.exec_type)].append(info.real_time.total_seconds() * 1e3)
        sums.append(sum(info.real_time.total_seconds() for info in infos) * 1e3)
    stats = {"runs": len(wall), "end_to_end_p50_ms": float(np.median(wall)) * 1e3,
             "node_sum_p50_ms": float(np.median(sums))}  # each run's nodes summed, then the median over runs
    return {k: float(np.median(v)) for k, v in per_node.items()}, stats


def _fused(compiled):
    """Compiled node name -> the read-model node names it stands for."""
    out = {}
    for node in compiled.get_runtime_model().get_ordered_ops():
        info = node.get_rt_info()
        names = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""
        out[node.get_friendly_name()] = [n for n in names.split(",") if n]
    return out


def attribute(rows, times, fused, tied):
    """Add each compiled node's time to the rows of the operators it came from; rows of their own for the
    nodes that came from none (returned). Notes say where a time was split over fused operators."""
    by_index = {r.index: r for r in rows}
    extra = {}
    for (name, node_type, exec_type), ms in times.items():
        ops = sorted({tied[n] for n in fused.get(name, []) if n in tied})
        if not ops:
            if ms > 0:
                key = f"({node_type})"
                extra.setdefault(key, ProfileRow(None, key, None, 0, 0.0, note=f"OpenVINO {node_type} nodes "
                                                 f"that stand for no TFLite op ({exec_type})"))
                extra[key].ms += ms
            continue
        macs = [by_index[i].macs for i in ops]
        weights = [m / sum(macs) for m in macs] if sum(macs) else [1 / len(ops)] * len(ops)
        for i, w in zip(ops, weights):
            by_index[i].ms += ms * w
            if len(ops) > 1:
                others = ", ".join(f"#{j} {by_index[j].op}" for j in ops if j != i)
                by_index[i].note = _add(by_index[i].note, f"fused with {others} in {name} ({w:.0%} of it)")
    for r in rows:
        if r.ms == 0 and not r.note:
            r.note = "no time of its own in OpenVINO (folded or fused away)"
    return list(extra.values())


def _add(note, text):
    return text if not note else note if text in note else f"{note}; {text}"


def host_profile(path, graph, rows, threads=1, runs=50, min_secs=1.0):
    """OpenVINO's per-operator profile of the .tflite at ``path``: its rows filled in, plus its end-to-end p50."""
    ov = openvino_module()
    core = ov.Core()
    with open(path, "rb") as f:
        data = f.read()
    fixed = normalised_op_codes(data)
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-profile-") as tmp:
            if fixed != data:  # OpenVINO reads deprecated_builtin_code, which the LiteRT quantizer leaves 0
                path_read = os.path.join(tmp, "model.tflite")
                with open(path_read, "wb") as f:
                    f.write(fixed)
            model = core.read_model(path_read if fixed != data else path)
        compiled = core.compile_model(model, "CPU", {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": int(threads)})
    except RuntimeError as e:
        lines = [l for l in str(e).splitlines() if l.strip() and not l.startswith(("Exception from", "Check "))]
        raise EdgekitError(f"{path}: OpenVINO cannot read it: {(lines or ['?'])[-1].strip()[:200]}") from None
    times, stats = _measure(compiled, model, runs, min_secs)
    extra = attribute(rows, times, _fused(compiled), _tie(model, graph))
    return Profile(model=path, source="openvino", rows=rows + extra, end_to_end_ms=stats["end_to_end_p50_ms"],
                   label=f"OpenVINO {ov.get_version().split('-')[0]} CPU kernels on this machine (not LiteRT's): "
                         f"per-node medians of {stats['runs']} runs",
                   delegated_label="XNNPACK takes it in LiteRT here", settings=dict(stats, threads=int(threads)))
