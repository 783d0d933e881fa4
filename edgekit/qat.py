"""Quantization-aware training for Keras 3, without tensorflow-model-optimization.

The rewrite (`quantize_model`) folds each BatchNormalization into the convolution or dense layer
before it, gives every convolution per-channel (dense: per-tensor) symmetric int8 fake-quantized
weights, and puts a per-tensor activation fake-quant (ranges kept as moving averages) wherever TFLite
stores an int8 tensor: the input, and the outputs of convolutions, activations, adds, concatenations
and poolings, after any activation TFLite fuses into its producer. keras.quantizers.
fake_quant_with_min_max_vars emits TensorFlow's FakeQuant ops, whose ranges the TFLite converter
takes, so the result converts to a fully int8 graph, with no QUANTIZE or DEQUANTIZE inside.

The layers below are registered Keras classes: a QAT .keras file loads with safe_mode=True wherever
this module has been imported (edgekit.loading does so).
"""

import keras
from keras import ops

from device_bench.errors import EdgekitError

PACKAGE = "edgekit"
EMA_DECAY = 0.99
# what the rewrite knows: layers that produce a new int8 range, and layers TFLite runs in their input's range
_RANGE = ("Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization", "ReLU", "Activation", "Add", "Subtract",
          "Multiply", "Average", "Concatenate", "AveragePooling2D", "GlobalAveragePooling2D")
_PASS = ("InputLayer", "Dropout", "Reshape", "Flatten", "ZeroPadding2D", "MaxPooling2D", "GlobalMaxPooling2D",
         "Identity", "Softmax")
_FOLDS_INTO = ("Conv2D", "DepthwiseConv2D", "Dense")
SUPPORTED = _RANGE + _PASS


def _weight_quant(kernel, per_channel_axis):
    """Symmetric int8 fake quantization of a kernel: per channel along an axis, or per tensor (None)."""
    if per_channel_axis is None:
        m = ops.maximum(ops.max(ops.abs(kernel)), 1e-8)
        return keras.quantizers.fake_quant_with_min_max_vars(kernel, -m, m, num_bits=8, narrow_range=True)
    reduce = tuple(i for i in range(len(kernel.shape)) if i != per_channel_axis)
    m = ops.maximum(ops.max(ops.abs(kernel), axis=reduce), 1e-8)
    return keras.quantizers.fake_quant_with_min_max_vars(kernel, -m, m, num_bits=8, narrow_range=True,
                                                         axis=per_channel_axis)


def _bias_and_activation(layer, outputs):
    if layer.use_bias:
        outputs = ops.add(outputs, layer.bias)
    return layer.activation(outputs) if layer.activation is not None else outputs


@keras.saving.register_keras_serializable(package=PACKAGE)
class QATConv2D(keras.layers.Conv2D):
    """Conv2D whose kernel is fake-quantized per output channel, as TFLite stores int8 convolutions."""

    def call(self, inputs):
        """Convolve with the fake-quantized kernel, then bias and activation as Conv2D does."""
        return _bias_and_activation(self, self.convolution_op(inputs, _weight_quant(self.kernel, 3)))


