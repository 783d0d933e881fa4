"""converters: Keras model -> TFLite at fp32, fp16, dynamic-range and int8, calibration, fidelity
check, and bundle writing. Imports TensorFlow; never imports edgekit or click."""
