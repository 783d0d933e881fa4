"""A profile's rows: one per operator of the .tflite graph (as converters.tflite_graph decodes it), with the
Keras layer its tensor names come from, its multiply-adds, its time and both shares; plus the rows a runtime
adds that are no operator of the graph (OpenVINO's layout reorders). Shares are of the rows' own sums, so
each column sums to 1; the end-to-end figure is kept beside them to say how much the rows cover."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Optional

from device_bench.errors import EdgekitError

_WEIGHTED_PART = re.compile(r"(conv|depthwise|matmul|biasadd)", re.I)


@dataclass
class ProfileRow:
    """One operator (``index`` in the graph), or one runtime node that is none (``index`` None)."""
    index: Optional[int]
    op: str
    layer: Optional[str]
    macs: int
    ms: float
    delegated: Optional[bool] = None  # on the accelerator/delegate (XNNPACK, NPU), where the source says
    note: str = ""  # how the time was attributed (fused nodes, estimates, not executed)
    cycles: Optional[int] = None  # Vela's estimate
    memory_bytes: Optional[int] = None  # Vela's staging (SRAM) usage
    mac_share: float = 0.0
    time_share: float = 0.0


@dataclass
class Profile:
    """Where the time of one model goes in one runtime, worst first."""
    model: str
    source: str  # "openvino", "benchmark_model", "vela"
    label: str  # what the times are, in words: whose kernels, measured or estimated
    rows: list = field(default_factory=list)
    end_to_end_ms: Optional[float] = None  # the same runtime's own end-to-end figure (p50, or Vela's total)
    estimate: bool = False
    delegated_label: str = "delegated"  # what "delegated" means for this source
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    compared: Optional["Profile"] = None  # a second build of the same graph (--compare)

    @property
    def op_ms(self):
        """The rows' times summed."""
        return sum(r.ms for r in self.rows)

    def to_dict(self):
        """JSON-ready: the rows worst first, the sums and the end-to-end figure beside them."""
        return {"model": self.model, "source": self.source, "label": self.label, "estimate": self.estimate,
                "settings": self.settings, "delegated_means": self.delegated_label, "op_ms": self.op_ms,
                "end_to_end_ms": self.end_to_end_ms,
                "op_sum_over_end_to_end": self.op_ms / self.end_to_end_ms if self.end_to_end_ms else None,
                "notes": self.notes, "rows": [asdict(r) for r in self.rows],
                **({"compare": compare(self, self.compared)} if self.compared else {})}


def layer_names(tensor_name):
    """The Keras layers a TFLite tensor name comes from: each ';'-separated part's last-but-one path element
    ("model/model/block_1_expand_1/convolution" -> "block_1_expand_1"); none for names without a path."""
    out = []
    for part in tensor_name.split(";"):
        pieces = [p for p in part.split("/") if p]
        if len(pieces) >= 2 and pieces[-2] not in out:
            out.append(pieces[-2])
    return out


def _main_layer(tensor_name):
    """The layer an operator is: for a convolution or matmul the part that names one, else the first part."""
    parts = [p for p in tensor_name.split(";") if "/" in p]
    main = next((p for p in parts if _WEIGHTED_PART.search(p.rsplit("/", 1)[-1])), parts[0] if parts else "")
    names = layer_names(main)
    return names[0] if names else None


def graph_rows(graph):
    """One row per operator of ``graph`` (a converters.tflite_graph.Graph), in execution order, time 0.
    Keras 3's export appends '_1' to every layer's name: dropped when every operator reading an activation has it."""
    layers = [_main_layer(graph.tensors[op.outputs[0]]["name"]) if op.outputs else None for op in graph.ops]
    live = [n for op, n in zip(graph.ops, layers)  # not the DEQUANTIZE ops of float16 weights
            if n and any(i >= 0 and not graph.tensors[i]["constant"] for i in op.inputs)]
    if live and all(n.endswith("_1") for n in live):
        layers = [n[:-2] if n else n for n in layers]
    return [ProfileRow(op.index, op.type, layer, op.macs, 0.0) for op, layer in zip(graph.ops, layers)]


