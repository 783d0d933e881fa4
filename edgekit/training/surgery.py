"""Structured channel surgery for Keras 3 functional models: remove whole output channels of Conv2D and
Dense layers, and with them the matching input channels, BatchNorm entries, depthwise channels and
biases downstream. The result is a plain, smaller, dense Keras model (same layer names, no masks), so
the .tflite shrinks and XNNPACK runs it faster, which unstructured zeros never do.

Channels are traced through the graph as *groups*: each Conv2D/Dense output starts a group of its
filters; BatchNorm, activations, pooling, padding and depthwise convolutions pass channels through;
Concatenate joins groups side by side (SqueezeNet's fire modules); Add and other element-wise merges
tie groups together (MobileNetV2's residuals), so a tied group is pruned as one. Groups that reach a
model output, come from the input, pass through a layer the surgery cannot slice, or whose producer is
named in ``keep`` stay whole.
"""

from dataclasses import dataclass, field

from device_bench.errors import EdgekitError
from edgekit.tf_import import import_tf

PASS_THROUGH = ("ReLU", "Activation", "Dropout", "SpatialDropout2D", "MaxPooling2D", "AveragePooling2D",
                "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D", "Cropping2D", "LeakyReLU",
                "Identity", "UpSampling2D")
ELEMENTWISE = ("Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum")


@dataclass
class Group:
    """Channels that must be pruned together: one producer's filters, or several tied by element-wise merges."""
    id: int
    size: int
    producers: list = field(default_factory=list)  # Conv2D/Dense layer names whose filters these are
    consumers: list = field(default_factory=list)  # Conv2D/Dense/Depthwise layer names reading them
    frozen: str = None  # why the group stays whole, or None when it can be pruned

    @property
    def name(self):
        """A readable name: the producers, joined with '+' (a tied group has several)."""
        return "+".join(self.producers) or f"group{self.id}"


@dataclass
class Plan:
    """The channel groups of a model and how every layer's channels map onto them."""
    groups: dict  # root id -> Group (tied groups merged)
    inputs: dict  # layer name -> channel map of its (first) input: [(root id, size), ...]
    outputs: dict  # Conv2D/Dense layer name -> root id of its output group

    def prunable(self):
        """Groups that can lose channels, in graph order."""
        return [g for g in self.groups.values() if not g.frozen and g.size > 1]

    def group_of(self, layer_name):
        """The group a Conv2D/Dense layer's filters belong to."""
        return self.groups[self.outputs[layer_name]]


class _Tracer:
    """Union-find over groups while walking the graph."""

    def __init__(self):
        self.parent, self.info = {}, {}

    def new(self, size, producer=None, frozen=None):
        gid = len(self.parent)
        self.parent[gid] = gid
        self.info[gid] = Group(gid, size, [producer] if producer else [], frozen=frozen)
        return gid

    def root(self, gid):
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def tie(self, a, b):
        a, b = self.root(a), self.root(b)
        if a == b:
            return
        keep, gone = min(a, b), max(a, b)
        self.parent[gone] = keep
        ga, gb = self.info[keep], self.info.pop(gone)
        ga.producers += [p for p in gb.producers if p not in ga.producers]
        ga.consumers += [c for c in gb.consumers if c not in ga.consumers]
        ga.frozen = ga.frozen or gb.frozen

    def freeze(self, cmap, why):
        for gid, _ in cmap:
            g = self.info[self.root(gid)]
            g.frozen = g.frozen or why


def _node_tensors(layer, model):
    """(input KerasTensors, output KerasTensors) of the layer's one call in ``model`` (a layer may also be
    called in other models: its nodes there are not this model's; keys as keras.src.ops.function makes them)."""
    nodes = [n for i, n in enumerate(layer._inbound_nodes) if f"{id(layer)}_ib-{i}" in model._nodes]
    if len(nodes) != 1:
        raise EdgekitError(f"layer {layer.name!r} is called {len(nodes)} times; channel pruning needs each layer "
                           f"used once (exclude it with --keep {layer.name})")
    return list(nodes[0].input_tensors), list(nodes[0].output_tensors)


