"""device_bench: the device side of edgekit.

Loads a .tflite model or bundle, benchmarks it, classifies images. Imports only the stdlib, numpy,
a TFLite runtime and (lazily) Pillow, so it runs on a Raspberry Pi without TensorFlow.

    import device_bench
    rows = device_bench.benchmark("mobilenet_v2_100_224_int8/", threads=[1, 4])
"""

__version__ = "0.1.0"

from device_bench.errors import EdgekitError  # noqa: E402,F401

__all__ = ["EdgekitError", "__version__", "benchmark", "classify", "evaluate", "inspect"]


def __getattr__(name):
    """The API functions, imported on first use so that `import device_bench` stays instant."""
    if name in ("benchmark", "classify", "evaluate", "inspect"):
        from device_bench import api
        return getattr(api, name)
    raise AttributeError(f"module 'device_bench' has no attribute {name!r}")
