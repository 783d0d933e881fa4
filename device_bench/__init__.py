"""device_bench: the device side of edgekit.

Loads a .tflite model or bundle, benchmarks it, classifies images. Imports only the stdlib, numpy,
a TFLite runtime and (lazily) Pillow, so it runs on a Raspberry Pi without TensorFlow.
"""

__version__ = "0.1.0"

from device_bench.errors import EdgekitError  # noqa: E402,F401