def analyze(model, keep=()):
    """The Plan of ``model``'s channel groups; a layer that cannot be sliced but would receive prunable
    channels is a one-line error naming it and saying how to exclude it (``--keep``)."""
    if type(model).__name__ != "Functional":
        raise EdgekitError(f"{getattr(model, 'name', model)}: channel pruning needs a Keras functional model, got "
                           f"{type(model).__name__}")
    keep = set(keep or ())
    names = {l.name for l in model.layers}
    unknown = sorted(keep - names)
    if unknown:
        raise EdgekitError(f"--keep {unknown[0]}: {model.name} has no layer of that name")
    t = _Tracer()
    maps, inputs, outputs = {}, {}, {}
    for layer in model.layers:
        ins, outs = _node_tensors(layer, model) if layer._inbound_nodes else ([], [])
        kind = type(layer).__name__
        in_maps = [maps[id(x)] for x in ins if id(x) in maps]
        if ins and len(in_maps) != len(ins):
            raise EdgekitError(f"layer {layer.name!r} reads a tensor from outside the model's graph")
        if in_maps:
            inputs[layer.name] = in_maps[0]
        out = _trace_layer(t, layer, kind, in_maps, outs, keep)
        if isinstance(out, int):
            outputs[layer.name] = out
            out = [(out, int(outs[0].shape[-1]))]
        for o in outs:
            maps[id(o)] = out
    for x in model.outputs:
        t.freeze(maps[id(x)], "reaches the model's output")
    for name, cmap in inputs.items():
        for gid, _ in cmap:
            g = t.info[t.root(gid)]
            if name not in g.consumers and name not in g.producers:
                g.consumers.append(name)
    groups = {gid: g for gid, g in t.info.items() if t.root(gid) == gid}
    return Plan(groups=groups, inputs={k: [(t.root(g), n) for g, n in v] for k, v in inputs.items()},
                outputs={k: t.root(v) for k, v in outputs.items()})


def _trace_layer(t, layer, kind, in_maps, outs, keep):
    """The channel map of a layer's output (or a new group id for a Conv2D/Dense); ties groups at merges."""
    width = int(outs[0].shape[-1]) if outs and outs[0].shape else 0
    if kind == "InputLayer" or not in_maps:
        return [(t.new(width, frozen="model input"), width)]
    first = in_maps[0]
    if kind in ("Conv2D", "Dense") and len(in_maps) == 1 and getattr(layer, "groups", 1) == 1:
        return t.new(width, layer.name, frozen="--keep" if layer.name in keep else None)
    if layer.name in keep:
        t.freeze(sum(in_maps, []), "--keep")
    if kind == "DepthwiseConv2D" and layer.depth_multiplier == 1 or kind in PASS_THROUGH or \
            kind == "BatchNormalization" and layer.axis in (-1, len(outs[0].shape) - 1):
        return first
    if kind == "Flatten" and len(outs[0].shape) == 2:
        return first * (width // sum(n for _, n in first))
    if kind == "Reshape" and width == sum(n for _, n in first):
        return first
    if kind == "Concatenate" and layer.axis in (-1, len(outs[0].shape) - 1):
        return sum(in_maps, [])
    if kind in ELEMENTWISE and all([n for _, n in m] == [n for _, n in first] for m in in_maps):
        for m in in_maps[1:]:
            for (a, _), (b, _) in zip(first, m):
                t.tie(a, b)
        return first
    prunable = [t.info[t.root(g)] for m in in_maps for g, _ in m if not t.info[t.root(g)].frozen]
    if prunable:
        raise EdgekitError(f"layer {layer.name!r} ({kind}) cannot follow pruned channels; exclude the channels it "
                           f"reads with --keep {prunable[0].producers[0] if prunable[0].producers else layer.name}")
    return [(t.new(width, frozen=f"made by {kind}"), width)]


def _indices(cmap, kept):
    """Input channel indices that survive, for a layer whose input has channel map ``cmap``."""
    import numpy as np
    parts, offset = [], 0
    for gid, size in cmap:
        parts.append(offset + (kept[gid] if gid in kept else np.arange(size)))
        offset += size
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def importance(model, plan):
    """Per prunable group, a score per channel: the L1 norm of each producer's filter, scaled by the
    BatchNorm right after it when there is one (what the channel's output is actually multiplied by)."""
    import numpy as np
    bn_after = _batchnorm_after(model)
    scores = {}
    for g in plan.prunable():
        total = np.zeros(g.size)
        for name in g.producers:
            w = model.get_layer(name).kernel.numpy()
            s = np.abs(w.reshape(-1, w.shape[-1])).sum(0)
            bn = bn_after.get(name)
            if bn is not None:
                s = s * np.abs(bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)) \
                    if bn.gamma is not None else s / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
            total += s / (s.mean() or 1.0)
        scores[g.id] = total
    return scores


