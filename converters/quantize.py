"""From a float .tflite (exported from PyTorch with litert-torch, taken from a model hub, made by a
colleague) to one bundle per precision, with the LiteRT quantizer and without TensorFlow.

fp32 packages the float file as it is (as the float32 graph it stands for when it has op codes of the older
schema or float16 weights: converters.tflite_rewrite); every other build is checked against it.
"""

import hashlib
import os

import numpy as np

from converters.bundle_run import BundleRun
from converters.pipeline import ModelInfo, build_bundles
from converters.progress import to_stderr
from converters.tflite_graph import read_graph
from converters.tflite_rewrite import float32_model
from device_bench.errors import EdgekitError
from device_bench.manifest import MODEL_NAME, read_bundle
from device_bench.predict import check_classifier_output, temporary_predictor


def tflite_source(path):
    """(float .tflite bytes, its Graph, the ModelRef read_bundle gives) for a .tflite file or a bundle
    folder holding a float model; EdgekitError naming the file when it is not one."""
    ref = read_bundle(path)
    with open(ref.tflite_path, "rb") as f:
        data = f.read()
    graph = read_graph(data, ref.tflite_path)
    # float16 weights are a float model stored small: quantize_model makes them float32 again
    quantized = graph.quantized(ignore=graph.float16_weights())
    if quantized:
        raise EdgekitError(f"{ref.tflite_path}: already quantized (tensor {quantized[0]!r} is not float32); "
                           f"give the float model")
    if len(graph.inputs) != 1 or len(graph.tensors[graph.inputs[0]]["shape"]) != 4:
        shapes = [graph.tensors[i]["shape"] for i in graph.inputs]
        raise EdgekitError(f"{ref.tflite_path}: expected one image input [1, H, W, C], got {shapes}")
    output_classes(graph, ref.tflite_path)
    return data, graph, ref


def output_classes(graph, where):
    """The number of classes of the model's one class-score output; EdgekitError naming ``where`` when the
    model is not an image classifier (several outputs, a segmentation or detection output)."""
    if len(graph.outputs) != 1:
        raise EdgekitError(f"{where}: not an image classifier: expected one class-score output, the model has "
                           f"{len(graph.outputs)}")
    return check_classifier_output(graph.tensors[graph.outputs[0]]["shape"], where)


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
    classes = output_classes(graph, path)
    if labels is not None and len(labels) != classes:
        raise EdgekitError(f"{len(labels)} labels for a model with {classes} outputs")
    source = {"kind": "tflite", "path": os.path.abspath(os.fspath(path)), "sha256": hashlib.sha256(data).hexdigest()}
    trained = _trained(path)
    if trained is not None:  # absent: not known
        source["trained"] = trained
    return ModelInfo(name=model_name(path), preprocessing=preprocessing, source=source, params=graph.params,
                     macs=graph.macs, labels=labels)


def _trained(path):
    """Whether the model's weights are trained, as far as its manifest (embedded, or its bundle's) says:
    True, False (random weights) or None (not known)."""
    manifest = read_bundle(path, verify=False).manifest
    return manifest["source"].get("trained") if manifest else None


def quantize_model(data, graph, info, settings, progress=to_stderr):
    """Write OUTDIR/NAME_PRECISION/ for each precision of a float .tflite; one Bundle each. A file of the
    older schema, or with float16 weights, is first rewritten into the float32 graph it stands for."""
    from converters.litert_quantize import add_signature
    data = float32_model(data)
    graph = read_graph(data)
    data = add_signature(data, graph)
    return build_bundles(info, settings, lambda targets, todo: _Quantization(data, graph, info, settings, targets,
                                                                            todo, progress), progress)


class _Quantization(BundleRun):
    """One float .tflite's builds: each compared with the float file's own outputs."""

    making = "packaging the float file"

    def __init__(self, data, graph, info, settings, targets, todo, progress):
        self.data, self._reference = data, None
        shape = graph.tensors[graph.inputs[0]]["shape"]
        super().__init__(info, settings, targets, todo, progress, [1, *shape[1:]], output_classes(graph, info.name))

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
