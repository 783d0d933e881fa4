"""MobileNet V1 and V2, reused from keras.applications rather than written again."""

from edgekit.zoo.spec import ModelSpec, register_model


def _keras_weights(weights):
    return "imagenet" if weights == "imagenet" else None


@register_model(ModelSpec(
    name="mobilenet_v1", family="MobileNetV1", default_size=224, min_size=32,
    imagenet_sizes=(128, 160, 192, 224), alphas=(0.25, 0.5, 0.75, 1.0), default_alpha=1.0,
    preprocessing="tf", weights="keras (ImageNet, downloaded and cached by Keras)"))
def mobilenet_v1(alpha, size, classes, weights):
    """Zoo entry for MobileNet V1, built by keras.applications so its ImageNet weights can be reused."""
    import keras
    return keras.applications.MobileNet(input_shape=(size, size, 3), alpha=alpha, classes=classes,
                                        weights=_keras_weights(weights))


@register_model(ModelSpec(
    name="mobilenet_v2", family="MobileNetV2", default_size=224, min_size=32,
    imagenet_sizes=(96, 128, 160, 192, 224), alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4), default_alpha=1.0,
    preprocessing="tf", weights="keras (ImageNet, downloaded and cached by Keras)"))
def mobilenet_v2(alpha, size, classes, weights):
    """Zoo entry for MobileNet V2, built by keras.applications so its ImageNet weights can be reused."""
    import keras
    return keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, classes=classes,
                                          weights=_keras_weights(weights))
