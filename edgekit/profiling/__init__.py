"""Where the time goes, one row per operator of a .tflite graph: on this machine from OpenVINO's performance
counters, on a phone from LiteRT's benchmark_model --enable_op_profiling, on an Arm Ethos-U microNPU from the
Vela compiler's estimates (`edgekit profile`)."""

from __future__ import annotations

import os

from converters.tflite_graph import read_graph
from device_bench.manifest import read_bundle
from edgekit.profiling.table import Profile, compare, finish, graph_rows, pair_ops

__all__ = ["Profile", "compare", "model_graph", "profile_here", "profile_record", "same_graph", "xnnpack_ops", "add_times"]


def model_graph(model, verify=True):
    """(the .tflite path of a bundle or .tflite, its decoded graph)."""
    ref = read_bundle(os.fspath(model), verify)
    with open(ref.tflite_path, "rb") as f:
        return ref.tflite_path, read_graph(f.read(), ref.tflite_path)


def xnnpack_ops(path):
    """Indices of the operators LiteRT hands to XNNPACK here (None when the runtime cannot say)."""
    from device_bench.runtime import check_memory, delegation, open_interpreter, resolve_runtime
    check_memory(path, None)
    nodes = delegation(open_interpreter(path, resolve_runtime(None, "interpreter")))
    return None if nodes is None else {n["index"] for n in nodes if n["delegated"]}


def profile_here(model, accelerator=None, threads=1, runs=50, min_secs=1.0, verify=True):
    """The profile of ``model`` on this machine: OpenVINO's, or Vela's estimate for an Ethos-U ``accelerator``."""
    path, graph = model_graph(model, verify)
    rows = graph_rows(graph)
    if accelerator and accelerator != "cpu":
        if not accelerator.startswith("ethos-u"):
            from device_bench.errors import EdgekitError
            raise EdgekitError(f"--accelerator {accelerator}: here only an Arm Ethos-U NPU (e.g. ethos-u55-128, Vela's "
                               f"estimate); gpu, npu and nnapi are profiled on a phone (--target adb)")
        from edgekit.profiling.vela import vela_profile
        prof = vela_profile(path, graph, rows, accelerator)
    else:
        from edgekit.profiling.openvino_host import host_profile
        prof = host_profile(path, graph, rows, threads, runs, min_secs)
        taken = xnnpack_ops(path)
        for r in prof.rows:
            r.delegated = None if taken is None or r.index is None else r.index in taken
    prof.model = os.fspath(model)
    return finish(prof)


def profile_record(model, record, verify=True):
    """The profile of ``model`` from a phone's BenchResult (a dict) taken with op_profile."""
    from device_bench.errors import EdgekitError
    from edgekit.profiling.phone import phone_profile
    if record.get("error"):
        raise EdgekitError(f"{model}: {record['error']}")
    if not record.get("op_profile"):
        raise EdgekitError(f"{model}: benchmark_model printed no operator table on {record.get('target')}")
    path, graph = model_graph(model, verify)
    prof = phone_profile(path, graph, graph_rows(graph), record["op_profile"], record)
    prof.model = os.fspath(model)
    return finish(prof)


def same_graph(model, other, verify=True):
    """Refuse, before any profiling, to compare ``model`` with a build of another graph (one line saying where)."""
    rows = [Profile(model=os.fspath(m), source="", label="", rows=graph_rows(model_graph(m, verify)[1]))
            for m in (model, other)]
    pair_ops(*rows)


def add_times(layer_rows, prof):
    """Join a per-layer error table (rows keyed by output ``tensor`` name) with a profile of the same build:
    each row gains ``ms`` and ``time_share`` of the operator writing that tensor (None where none does)."""
    path, graph = model_graph(prof.model, verify=False)
    op_of = {graph.tensors[o]["name"]: op.index for op in graph.ops for o in op.outputs}
    by_index = {r.index: r for r in prof.rows if r.index is not None}
    for row in layer_rows:
        r = by_index.get(op_of.get(row["tensor"]))
        row["ms"], row["time_share"] = (r.ms, r.time_share) if r else (None, None)
    return layer_rows
