"""edgekit: take Keras image classifiers to phones and Raspberry Pis, and measure what each build costs.

    import edgekit
    bundles = edgekit.convert(model, precisions=["fp32", "int8"], calibration="photos/", outdir="out/",
                              mean=127.5, std=127.5)
    edgekit.benchmark(bundles["int8"], threads=[1, 2])

See edgekit.api for every function; results are typed records with ``to_dict()``.
"""

from device_bench import __version__
from device_bench.errors import EdgekitError, WeightsUnavailable

_FACADE = ("build", "benchmark", "classify", "compare", "compress", "convert", "demo", "deploy", "evaluate",
           "history_export", "history_plot", "history_records", "inspect", "models", "pack_runner", "profile",
           "quantize", "recommend", "report", "run", "train")
_API = {
    **{name: "edgekit.api" for name in _FACADE},
    "TrainResult": "edgekit.training.fit", "CompressResult": "edgekit.training.compress",
    "Recommendations": "device_bench.records", "Recommendation": "device_bench.records",
    "Study": "edgekit.study.config", "StudyResult": "edgekit.study.run", "BenchParams": "device_bench.options",
    "Bundle": "device_bench.records", "ConvertResult": "device_bench.records", "BenchResult": "device_bench.records",
    "BenchResults": "device_bench.records", "Predictions": "device_bench.records", "Profile": "edgekit.profiling.table",
    "ImagePrediction": "device_bench.records", "EvalResult": "device_bench.records",
    "Comparison": "edgekit.study.compare", "ConfigChange": "edgekit.study.compare",
}

__all__ = ["EdgekitError", "WeightsUnavailable", "__version__", *_API]


def __getattr__(name):
    """Import the API on first use, so that `edgekit --help` starts without TensorFlow or NumPy."""
    if name in _API:
        import importlib
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")


def __dir__():
    """The API as tab completion shows it, though nothing is imported until first use."""
    return sorted(__all__)