@keras.saving.register_keras_serializable(package=PACKAGE)
class QATDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """DepthwiseConv2D with per-channel fake-quantized weights (per tensor when depth_multiplier > 1)."""

    def call(self, inputs):
        """Depthwise convolution with the fake-quantized kernel, then bias and activation."""
        k = self.kernel
        if self.depth_multiplier == 1:  # [kh, kw, C, 1] -> [kh, kw, 1, C]: TFLite's channel axis last
            shape = tuple(k.shape)
            k = ops.reshape(_weight_quant(ops.reshape(k, shape[:2] + (1, shape[2])), 3), shape)
        else:
            k = _weight_quant(k, None)
        outputs = ops.depthwise_conv(inputs, k, strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate, data_format=self.data_format)
        return _bias_and_activation(self, outputs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class QATDense(keras.layers.Dense):
    """Dense with a per-tensor fake-quantized kernel (per-channel breaks the converter's transpose)."""

    def call(self, inputs, training=None):
        """Matrix product with the fake-quantized kernel, then bias and activation."""
        return _bias_and_activation(self, ops.matmul(inputs, _weight_quant(self.kernel, None)))


@keras.saving.register_keras_serializable(package=PACKAGE)
class ActivationQuantizer(keras.layers.Layer):
    """Per-tensor int8 fake quantization of activations, its range a moving average of batch ranges."""

    def __init__(self, ema_decay=EMA_DECAY, **kwargs):
        super().__init__(**kwargs)
        self.ema_decay = ema_decay

    def build(self, input_shape):
        """Create the range variables: non-trainable, updated while training like BatchNorm's statistics."""
        self.range_min = self.add_weight(shape=(), initializer="zeros", trainable=False, name="range_min")
        self.range_max = self.add_weight(shape=(), initializer="zeros", trainable=False, name="range_max")
        self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False, name="initialized")

    def call(self, inputs, training=False):
        """Fake-quantize with the stored range; while training, first move the range toward this batch's."""
        lo, hi = self.range_min, self.range_max
        if training:
            batch_lo = ops.minimum(ops.stop_gradient(ops.min(inputs)), 0.0)
            batch_hi = ops.maximum(ops.stop_gradient(ops.max(inputs)), 0.0)
            seen = self.initialized > 0
            lo = ops.where(seen, self.ema_decay * self.range_min + (1 - self.ema_decay) * batch_lo, batch_lo)
            hi = ops.where(seen, self.ema_decay * self.range_max + (1 - self.ema_decay) * batch_hi, batch_hi)
            self.range_min.assign(lo)
            self.range_max.assign(hi)
            self.initialized.assign(1.0)
        hi = ops.maximum(hi, lo + 1e-6)
        return keras.quantizers.fake_quant_with_min_max_vars(inputs, lo, hi, num_bits=8)

    def get_config(self):
        """Serializable configuration: the moving-average decay."""
        return dict(super().get_config(), ema_decay=self.ema_decay)


_QAT_CLASSES = {"Conv2D": QATConv2D, "DepthwiseConv2D": QATDepthwiseConv2D, "Dense": QATDense}


def _graph(model):
    """(layer name -> class name, layer name -> names of the layers it feeds) from the functional config."""
    config = model.get_config()
    if "layers" not in config:
        raise EdgekitError(f"qat needs a functional or Sequential model; {model.name!r} is a subclassed model")
    kinds, consumers = {}, {}
    for entry in config["layers"]:
        kinds[entry["config"]["name"]] = entry["class_name"]
        if len(entry.get("inbound_nodes") or []) > 1:
            raise EdgekitError(f"qat cannot wrap layer {entry['config']['name']!r}: it is shared (called more than once)")
        for source in _history_names(entry.get("inbound_nodes")):
            consumers.setdefault(source, []).append(entry["config"]["name"])
    return kinds, consumers


def _history_names(node):
    """Names of the layers a node's inputs come from (its keras_history entries)."""
    if isinstance(node, dict):
        if "keras_history" in node:
            return [node["keras_history"][0]]
        return [n for v in node.values() for n in _history_names(v)]
    if isinstance(node, (list, tuple)):
        return [n for v in node for n in _history_names(v)]
    return []


def _fused_activation(layer):
    return (type(layer).__name__ == "ReLU" or
            (type(layer).__name__ == "Activation" and getattr(layer.activation, "__name__", "") in ("relu", "relu6")))


def _is_softmax(layer):
    return getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"


def plan(model):
    """Check every layer before any training: (conv name -> folded BatchNorm, layers to follow with a
    fake-quant). Raises EdgekitError naming the first layer it cannot wrap or fold."""
    kinds, consumers = _graph(model)
    layers = {layer.name: layer for layer in model.layers}
    for name, kind in kinds.items():
        if kind not in SUPPORTED or type(layers[name]).__name__ != kind:
            raise EdgekitError(f"qat cannot wrap layer {name!r} ({kind}); it handles {', '.join(SUPPORTED)}")
    folds = {}
    for name, kind in kinds.items():
        if kind != "BatchNormalization":
            continue
        sources = [s for s, used in consumers.items() if name in used]
        source = sources[0] if len(sources) == 1 else None
        if source is None or kinds[source] not in _FOLDS_INTO or consumers[source] != [name] \
                or layers[source].activation.__name__ != "linear" or layers[name].axis not in (-1, len(layers[name].input.shape) - 1):
            raise EdgekitError(f"qat cannot fold BatchNormalization {name!r}: it must follow a Conv2D, "
                               f"DepthwiseConv2D or Dense without activation that feeds nothing else")
        folds[source] = name
    quantize_after = set()
    for name, kind in kinds.items():
        if kind not in _RANGE or _is_softmax(layers[name]) or name in folds:
            continue
        nxt = consumers.get(name, [])
        if len(nxt) == 1 and _fused_activation(layers[nxt[0]]):
            continue  # TFLite fuses the activation: the range belongs after it
        quantize_after.add(name)
    return folds, quantize_after


