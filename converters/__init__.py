"""converters: Keras model -> TFLite at fp32, fp16, dynamic-range and int8, a float .tflite -> the same and
int16x8 (the LiteRT quantizer, without TensorFlow), calibration, fidelity check, per-layer report, mixed
precision and bundle writing. TensorFlow is imported only where a Keras model is converted; never
imports edgekit or click."""

from converters.pipeline import ConvertSettings, ModelInfo, convert_model

__all__ = ["ConvertSettings", "ModelInfo", "convert_model"]