def _batchnorm_after(model):
    """Conv/Dense layer name -> the BatchNormalization that reads its output alone, if any."""
    _, keras = import_tf()
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            src = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
            found[src.name] = layer
    return found


def keep_strongest(plan, scores, widths):
    """Kept channel indices per group: the ``widths[gid]`` highest-scoring channels, in their original order."""
    import numpy as np
    kept = {}
    for gid, n in widths.items():
        g = plan.groups[gid]
        if not 1 <= n <= g.size:
            raise EdgekitError(f"{g.name}: cannot keep {n} of {g.size} channels")
        if n < g.size:
            if g.frozen:
                raise EdgekitError(f"{g.name}: its channels cannot be pruned ({g.frozen})")
            kept[gid] = np.sort(np.argsort(-scores[gid], kind="stable")[:n])
    return kept


def prune_channels(model, plan, kept):
    """A new model without the channels left out of ``kept`` ({group id: kept indices}); weights sliced."""
    import numpy as np
    _, keras = import_tf()
    kept = {gid: np.asarray(ix, np.int64) for gid, ix in kept.items() if len(ix) < plan.groups[gid].size}
    sliced = {}

    def clone(layer):
        config = layer.get_config()
        weights = [w.numpy() for w in layer.weights]
        if layer.name in plan.inputs:
            ix = _indices(plan.inputs[layer.name], kept)
            out = kept.get(plan.outputs.get(layer.name))
            kind = type(layer).__name__
            if kind in ("Conv2D", "Dense"):
                weights[0] = weights[0][..., ix, :]
                if out is not None:
                    weights = [weights[0][..., out]] + [w[out] for w in weights[1:]]
                    config["filters" if kind == "Conv2D" else "units"] = len(out)
            elif kind == "DepthwiseConv2D":
                weights = [weights[0][:, :, ix, :]] + [w[ix] for w in weights[1:]]
            elif kind == "BatchNormalization":
                weights = [w[ix] for w in weights]
        sliced[layer.name] = weights
        return type(layer).from_config(config)

    inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x._keras_history.operation.name)
              for x in model.inputs]  # the input layers keep their names too
    new = keras.models.clone_model(model, input_tensors=inputs if len(inputs) > 1 else inputs[0],
                                   clone_function=clone)
    for layer in new.layers:
        if sliced.get(layer.name):
            layer.set_weights(sliced[layer.name])
    return new


def widths(plan):
    """{group id: channels} of every prunable group."""
    return {g.id: g.size for g in plan.prunable()}


def channel_widths(model, plan):
    """{group id: channels now} read from a (pruned) model whose layer names match the plan's."""
    return {g.id: int(model.get_layer(g.producers[0]).kernel.shape[-1]) for g in plan.prunable()}