def finish(profile):
    """Fill both shares and sort the rows worst first (time, then multiply-adds, then graph order)."""
    total_ms, total_macs = profile.op_ms, sum(r.macs for r in profile.rows)
    for r in profile.rows:
        r.time_share = r.ms / total_ms if total_ms else 0.0
        r.mac_share = r.macs / total_macs if total_macs else 0.0
    profile.rows.sort(key=lambda r: (-r.ms, -r.macs, r.index if r.index is not None else 1 << 30))
    return profile


def op_list(profile):
    """(op type, layer) of the graph's operators in a profile, in graph order (index, key)."""
    return [(r.index, (r.op, r.layer)) for r in sorted((r for r in profile.rows if r.index is not None),
                                                      key=lambda r: r.index)]


SAME_GRAPH = 0.8  # share of the smaller graph's ops that must pair up for two builds to count as one graph


def pair_ops(a, b):
    """Pair the operators of two builds of one graph (op type and layer, in order): {index in a: index in b}.
    Ops one build has and the other lacks (a folded normalization, int8's QUANTIZE edges) stay unpaired.
    EdgekitError when too few pair up: another graph, with the first differences named."""
    import difflib
    ops_a, ops_b = op_list(a), op_list(b)
    match = difflib.SequenceMatcher(None, [k for _, k in ops_a], [k for _, k in ops_b], autojunk=False)
    pairs = {ops_a[x + k][0]: ops_b[y + k][0] for x, y, n in match.get_matching_blocks() for k in range(n)}
    if len(pairs) < SAME_GRAPH * max(min(len(ops_a), len(ops_b)), 1):  # fp16 adds DEQUANTIZE ops
        diff = [f"#{i1}: {', '.join(k[0] for _, k in ops_a[i1:i2][:2]) or 'none'} vs "
                f"{', '.join(k[0] for _, k in ops_b[j1:j2][:2]) or 'none'}"
                for tag, i1, i2, j1, j2 in match.get_opcodes() if tag != "equal"][:3]
        raise EdgekitError(f"{b.model}: another graph than {a.model} (only {len(pairs)} of {len(ops_b)} ops pair "
                           f"with its {len(ops_a)} by type and layer); they differ at op {'; '.join(diff)}")
    return pairs


def compare(a, b):
    """Two profiles of builds of one graph side by side, op by op, in a's order (worst first), then the ops only
    b has. EdgekitError when the graphs differ (pair_ops)."""
    pairs = pair_ops(a, b)
    by_index = {r.index: r for r in b.rows if r.index is not None}
    rows = []
    for r in a.rows:
        other = by_index.get(pairs.get(r.index)) if r.index is not None else \
            next((o for o in b.rows if o.index is None and o.op == r.op), None)
        rows.append(_side_by_side(r, other))
    paired = set(pairs.values())
    rows += [_side_by_side(None, o) for o in b.rows if o.index is not None and o.index not in paired]
    return {"a": a.model, "b": b.model, "source": a.source, "label": a.label, "op_ms_a": a.op_ms,
            "op_ms_b": b.op_ms, "end_to_end_ms_a": a.end_to_end_ms, "end_to_end_ms_b": b.end_to_end_ms,
            "rows": rows}


def _side_by_side(r, other):
    one = r or other
    return {"index_a": r.index if r else None, "index_b": other.index if other else None, "op": one.op,
            "layer": one.layer, "macs": one.macs, "ms_a": r.ms if r else None,
            "time_share_a": r.time_share if r else None, "ms_b": other.ms if other else None,
            "time_share_b": other.time_share if other else None,
            "ratio": other.ms / r.ms if r and other and r.ms else None}
