"""Folding the pixel normalization into the model, so it takes raw RGB pixels, at no cost where possible.

Then per-channel ("torch") normalization is expressible for MediaPipe (which takes only one mean and
std), and no app can preprocess wrongly: it feeds the pixels it has. Three ways, cheapest first:

- ``input_quantization`` (full-integer builds, one mean and std for every channel): the model is converted
  without any normalization op, calibrated on normalized pixels spanning 0..255, so TFLiteConverter gives
  its uint8 (or int8) input the scale 1/std and the mean as zero point, as in Google's quantized MobileNets
  (scale 1/128, zero point 128). A mean that is not an integer takes a nearest zero point; the difference,
  in pixels, is recorded. An int8 input then feeds the first convolution directly, with no op before it.
- ``first_conv``: the scale and offset go into the first convolution's weights and bias. Exact for VALID
  padding; SAME padding becomes an explicit pad of raw pixels whose value is the mean (a normalized 0), then
  VALID; a per-channel mean cannot be one pad value, so that case takes the next way.
- ``rescaling``: a Rescaling layer in front of the model, two elementwise ops over every pixel.
"""

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from device_bench.errors import EdgekitError

RESCALING_NOTE = ("the normalization stays a MUL and an ADD over every input pixel (about 1.1x the "
                  "latency on MobileNetV2 1.0/224 fp32, 1.5x at int8: benchmarks/bench_folding.py)")


@dataclass
class Folding:
    """The model taking raw pixels, how it was folded, and the model before folding (for input quantization)."""
    model: Any  # keras.Model on raw pixels: the first convolution folded, or a Rescaling in front
    method: str  # "first_conv" or "rescaling"
    reason: Optional[str]  # why the first convolution could not take it (method "rescaling")
    unfolded: Any  # the model on normalized pixels
    mean: list
    std: list

    @property
    def scalar(self):
        """One mean and one std for every channel: the input's quantization can hold the normalization."""
        return len(set(self.mean)) == 1 and len(set(self.std)) == 1


def fold_preprocessing(model, preprocessing):
    """(a Folding of ``model`` on raw RGB pixels, the preprocessing record of raw pixels)."""
    if preprocessing["color_order"] != "RGB":
        raise EdgekitError(f"cannot fold {preprocessing['color_order']} preprocessing (mode "
                           f"{preprocessing.get('mode')}) into the graph; convert with --no-fold-preprocessing")
    channels = model.input_shape[-1]
    mean = [float(v) for v in preprocessing["mean"][:channels]]
    std = [float(v) for v in preprocessing["std"][:channels]]
    folded, reason = fold_into_first_conv(model, mean, std)
    method = "first_conv" if folded is not None else "rescaling"
    if folded is None:
        folded = rescaled(model, mean, std)
    raw = dict(preprocessing, mode="folded", mean=[0.0] * len(preprocessing["mean"]),
               std=[1.0] * len(preprocessing["std"]),
               folded={"mode": preprocessing.get("mode"), "mean": preprocessing["mean"], "std": preprocessing["std"]})
    return Folding(folded, method, reason, model, mean, std), raw


def rescaled(model, mean, std):
    """``model`` behind a Rescaling layer computing (pixel - mean) / std."""
    import keras
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = keras.layers.Rescaling(scale=[1.0 / s for s in std], offset=[-m / s for m, s in zip(mean, std)],
                               name="normalize")(inputs)
    return keras.Model(inputs, model(x), name=model.name)


def first_conv(model):
    """(the Conv2D that alone reads the model's input, None) or (None, why there is none)."""
    import keras
    if not isinstance(model, keras.Model) or len(getattr(model, "inputs", None) or []) != 1:
        return None, "the model is not a functional model with one input"
    image = model.inputs[0]
    readers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
               and any(any(t is image for t in keras.tree.flatten(node.input_tensors))
                       for node in layer._inbound_nodes)]
    if len(readers) != 1:
        return None, f"{len(readers)} layers read the input"
    layer = readers[0]
    if type(layer) is not keras.layers.Conv2D:
        return None, f"the first layer is {type(layer).__name__} {layer.name!r}, not a convolution"
    if len(layer._inbound_nodes) != 1 or layer.groups != 1 or layer.data_format != "channels_last":
        return None, f"the first convolution {layer.name!r} is shared, grouped or channels-first"
    return layer, None


