"""The input tensor a benchmark feeds: random bytes, a .npy, or an image preprocessed per the model's
manifest. Its own module because the benchmark and the ceiling kernel both need it (no import cycle)."""

import os

import numpy as np

from device_bench.errors import EdgekitError
from device_bench.images import load_input, quantize


def make_input(detail, ref, source):
    """The input tensor: random by default, or a .npy, or an image preprocessed as the model declares."""
    shape = [int(v) for v in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if source is None:
        # random bytes rather than numpy.random, whose import alone costs ~7 MB of resident memory
        count = int(np.prod(shape))
        raw = np.frombuffer(os.urandom(count * dtype.itemsize), dtype=np.uint8)
        if dtype.kind == "f":
            return (raw[:count].astype(np.float32) / 127.5 - 1.0).astype(dtype).reshape(shape)
        return raw.view(dtype).reshape(shape).copy()
    if source.endswith(".npy"):
        try:
            arr = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EdgekitError(f"{source}: cannot read as .npy ({e})") from None
        if list(arr.shape) != shape:
            raise EdgekitError(f"{source}: shape {list(arr.shape)} does not fit the model's input {shape}")
        if arr.dtype == dtype:
            return arr
        if arr.dtype.kind == "f":
            return quantize(arr.astype(np.float32), dtype, scale, zero)
        raise EdgekitError(f"{source}: dtype {arr.dtype} does not fit the model's input {dtype.name}")
    prep = ref.preprocessing
    if prep is None:
        raise EdgekitError(f"{ref.tflite_path}: neither a manifest nor standard metadata says how to scale "
                           f"pixels, so an image input cannot be preprocessed; use a .npy")
    return quantize(load_input(source, shape, prep), dtype, scale, zero)
