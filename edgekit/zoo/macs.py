"""Multiply-adds counted from a Keras graph: convolutions, depthwise convolutions, dense layers.

These are the layers the published figures count (the papers ignore the cost of activations,
pooling, batch norm and additions, which are a few percent at most).
"""

import math


def count_macs(model):
    """Multiply-adds per image, counted as the papers count them so figures compare with published ones."""
    from keras import layers

    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1] // layer.groups
            total += h * w * cout * kh * kw * cin
        elif isinstance(layer, layers.Dense):
            cin = layer.input.shape[-1]
            positions = math.prod(layer.output.shape[1:-1]) if len(layer.output.shape) > 2 else 1
            total += positions * cin * layer.units
    return int(total)


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _all_layers(layer)
        else:
            yield layer
