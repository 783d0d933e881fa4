"""From a float .tflite (exported from PyTorch with litert-torch, taken from a model hub, made by a
colleague) to one bundle per precision, with the LiteRT quantizer and without TensorFlow.

fp32 packages the float file as it is; every other build is checked against it.
"""

import hashlib
import os

import numpy as np

from converters.bundle_run import BundleRun
from converters.pipeline import ModelInfo, build_bundles
from converters.tflite_graph import read_graph
from device_bench.errors import EdgekitError
from device_bench.manifest import MODEL_NAME, read_bundle
from device_bench.predict import temporary_predictor


def tflite_source(path):
    """(float .tflite bytes, its Graph, the ModelRef read_bundle gives) for a .tflite file or a bundle
    folder holding a float model; EdgekitError naming the file when it is not one."""
    ref = read_bundle(path)
    with open(ref.tflite_path, "rb") as f:
        data = f.read()
    graph = read_graph(data, ref.tflite_path)
    quantized = graph.quantized()
    if quantized:
        raise EdgekitError(f"{ref.tflite_path}: already quantized (tensor {quantized[0]!r} is not float32); "
                           f"give the float model")
    if len(graph.inputs) != 1 or len(graph.tensors[graph.inputs[0]]["shape"]) != 4:
        shapes = [graph.tensors[i]["shape"] for i in graph.inputs]
        raise EdgekitError(f"{ref.tflite_path}: expected one image input [1, H, W, C], got {shapes}")
    return data, graph, ref


def model_name(path):
    """The name bundles get: the file's stem, or for a bundle's model.tflite its folder's name (without _fp32,
    _float32 or _float: the bundles add their own precision)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path) or os.path.basename(path) == MODEL_NAME:
        stem = os.path.basename(path if os.path.isdir(path) else os.path.dirname(path))
    else:
        stem = os.path.splitext(os.path.basename(path))[0]
    for suffix in ("_fp32", "_float32", "_float"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[:-len(suffix)]
    return stem


def tflite_info(path, data, graph, preprocessing, labels):
    """The ModelInfo of a float .tflite: parameters and multiply-adds are counted in the file itself."""
    classes = int(np.prod(graph.tensors[graph.outputs[0]]["shape"][1:] or [1]))
    if labels is not None and len(labels) != classes:
        raise EdgekitError(f"{len(labels)} labels for a model with {classes} outputs")
    source = {"kind": "tflite", "path": os.path.abspath(os.fspath(path)), "sha256": hashlib.sha256(data).hexdigest()}
    return ModelInfo(name=model_name(path), preprocessing=preprocessing, source=source, params=graph.params,
                     macs=graph.macs, labels=labels)


def quantize_model(data, graph, info, settings, progress=print):
    """Write OUTDIR/NAME_PRECISION/ for each precision of a float .tflite; one Bundle each."""
    from converters.litert_quantize import add_signature
    data = add_signature(data, graph)
    return build_bundles(info, settings, lambda targets, todo: _Quantization(data, graph, info, settings, targets,
                                                                            todo, progress), progress)


class _Quantization(BundleRun):
    """One float .tflite's builds: each compared with the float file's own outputs."""

    making = "packaging the float file"

    def __init__(self, data, graph, info, settings, targets, todo, progress):
        self.data, self._reference = data, None
        shape = graph.tensors[graph.inputs[0]]["shape"]
        super().__init__(info, settings, targets, todo, progress, [1, *shape[1:]],
                         int(np.prod(graph.tensors[graph.outputs[0]]["shape"][1:] or [1])))

    def make(self, precision):
        """fp32 is the float file itself."""
        if precision != "fp32":
            raise EdgekitError(f"{precision} from a .tflite is made by the LiteRT quantizer")
        return self.data

    def float_bytes(self):
        """The float file."""
        return self.data

    def reference(self):
        """The float file's own outputs on the fidelity images (computed once)."""
        if self._reference is None:
            with temporary_predictor(self.data) as float_model:
                self._reference = np.stack([float_model.predict(x) for x in self.fid_inputs])
        return self._reference

    def versions(self):
        """The LiteRT runtime besides the quantizer."""
        from importlib import metadata
        try:
            litert = metadata.version("ai-edge-litert")
        except metadata.PackageNotFoundError:
            litert = None
        return dict(super().versions(), ai_edge_litert=litert)
