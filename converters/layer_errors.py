"""Where a quantized model loses precision, layer by layer, against the float model it came from.

Both models run side by side on the same images, keeping every intermediate tensor. For each
layer's output this gives two kinds of figure:

- how far the quantized model's tensor is from the float one (SNR, cosine, MSE, with the LiteRT
  quantizer's own metric functions). These accumulate: every layer after a bad one looks bad too.
- how much precision the layer's own output quantization throws away ("quant SNR"): the float
  tensor rounded to the quantized tensor's scale and zero point, with each channel weighted by how
  strongly the next layer reads it. This one is local, so it names the culprit. Weighting matters:
  a channel with a huge range sets the scale and crushes the small channels, and the next layer may
  amplify exactly those; an unweighted figure, dominated by the huge channel, would look fine.

Layers are ranked worst first by the local figure (then by SNR, for builds with float activations).
"""

import math
import warnings

import numpy as np

from converters.tflite_graph import activation_ops, read_graph
from device_bench.images import quantize

REPORT_IMAGES = 32  # calibration images the per-layer comparison runs on
CSV_NAME, EXPLORER_NAME, PLOT_NAME = "layer_report.csv", "layer_report_model_explorer.json", "layer_report.png"
COLUMNS = ("rank", "index", "layer", "op", "dtype", "macs", "macs_share", "quant_snr_db", "snr_db", "cosine", "mse",
           "tensor")


def _interpreter(data):
    from ai_edge_litert.interpreter import Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": that is what this is
        it = Interpreter(model_content=bytes(data), experimental_preserve_all_tensors=True)
        it.allocate_tensors()
    return it, {d["name"]: d for d in it.get_tensor_details()}


def _dequantized(it, detail):
    """A tensor's values in float, with its own scale(s) and zero point(s)."""
    value = it.get_tensor(detail["index"])
    q = detail["quantization_parameters"]
    if value.dtype == np.float32 or not len(q["scales"]):
        return value.astype(np.float32)
    shape = [1] * value.ndim
    if len(q["scales"]) > 1:
        shape[q["quantized_dimension"]] = -1
    return (value.astype(np.float32) - q["zero_points"].reshape(shape)) * q["scales"].reshape(shape)


def _fake_quant(x, detail):
    """``x`` rounded to the quantized tensor's grid and back: the error its quantization alone adds."""
    q = detail["quantization_parameters"]
    info = np.iinfo(detail["dtype"])
    scale, zero = q["scales"].astype(np.float32), q["zero_points"].astype(np.float32)
    return (np.clip(np.round(x / scale) + zero, info.min, info.max) - zero) * scale


def layer_errors(float_bytes, quant_bytes, batches):
    """One row per layer (in execution order) comparing ``quant_bytes`` with ``float_bytes`` on ``batches``."""
    from ai_edge_quantizer.utils.validation_utils import cosine_similarity, mean_squared_difference, \
        signal_to_noise_ratio
    graph = read_graph(float_bytes)
    ops = activation_ops(graph)
    fi, fdet = _interpreter(float_bytes)
    qi, qdet = _interpreter(quant_bytes)
    fin, qin = fi.get_input_details()[0], qi.get_input_details()[0]
    names = [graph.tensors[op.outputs[0]]["name"] for op in ops]
    names = [n if n in fdet and n in qdet else None for n in names]
    sums = {n: {"snr": 0.0, "cosine": 0.0, "mse": 0.0, "power": 0.0, "noise": 0.0} for n in names if n}
    for x in batches:
        fi.set_tensor(fin["index"], x.astype(np.float32))
        qi.set_tensor(qin["index"], quantize(x, qin["dtype"], *qin["quantization"]))
        fi.invoke()
        qi.invoke()
        for n in filter(None, names):
            ref, got = fi.get_tensor(fdet[n]["index"]).astype(np.float32), _dequantized(qi, qdet[n])
            s = sums[n]
            s["snr"] += signal_to_noise_ratio(got, ref)
            s["cosine"] += cosine_similarity(got, ref)
            s["mse"] += mean_squared_difference(got, ref)
            if qdet[n]["dtype"] != np.float32 and len(qdet[n]["quantization_parameters"]["scales"]):
                axes = tuple(range(ref.ndim - 1))
                s["power"] += np.square(ref).sum(axes)
                s["noise"] += np.square(_fake_quant(ref, qdet[n]) - ref).sum(axes)
    total = graph.macs or 1
    rows = []
    for op, n in zip(ops, names):
        if n is None:
            continue
        s, count = sums[n], len(batches)
        rows.append({"index": op.index, "layer": op.name(graph), "op": op.type, "tensor": n, "scope": op.scope(graph),
                     "dtype": np.dtype(qdet[n]["dtype"]).name, "macs": op.macs, "macs_share": op.macs / total,
                     "quant_snr_db": _weighted_snr(s, op, graph, fi), "snr_db": _db(s["snr"] / count),
                     "cosine": float(s["cosine"] / count), "mse": float(s["mse"] / count)})
    return rank(rows)


def _db(ratio):
    return round(10 * math.log10(ratio), 2) if ratio > 0 else -math.inf


def _weighted_snr(sums, op, graph, fi):
    """Signal over quantization noise of ``op``'s output as its consumers read it (worst consumer); None if float."""
    power, noise = sums["power"], sums["noise"]
    if isinstance(power, float):  # never accumulated: the tensor is float in the quantized model
        return None
    return weighted_snr_db(power, noise, [_read_weights(graph.ops[c], op.outputs[0], graph, fi, len(power))
                                          for c in op.consumers])


