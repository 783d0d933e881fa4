"""converters: Keras model -> TFLite at fp32, fp16, dynamic-range and int8, calibration, fidelity
check, and bundle writing. Imports TensorFlow; never imports edgekit or click."""

from converters.pipeline import ConvertSettings, ModelInfo, convert_model

__all__ = ["ConvertSettings", "ModelInfo", "convert_model"]