def folded_weights(layer, bn):
    """[kernel, bias] of ``layer`` with BatchNorm ``bn`` (its moving statistics) folded in."""
    import numpy as np
    kernel = layer.kernel.numpy()
    bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1] if type(layer).__name__ != "DepthwiseConv2D"
                                                              else kernel.shape[2] * kernel.shape[3], np.float32)
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    if type(layer).__name__ == "DepthwiseConv2D":
        kernel = kernel * scale.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale
    return [kernel.astype(np.float32), (beta + (bias - bn.moving_mean.numpy()) * scale).astype(np.float32)]


def quantize_model(model):
    """The fake-quantized, BatchNorm-folded copy of ``model`` (its own weights; ``model`` is untouched)."""
    folds, quantize_after = plan(model)
    folded_bns = set(folds.values())

    def clone(layer):
        kind = type(layer).__name__
        if layer.name in folded_bns:
            return keras.layers.Identity(name=layer.name)
        if kind in _QAT_CLASSES:
            config = dict(layer.get_config(), use_bias=layer.use_bias or layer.name in folds)
            return _QAT_CLASSES[kind].from_config(config)
        return type(layer).from_config(layer.get_config())

    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]
    quantized = {id(t): ActivationQuantizer(name=f"{t.name}_quant")(t) for t in inputs}

    def call(layer, *args, **kwargs):
        args = keras.tree.map_structure(lambda a: quantized.get(id(a), a), args)
        kwargs = {k: v for k, v in kwargs.items() if not (k == "mask" and v is None)}  # Identity takes no mask
        out = layer(*args, **kwargs)
        return ActivationQuantizer(name=f"{layer.name}_quant")(out) if layer.name in quantize_after else out

    structure = inputs if isinstance(model.input, (list, tuple)) else inputs[0]
    qmodel = keras.models.clone_model(model, input_tensors=structure, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.name in folded_bns or not layer.weights or type(layer).__name__ == "InputLayer":
            continue
        target = qmodel.get_layer(layer.name)
        target.set_weights(folded_weights(layer, model.get_layer(folds[layer.name])) if layer.name in folds
                           else layer.get_weights())
    return qmodel


def calibrate(qmodel, x, batch_size=32, batches=8, seed=0):
    """Set the activation ranges from a few shuffled training batches before fine-tuning starts."""
    import numpy as np
    order = np.random.default_rng(seed).permutation(len(x))
    for i in range(min(batches, -(-len(x) // batch_size))):
        qmodel(x[order[i * batch_size:(i + 1) * batch_size]], training=True)


def qat(model, data, settings, progress, bar=False):
    """The quantization-aware copy of ``model``, fine-tuned on ``data``; returns (model, details)."""
    from edgekit.training import default_lr, fit, top1, with_augmentation
    folds, quantize_after = plan(model)
    qmodel = quantize_model(model)
    calibrate(qmodel, data.x, settings.batch_size, seed=settings.seed)
    before = top1(qmodel, data.xv, data.yv)
    progress(f"qat: {len(folds)} BatchNorm layers folded, {len(quantize_after) + len(model.inputs)} activation "
             f"quantizers; held-out top-1 {before:.2%} before fine-tuning")
    history = fit(with_augmentation(qmodel, settings), data, settings, progress, epochs=settings.epochs,
                  lr=settings.lr or default_lr(model) / 10, bar=bar, phase="qat: ")
    return qmodel, {"folded_batchnorms": len(folds), "activation_quantizers": len(quantize_after) + len(model.inputs),
                    "top1_before_fine_tuning": before, "history": history}
