"""What a device will see in a model file: tensors, the standard metadata, edgekit's manifest, the op
histogram and which ops XNNPACK takes. Device-side dependencies only."""

import os
from collections import Counter

import numpy as np

from device_bench.errors import EdgekitError
from device_bench.manifest import read_bundle
from device_bench.runtime import check_memory, delegation, open_interpreter, resolve_runtime


def _tensor(detail):
    scale, zero = detail["quantization"]
    return {"name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
            "shape": [int(v) for v in detail["shape"]],
            "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None}


def _standard_metadata(data, path):
    """The TFLITE_METADATA as a dict (packed files by name and size), or None when there is none."""
    try:
        from device_bench.tflite_metadata import read_classifier_metadata
    except ImportError:  # no flatbuffer schema on this device (tflite-runtime only)
        return {"unreadable": "needs ai-edge-litert's flatbuffer schema: pip install ai-edge-litert"}
    try:
        meta = read_classifier_metadata(data)
    except EdgekitError as e:
        raise EdgekitError(f"{path}: damaged standard metadata ({e})") from None
    if meta is not None:
        meta["packed_files"] = {name: len(blob) for name, blob in meta["packed_files"].items()}
    return meta


def inspect_model(model, runtime=None, verify=True, max_memory_mb=None):
    """A dict describing a bundle folder or .tflite file as a device's runtime loads it."""
    ref = read_bundle(model, verify=verify)
    with open(ref.tflite_path, "rb") as f:
        data = f.read()
    rt = resolve_runtime(runtime, "interpreter")  # the Interpreter is what lists ops and delegation
    check_memory(ref.tflite_path, max_memory_mb)
    interpreter = open_interpreter(ref.tflite_path, rt)
    nodes = delegation(interpreter) or []
    return {
        "path": os.path.abspath(os.fspath(model)), "model_file": ref.tflite_path, "file_size": len(data),
        "runtime": rt.as_dict(),
        "inputs": [_tensor(d) for d in interpreter.get_input_details()],
        "outputs": [_tensor(d) for d in interpreter.get_output_details()],
        "signatures": interpreter.get_signature_list(),
        "ops": dict(Counter(n["op"] for n in nodes).most_common()),
        "xnnpack_ops": dict(Counter(n["op"] for n in nodes if n["delegated"]).most_common()),
        "delegated_nodes": sum(n["delegated"] for n in nodes), "total_nodes": len(nodes),
        "standard_metadata": _standard_metadata(data, ref.tflite_path),
        "manifest": ref.manifest, "labels": len(ref.labels) if ref.labels else None,
    }
