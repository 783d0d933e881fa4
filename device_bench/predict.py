"""Running a TFLite classifier on float inputs: quantize in, dequantize out, with the tensors' own
scale and zero point. Shared by classify, evaluate and the converters' fidelity check."""

import contextlib
import os
import tempfile
from collections.abc import Iterator

import numpy as np

from device_bench.errors import EdgekitError
from device_bench.images import dequantize, load_input, make_preprocessing, quantize
from device_bench.manifest import ModelRef, check_tensors, read_bundle, read_labels
from device_bench.runtime import first_line, resolve_runtime


def check_classifier_output(shape, path) -> int:
    """The number of classes of an output shaped [1, N] or [1, 1, 1, N]; EdgekitError for anything else
    (a segmentation map [1, 257, 257, 21] is not 1,387,029 classes)."""
    shape = [int(v) for v in shape]
    if not (len(shape) == 2 or (len(shape) == 4 and shape[1:3] == [1, 1])) or shape[0] != 1 or shape[-1] < 1:
        raise EdgekitError(f"{path}: not an image classifier: expected one class-score output [1, classes], got "
                           f"{shape} (bench and inspect take any model)")
    return shape[-1]


class Predictor:
    """A model open in a runtime (any runtime and API: device_bench.engines), with the preprocessing and
    labels its bundle declares."""

    def __init__(self, ref, runtime=None, threads=1, xnnpack=True, preprocessing=None, max_memory_mb=None,
                 accelerator="cpu"):
        from device_bench.engines import open_engine
        self.ref = ref
        self.runtime = runtime or resolve_runtime()
        self.engine = open_engine(ref.tflite_path, self.runtime, threads, xnnpack, accelerator=accelerator,
                                  max_memory_mb=max_memory_mb)
        try:
            self._check(ref, preprocessing)
        except BaseException:  # a refused model must not keep its runtime objects alive
            self.engine.close()
            raise

    def _check(self, ref, preprocessing):
        """Refuse what is not an image classifier matching its bundle; set the tensors' details."""
        inputs, outputs = self.engine.input_details, self.engine.output_details
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgekitError(f"{ref.tflite_path}: an image classifier has one input and one output, this model "
                               f"has {len(inputs)} and {len(outputs)}")
        self.input, self.output = inputs[0], outputs[0]
        check_tensors(ref, self.input, self.output)
        self.input_shape = [int(v) for v in self.input["shape"]]
        if len(self.input_shape) != 4:
            raise EdgekitError(f"{ref.tflite_path}: expected an image input [1, H, W, C], got {self.input_shape}")
        self.num_outputs = check_classifier_output(self.output["shape"], ref.tflite_path)
        self.preprocessing = preprocessing or ref.preprocessing
        if ref.labels is not None and len(ref.labels) != self.num_outputs:
            raise EdgekitError(f"{ref.tflite_path}: {len(ref.labels)} labels but the model has "
                               f"{self.num_outputs} outputs")

    def predict(self, batch):
        """float32 [1,H,W,C] (already normalised) -> float32 probabilities [num_outputs]."""
        scale, zero = self.input["quantization"]
        x = quantize(np.asarray(batch, np.float32), self.input["dtype"], scale, zero)
        if list(x.shape) != self.input_shape:
            raise EdgekitError(f"input of shape {list(x.shape)} does not fit the model's {self.input_shape}")
        try:
            self.engine.set_input(x)
            self.engine.invoke()
            y = self.engine.get_output()
        except (RuntimeError, ValueError) as e:  # "Input tensor 71 lacks data": a damaged graph
            raise EdgekitError(f"{self.ref.tflite_path}: the runtime failed running the model ({first_line(e)})") \
                from None
        scale, zero = self.output["quantization"]
        return dequantize(y, scale, zero).reshape(-1)

    def describe(self):
        """The runtime, version, API and accelerator the predictions come from."""
        return self.engine.describe()

    def close(self):
        """Release the runtime's objects now."""
        self.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def load(self, image_path):
        """Read an image as the model's input, refusing to guess pixel scaling that no manifest declares."""
        if self.preprocessing is None:
            raise EdgekitError(f"{self.ref.tflite_path}: neither a manifest nor standard metadata says how to scale "
                               f"pixels; give --mean and --std (e.g. --mean 127.5 --std 127.5)")
        return load_input(image_path, self.input_shape, self.preprocessing)

    def label(self, index):
        """The label of an output index; None when no labels are known (views then show the index)."""
        return self.ref.labels[index] if self.ref.labels else None


def preprocessing_override(mean=None, std=None, mode=None, crop_fraction=None):
    """A preprocessing record from command-line flags, or None when none were given."""
    if mean is None and std is None and mode is None:
        return None
    return make_preprocessing(mode=mode, mean=mean, std=std,
                              crop_fraction=1.0 if crop_fraction is None else crop_fraction)


def open_predictor(model, labels=None, preprocessing=None, runtime=None, threads=1, verify=True,
                   max_memory_mb=None, accelerator="cpu"):
    """A Predictor for a bundle folder or .tflite file; ``labels`` (a file) overrides the bundle's."""
    ref = read_bundle(model, verify=verify)
    if labels:
        ref.labels = read_labels(labels)
    return Predictor(ref, runtime=runtime, threads=threads, preprocessing=preprocessing,
                     max_memory_mb=max_memory_mb, accelerator=accelerator)


@contextlib.contextmanager
def temporary_predictor(tflite_bytes: bytes, *, labels=None, preprocessing=None, **open_options) -> Iterator[Predictor]:
    """A Predictor on model bytes (runtimes need a path): written to a temporary file, closed and deleted
    after the block. ``open_options`` are Predictor's (runtime, threads, xnnpack, max_memory_mb, ...)."""
    with tempfile.TemporaryDirectory(prefix="device_bench-") as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(tflite_bytes)
        with Predictor(ModelRef(path, labels=labels), preprocessing=preprocessing, **open_options) as predictor:
            yield predictor
