"""Quantization-aware training for Keras 3, without tensorflow-model-optimization.

The rewrite (`quantize_model`) folds each BatchNormalization into the convolution or dense layer
before it, gives every convolution per-channel (dense: per-tensor) symmetric int8 fake-quantized
weights, and puts a per-tensor activation fake-quant (ranges kept as moving averages) wherever TFLite
stores an int8 tensor: the input, and the outputs of convolutions, activations, adds, concatenations
and poolings, after any activation TFLite fuses into its producer. keras.quantizers.
fake_quant_with_min_max_vars emits TensorFlow's FakeQuant ops, whose ranges the TFLite converter
takes, so the result converts to a fully int8 graph, with no QUANTIZE or DEQUANTIZE inside.

The layers live in edgekit.zoo.qat_layers, so that loading a QAT file needs no training code.
"""

import keras

from device_bench.errors import EdgekitError
from edgekit.zoo.qat_layers import FOLDS_INTO, QAT_CLASSES, RANGE_KINDS, SUPPORTED, ActivationQuantizer


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
        if source is None or kinds[source] not in FOLDS_INTO or consumers[source] != [name] \
                or layers[source].activation.__name__ != "linear" or layers[name].axis not in (-1, len(layers[name].input.shape) - 1):
            raise EdgekitError(f"qat cannot fold BatchNormalization {name!r}: it must follow a Conv2D, "
                               f"DepthwiseConv2D or Dense without activation that feeds nothing else")
        folds[source] = name
    quantize_after = set()
    for name, kind in kinds.items():
        if kind not in RANGE_KINDS or _is_softmax(layers[name]) or name in folds:
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
        if kind in QAT_CLASSES:
            config = dict(layer.get_config(), use_bias=layer.use_bias or layer.name in folds)
            return QAT_CLASSES[kind].from_config(config)
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
    from edgekit.training.fit import default_lr, fit, top1, with_augmentation
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
