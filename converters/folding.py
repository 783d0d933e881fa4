"""Folding the pixel normalization into the graph, so the model takes raw RGB pixels.

Then per-channel ("torch") normalization is expressible for MediaPipe (which takes only one mean and
std), and no app can preprocess wrongly: it feeds the pixels it has.
"""

from device_bench.errors import EdgekitError


def fold_preprocessing(model, preprocessing):
    """(a model whose first layer computes (pixel - mean) / std, the preprocessing record of raw pixels)."""
    import keras
    if preprocessing["color_order"] != "RGB":
        raise EdgekitError(f"cannot fold {preprocessing['color_order']} preprocessing (mode "
                           f"{preprocessing.get('mode')}) into the graph; convert with --no-fold-preprocessing")
    channels = model.input_shape[-1]
    mean, std = preprocessing["mean"][:channels], preprocessing["std"][:channels]
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = keras.layers.Rescaling(scale=[1.0 / s for s in std], offset=[-m / s for m, s in zip(mean, std)],
                               name="normalize")(inputs)
    folded = keras.Model(inputs, model(x), name=model.name)
    raw = dict(preprocessing, mode="folded", mean=[0.0] * len(preprocessing["mean"]),
               std=[1.0] * len(preprocessing["std"]),
               folded={"mode": preprocessing.get("mode"), "mean": preprocessing["mean"], "std": preprocessing["std"]})
    return folded, raw