def same_padding(size, kernel, stride, dilation):
    """(before, after): the zeros TensorFlow's SAME padding adds along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def fold_into_first_conv(model, mean, std):
    """(the model on raw pixels with the normalization in its first convolution, None) or (None, reason)."""
    import keras
    conv, reason = first_conv(model)
    if conv is None:
        return None, reason
    kernel, *bias = conv.get_weights()
    pads = [same_padding(n, k, s, d) for n, k, s, d in
            zip(model.input_shape[1:3], conv.kernel_size, conv.strides, conv.dilation_rate)]
    padded = conv.padding == "same" and any(p != (0, 0) for p in pads)
    if padded and len(set(mean)) > 1:
        return None, (f"the first convolution {conv.name!r} pads (SAME) and a per-channel mean is not one pad "
                      f"value")
    m, s = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    folded_kernel = kernel.astype(np.float64) / s[:, None]
    folded_bias = (bias[0] if bias else 0.0) - np.einsum("hwio,i->o", kernel.astype(np.float64), m / s)
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = PixelPad(pads, mean[0], name="pad_with_mean")(inputs) if padded else inputs
    # The folded convolution keeps the layer's name: profiles and per-layer reports pair it with other builds.
    config = dict(conv.get_config(), use_bias=True, padding="valid", name=conv.name)
    new = keras.layers.Conv2D.from_config(config)
    y = new(x)
    new.set_weights([folded_kernel.astype(np.float32), folded_bias.astype(np.float32)])
    try:
        tail = keras.Model(conv.output, model.output)
    except Exception as e:  # the output depends on the input some other way than through the convolution
        return None, f"the model is not a chain after its first convolution ({str(e)[:100]})"
    return keras.Model(inputs, tail(y), name=model.name), None


def _pixel_pad_class():
    import keras

    class PixelPad(keras.layers.Layer):
        """Pads raw pixels with ``value`` (the mean): after normalization, the zeros SAME padding adds."""

        def __init__(self, pads, value, **kwargs):
            super().__init__(**kwargs)
            self.pads, self.value = [list(p) for p in pads], float(value)

        def call(self, x):
            return keras.ops.pad(x, [[0, 0], *self.pads, [0, 0]], constant_values=self.value)

        def compute_output_shape(self, shape):
            return (shape[0], *(n + sum(p) if n is not None else None for n, p in zip(shape[1:3], self.pads)),
                    shape[3])

        def get_config(self):
            return dict(super().get_config(), pads=self.pads, value=self.value)

    return PixelPad


def PixelPad(pads, value, **kwargs):  # noqa: N802  (a layer, built lazily: importing this module needs no Keras)
    return _pixel_pad_class()(pads, value, **kwargs)


def input_quantization(scale, zero_point, mean, std, io):
    """What a full-integer input of ``scale`` and ``zero_point`` (type ``io``) holds: the record of the
    normalization it carries, with the zero point's distance from the mean in pixels. TFLiteConverter makes
    such an input itself from the model without normalization, calibrated on normalized pixels that span
    0..255 (the calibration anchor): scale 1/std, zero point the mean rounded. EdgekitError when it is not."""
    pixel_zero = int(zero_point) + (128 if io == "int8" else 0)
    if not abs(scale * std - 1.0) <= 1e-5:
        raise EdgekitError(f"cannot hold the normalization in the input: its scale is {scale:g}, not 1/std = "
                           f"{1 / std:g}; convert with --io float32 or --no-fold-preprocessing")
    return {"method": "input_quantization", "scale": float(scale), "zero_point": int(zero_point),
            "pixel_zero_point": pixel_zero, "zero_point_error_pixels": round(abs(pixel_zero - mean), 6)}