def weighted_snr_db(power, noise, channel_weights):
    """Per-channel signal ``power`` over ``noise``, each channel weighted by how strongly a reader reads it
    (None: all alike); the worst over the readers, in dB."""
    worst = math.inf
    for w in channel_weights or [None]:
        w = np.ones_like(power) if w is None else w
        n = float((w * noise).sum())
        worst = min(worst, math.inf if n == 0 else _db(float((w * power).sum()) / n))
    return worst


def _read_weights(consumer, tensor, graph, fi, channels):
    """How strongly ``consumer`` reads each channel of ``tensor``: its weights' squared norm per input channel."""
    if consumer.type not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or consumer.inputs[0] != tensor:
        return None
    try:
        w = np.square(fi.get_tensor(consumer.inputs[1]).astype(np.float64))
    except ValueError:
        return None
    if consumer.type == "CONV_2D":
        per = w.sum(axis=(0, 1, 2))
    elif consumer.type == "DEPTHWISE_CONV_2D":
        per = w.sum(axis=(0, 1, 2))
        per = per.reshape(channels, -1).sum(1) if per.size % channels == 0 else None
    else:
        per = w.sum(axis=0)
    return per if per is not None and per.shape == (channels,) else None


def rank(rows):
    """Worst first: lowest local quant SNR, then (for layers whose output stays float) lowest SNR."""
    ordered = sorted(rows, key=lambda r: (r["quant_snr_db"] is None,
                                          r["quant_snr_db"] if r["quant_snr_db"] is not None else r["snr_db"]))
    return [dict(r, rank=i + 1) for i, r in enumerate(ordered)]


def table(rows, top=10):
    """The worst ``top`` layers as a text table."""
    from device_bench.views import format_table
    pct = lambda key: lambda r: f"{r[key]:.1%}"  # noqa: E731
    db = lambda key: lambda r: "float" if r[key] is None else f"{r[key]:.1f}"  # noqa: E731
    timed = [("ms", lambda r: r["ms"] and f"{r['ms']:.3f}"), ("time", lambda r: r["time_share"] and
                                                                f"{r['time_share']:.1%}")] \
        if any("ms" in r for r in rows) else []  # joined from `edgekit profile` (quantize --report --profile)
    return format_table(rows[:top], [("#", "rank"), ("layer", lambda r: r["layer"][-48:]), ("op", "op"),
                                     ("MACs", pct("macs_share")), *timed, ("quant SNR dB", db("quant_snr_db")),
                                     ("SNR dB", db("snr_db")), ("cosine", lambda r: f"{r['cosine']:.4f}"),
                                     ("MSE", lambda r: f"{r['mse']:.3g}")])


def write_report(folder, rows, title):
    """layer_report.csv, the Model Explorer overlay (JSON) and, when matplotlib is installed, a plot of
    error by depth, into ``folder``. Returns {kind: path} of what was written."""
    import os
    from device_bench.safe_write import write_text_atomic
    from device_bench.views import write_csv
    written = {"csv": os.path.join(folder, CSV_NAME), "model_explorer": os.path.join(folder, EXPLORER_NAME)}
    write_csv(written["csv"], [{c: r[c] for c in COLUMNS} for r in rows])
    write_text_atomic(written["model_explorer"], explorer_json(rows))
    if plot_by_depth(rows, os.path.join(folder, PLOT_NAME), title):
        written["plot"] = os.path.join(folder, PLOT_NAME)
    return written


class _Overlay:
    """The shape ai_edge_quantizer's Model Explorer writer reads: {tensor name: {metric: value}}."""

    def __init__(self, rows):
        self.rows = rows

    def get_all_tensor_results(self):
        """Each layer's output tensor with its quantization noise over signal (0 when it stays float)."""
        return {r["tensor"]: {"noise_to_signal": 0.0 if r["quant_snr_db"] is None
                              else 10 ** (-r["quant_snr_db"] / 10)} for r in self.rows}


def explorer_json(rows):
    """Node data Model Explorer overlays on the graph (coloured by noise/signal, red from 1), in the format
    of the LiteRT quantizer's own validation output."""
    from ai_edge_quantizer.model_validator import create_json_for_model_explorer
    return create_json_for_model_explorer(_Overlay(rows), "noise_to_signal", [0.001, 0.01, 0.05, 0.1, 0.3, 1, 10])


def plot_by_depth(rows, path, title):
    """Error against depth (layer index): local quant SNR and accumulated SNR. False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from device_bench.safe_write import atomic_path
    by_depth = sorted(rows, key=lambda r: r["index"])
    fig, ax = plt.subplots(figsize=(9, 4))
    finite = lambda v: v if v is not None and math.isfinite(v) else None  # noqa: E731
    for key, label in (("quant_snr_db", "quant SNR (this layer's own rounding)"), ("snr_db", "SNR against float")):
        pts = [(r["index"], finite(r[key])) for r in by_depth if finite(r[key]) is not None]
        if pts:
            ax.plot(*zip(*pts), marker=".", label=label)
    worst = rows[0] if rows else None
    if worst and finite(worst["quant_snr_db"]) is not None:
        ax.annotate(worst["layer"][-40:], (worst["index"], worst["quant_snr_db"]), fontsize=8)
    ax.set_xlabel("layer (execution order)")
    ax.set_ylabel("dB (higher is better)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True
