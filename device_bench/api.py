"""The device-side API: benchmark, classify and evaluate with device-side dependencies only.

``python -m device_bench`` and edgekit's local commands are thin faces over these functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Union

from device_bench.options import DEFAULT_REPEAT, BenchParams

if TYPE_CHECKING:
    from device_bench.options import SweepSettings
    from device_bench.predict import Predictor
    from device_bench.records import BenchResults, EvalResult, Predictions

PathLike = Union[str, "os.PathLike[str]"]
Paths = Union[PathLike, Iterable[PathLike]]  # one path (a Bundle is one) or several


def as_paths(value: Paths) -> list[str]:
    """One path (str, PathLike, Bundle) or several, as a list of path strings."""
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        value = [value]  # type: ignore[list-item]
    return [os.fspath(v) for v in value]


def sweep_settings(threads: int | Iterable[int] = (1,), repeat: int = DEFAULT_REPEAT,
                   cooldown: float = 0.0) -> SweepSettings:
    """The SweepSettings of API arguments: one thread count or several, processes per configuration, pause."""
    from device_bench.errors import EdgekitError
    from device_bench.options import SweepSettings, parse_threads
    try:
        counts = parse_threads([threads] if isinstance(threads, int) else threads)
    except ValueError as e:
        raise EdgekitError(str(e)) from None
    return SweepSettings(tuple(counts), repeat, float(cooldown)).validate()


def benchmark(models: Paths, threads: int | Iterable[int] = (1,), params: BenchParams | None = None,
              cooldown: float = 0.0, isolate: bool = True, progress: Callable[[str], None] | None = None,
              repeat: int = DEFAULT_REPEAT, **options: Any) -> BenchResults:
    """Benchmark each model on each runtime at each thread count, in ``repeat`` fresh processes per
    configuration, interleaved.

    ``options`` are BenchParams fields (num_runs, min_secs, runtime="all", api, accelerator, xnnpack, ...).
    Returns BenchResults: a BenchResult per configuration (``result[0]``, or iterate), failures included as
    error rows, absent accelerators as rows that say so."""
    from dataclasses import replace
    from device_bench.records import BenchResults
    from device_bench.sweep import run_sweep
    sweep = sweep_settings(threads, repeat, cooldown)
    params = replace(params or BenchParams(), threads=sweep.threads[0], **options).validate()
    return BenchResults(items=run_sweep(as_paths(models), params, sweep, isolate=isolate, progress=progress))


def _predictor(model: PathLike, labels: PathLike | None = None, mean: list[float] | None = None,
               std: list[float] | None = None, runtime: str | None = None, api: str | None = None,
               accelerator: str = "cpu", verify: bool = True, max_memory_mb: float | None = None) -> Predictor:
    from device_bench.predict import open_predictor, preprocessing_override
    from device_bench.runtime import resolve_runtime
    return open_predictor(os.fspath(model), labels=labels, preprocessing=preprocessing_override(mean, std),
                          runtime=resolve_runtime(runtime, api), accelerator=accelerator, verify=verify,
                          max_memory_mb=max_memory_mb)


def classify(model: PathLike, images: Paths, top_k: int | None = None, labels: PathLike | None = None,
             mean: list[float] | None = None, std: list[float] | None = None, **open_options: Any) -> Predictions:
    """Top-k labels for image files or folders, in any runtime and API. Returns Predictions (per-image errors
    included).

    ``open_options``: runtime, api, accelerator, verify (the bundle's sha256 check), max_memory_mb."""
    from device_bench.classify import classify as run
    with _predictor(model, labels, mean, std, **open_options) as predictor:
        return run(predictor, as_paths(images), top_k)


def inspect(model: PathLike, runtime: str | None = None, verify: bool = True,
            max_memory_mb: float | None = None) -> dict[str, Any]:
    """What a device sees in a bundle or .tflite: tensors, standard metadata, manifest, ops, XNNPACK."""
    from device_bench.inspect import inspect_model
    return inspect_model(os.fspath(model), runtime, verify, max_memory_mb)


def evaluate(model: PathLike, dataset: PathLike, compare: PathLike | None = None, labels: PathLike | None = None,
             mean: list[float] | None = None, std: list[float] | None = None, **open_options: Any) -> EvalResult:
    """Top-1/top-5 of ``model`` on class folders or a CSV, in any runtime and API (a runtime can change
    results); top-1 agreement with ``compare`` (in the same runtime) if given. Always one EvalResult."""
    from device_bench.evaluate import evaluate as run
    with _predictor(model, labels, mean, std, **open_options) as predictor:
        if compare is None:
            return run(predictor, os.fspath(dataset))
        with _predictor(compare, labels, mean, std, **open_options) as other:
            return run(predictor, os.fspath(dataset), other)
