"""The Keras layers a quantization-aware-trained model holds: fake-quantized Conv2D, DepthwiseConv2D,
Dense and activations.

They are registered Keras classes, in a module of their own so that loading a QAT .keras file
(models.loading imports this) needs no training code: the file loads with safe_mode=True wherever
this module has been imported.
"""

import keras
from keras import ops

PACKAGE = "edgekit"
EMA_DECAY = 0.99
# what the rewrite knows: layers that produce a new int8 range, and layers TFLite runs in their input's range
RANGE_KINDS = ("Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization", "ReLU", "Activation", "Add",
               "Subtract", "Multiply", "Average", "Concatenate", "AveragePooling2D", "GlobalAveragePooling2D")
PASS_KINDS = ("InputLayer", "Dropout", "Reshape", "Flatten", "ZeroPadding2D", "MaxPooling2D",
              "GlobalMaxPooling2D", "Identity", "Softmax")
FOLDS_INTO = ("Conv2D", "DepthwiseConv2D", "Dense")
SUPPORTED = RANGE_KINDS + PASS_KINDS


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


QAT_CLASSES = {"Conv2D": QATConv2D, "DepthwiseConv2D": QATDepthwiseConv2D, "Dense": QATDense}


