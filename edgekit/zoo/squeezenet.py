"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016), written in Keras since Keras lacks it.

Fire modules: a 1x1 squeeze convolution, then 1x1 and 3x3 expand convolutions, concatenated.
Downsampling comes late, so most layers see large feature maps. The layout and channel counts
follow torchvision's reference, so the parameter counts match it exactly.
"""

from edgekit.zoo.spec import ModelSpec, register_model

# (squeeze, expand) per fire module, and after which fire modules a max-pool comes
_V10 = {"conv": (96, 7), "fires": [(16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192),
                                   (64, 256), (64, 256)], "pool_after": (4, 8)}
_V11 = {"conv": (64, 3), "fires": [(16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192),
                                   (64, 256), (64, 256)], "pool_after": (3, 5)}


# torchvision's initialisation (He-uniform convolutions, a small normal for the classifier), plus a bias
# of 1 on the classifier: an equal shift of every logit leaves the softmax unchanged, but keeps the
# classifier's ReLU alive. With a zero bias about half the classes start dead and never train.
_INIT = "he_uniform"


def fire_module(x, index, squeeze, expand):
    """One fire module: squeezing channels before the expand convolutions keeps parameters and MACs low."""
    from keras import layers
    name = f"fire{index}"
    s = layers.Conv2D(squeeze, 1, activation="relu", kernel_initializer=_INIT, name=f"{name}_squeeze1x1")(x)
    e1 = layers.Conv2D(expand, 1, activation="relu", kernel_initializer=_INIT, name=f"{name}_expand1x1")(s)
    e3 = layers.Conv2D(expand, 3, padding="same", activation="relu", kernel_initializer=_INIT,
                       name=f"{name}_expand3x3")(s)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([e1, e3])


def SqueezeNet(version="1.1", input_shape=(224, 224, 3), classes=1000, dropout=0.5, name=None):
    """Build SqueezeNet ``version`` ('1.0' or '1.1') ending in a softmax over ``classes``."""
    import keras
    from keras import layers

    if version not in ("1.0", "1.1"):
        raise ValueError(f"SqueezeNet version must be '1.0' or '1.1'. Received: version={version!r}")
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (H, W, 1 or 3). Received: input_shape={input_shape}")
    if classes < 2:
        raise ValueError(f"classes must be at least 2. Received: classes={classes}")
    cfg = _V10 if version == "1.0" else _V11
    inputs = keras.Input(shape=input_shape, name="input")
    filters, kernel = cfg["conv"]
    x = layers.Conv2D(filters, kernel, strides=2, activation="relu", kernel_initializer=_INIT, name="conv1")(inputs)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for i, (squeeze, expand) in enumerate(cfg["fires"], start=2):
        x = fire_module(x, i, squeeze, expand)
        if i in cfg["pool_after"]:
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{i}")(x)
    x = layers.Dropout(dropout, name="drop9")(x)
    x = layers.Conv2D(classes, 1, activation="relu", name="conv10",
                      kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
                      bias_initializer=keras.initializers.Constant(1.0))(x)
    x = layers.GlobalAveragePooling2D(name="avgpool10")(x)
    outputs = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or f"squeezenet{version.replace('.', '_')}")


_SPEC = dict(min_size=32, imagenet_sizes=(), alphas=(1.0,), default_alpha=1.0, preprocessing="torch",
             weights="none published for Keras: pass a local weights file with --weights PATH")


@register_model(ModelSpec(name="squeezenet1_0", family="SqueezeNet", default_size=227, **{**_SPEC, "min_size": 35}))
def squeezenet1_0(alpha, size, classes, weights):
    """Zoo entry for SqueezeNet 1.0, the paper's original layout; local weights are loaded by the caller."""
    return SqueezeNet("1.0", (size, size, 3), classes)


@register_model(ModelSpec(name="squeezenet1_1", family="SqueezeNet", default_size=224, **_SPEC))
def squeezenet1_1(alpha, size, classes, weights):
    """Zoo entry for SqueezeNet 1.1, which needs under half the MACs of 1.0 for about the same accuracy."""
    return SqueezeNet("1.1", (size, size, 3), classes)
