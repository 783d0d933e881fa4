"""Per-operator times on a phone or board, from LiteRT's benchmark_model --enable_op_profiling (the op_profile
of a BenchResult, parsed by device_bench.benchmark_model_parse).

Its run-order rows name a node ``[output tensors]:N``: a row whose node N is an operator of that type with
those output tensors is that operator's time. A delegate's row (TfLiteXNNPackDelegate, TfLiteNnapiDelegate, XNNPACK's own
``Delegate/...`` rows) covers a partition, whose operators it does not split: it is a row of its own, and the
operators no row names are marked as run inside a delegate."""

from __future__ import annotations

import re

from edgekit.profiling.table import Profile, ProfileRow

_NAME = re.compile(r"^\[(.*)\]:(\d+)$")


def _delegate(node_type, name):
    return "delegate" in node_type.lower() or name.startswith("Delegate/")


def phone_profile(path, graph, rows, op_rows, record):
    """Fill ``rows`` from benchmark_model's ``op_rows`` (dicts: node_type, avg_ms, share, name); rows of their own
    for delegate partitions and for rows that match no operator of the graph."""
    by_index = {r.index: r for r in rows}
    names = {op.index: ", ".join(graph.tensors[i]["name"] for i in op.outputs) for op in graph.ops}
    extra, unmatched = [], 0
    for o in op_rows:
        m = _NAME.match(o["name"] or "")
        index = int(m.group(2)) if m else None
        if index in by_index and by_index[index].op == o["node_type"] and m.group(1) == names[index]:
            by_index[index].ms += o["avg_ms"]
            by_index[index].delegated = False
            continue
        delegated = _delegate(o["node_type"], o["name"] or "")
        unmatched += not delegated
        extra.append(ProfileRow(None, o["node_type"], None, 0, o["avg_ms"], delegated=delegated,
                                note=f"benchmark_model's {o['name']}" + (
                                    ": a delegate partition (its ops' times are not split)" if delegated else
                                    ": no operator of this graph")))
    inside = any(r.delegated for r in extra)
    for r in rows:
        if r.delegated is None:
            r.delegated = True if inside else None
            r.note = "inside a delegate partition: its time is in the delegate's row" if inside else \
                "not in benchmark_model's table"
    notes = []
    if unmatched:
        notes.append(f"{unmatched} of benchmark_model's {len(op_rows)} rows name no operator of {path}'s graph: "
                     f"was the profile taken on another model?")
    runtime = record.get("runtime") or {}
    p50 = (record.get("latency_ms") or {}).get("p50") or (record.get("latency_ms") or {}).get("mean")
    return Profile(model=path, source="benchmark_model", rows=rows + extra, end_to_end_ms=p50, notes=notes,
                   label=f"LiteRT benchmark_model's op profiler on {record.get('target')} "
                         f"({runtime.get('accelerator') or 'cpu'}, {record.get('threads')} thread(s))",
                   delegated_label="run by a delegate (XNNPACK, GPU, NNAPI)",
                   settings={"target": record.get("target"), "threads": record.get("threads"),
                             "accelerator": runtime.get("accelerator")})
