"""Pure functions, tested directly: statistics, fidelity, report rows, hashes, options, study checks."""

import argparse

import numpy as np
import pytest

from device_bench.errors import EdgekitError
from device_bench.options import (BENCH_OPTIONS, DEFAULT_REPEAT, BenchParams, SweepSettings, add_argparse_options,
                                  params_from_options, params_to_argv, parse_threads)
from device_bench.stats import PERCENTILES, percentile, summarize


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_percentiles_match_numpy(n):
    values = np.random.default_rng(n).lognormal(size=n).tolist()
    s = sorted(values)
    for q in (0, *PERCENTILES, 100):
        assert percentile(s, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_summarize_matches_numpy():
    values = np.random.default_rng(1).normal(5, 1, 257).tolist()
    s = summarize(values)
    assert s["count"] == 257 and s["min"] == min(values) and s["max"] == max(values)
    assert s["mean"] == pytest.approx(np.mean(values)) and s["std"] == pytest.approx(np.std(values))
    assert s["p50"] == pytest.approx(np.median(values))


def test_fidelity_counts_agreement_and_degenerate_outputs():
    from converters.fidelity import fidelity
    a = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    b = np.array([[0.6, 0.3, 0.1], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    f = fidelity(a, b)
    assert f["images"] == 4 and f["top1_agreement"] == 0.75 and f["top5_overlap"] == 1.0
    assert f["max_abs_diff"] == pytest.approx(0.7) and not f["degenerate_output"]
    assert f["cosine"] == pytest.approx(np.mean([np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y)
                                                 for x, y in zip(a, b)]))
    assert fidelity(a, np.full_like(a, 1 / 3))["degenerate_output"]


def test_settings_hash_changes_with_each_input():
    from converters.pipeline import settings_hash
    base = ("abc", "int8", {"mean": [1.0]}, {"io": "int8"})
    h = settings_hash(*base)
    assert len(h) == 64 and h == settings_hash(*base)
    for i, other in enumerate(("abd", "fp32", {"mean": [2.0]}, {"io": "uint8"})):
        changed = list(base)
        changed[i] = other
        assert settings_hash(*changed) != h


def test_peak_figure_and_table_rows():
    from edgekit.report import peak_macs_per_s, table_rows
    env = {"max_frequency_mhz": 2000, "vector_bits": 256, "int8_dot": True}
    assert peak_macs_per_s(env, 2, "fp32") == 2 * 2000e6 * 8 * 2
    assert peak_macs_per_s(env, 1, "int8") == 4 * peak_macs_per_s(env, 1, "fp32")
    assert peak_macs_per_s({"vector_bits": 256}, 1, "fp32") is None

    def bench(p50):
        return [{"threads": 1, "init_ms": 1.0, "latency_ms": {"p50": p50, "p90": p50}, "peak_rss_mb": 50.0}]
    results = {"environment": env, "rows": [
        {"model": "m", "precision": "int8", "macs": 4e8, "file_size": 1e6, "bench": bench(2.0)},
        {"model": "m", "precision": "fp32", "macs": 4e8, "file_size": 4e6, "bench": bench(8.0)},
        {"model": "x", "precision": "fp32", "error": "broke"}]}
    rows = table_rows(results)
    assert [r["precision"] for r in rows] == ["int8", "fp32", "fp32"]
    assert rows[0]["size_vs_fp32"] == 0.25 and rows[0]["speedup_vs_fp32"] == 4.0
    assert rows[1]["gmacs_per_s"] == pytest.approx(4e8 / 8e-3 / 1e9)
    assert rows[1]["fraction_of_peak"] == pytest.approx(4e8 / 8e-3 / peak_macs_per_s(env, 1, "fp32"))
    assert rows[2]["error"] == "broke" and rows[2].get("p50_ms") is None


def test_threads_parsing():
    assert parse_threads("1,2, 4") == [1, 2, 4] and parse_threads([3]) == [3]
    for bad in ("", "0", "1,x", "-1", [0]):
        with pytest.raises(ValueError):
            parse_threads(bad)


def test_bench_params_round_trip_through_the_generated_argparse():
    """params -> argv -> argparse (generated from the same table) -> params gives back the same."""
    parser = argparse.ArgumentParser()
    add_argparse_options(parser)
    params = BenchParams(threads=2, warmup_runs=3, warmup_min_secs=0.25, num_runs=7, min_secs=0.5, max_secs=9.0,
                         run_delay=0.01, xnnpack=False, delegate="lib.so:a=1", runtime="litert", input="x.npy",
                         poll_memory=True, api="compiled", accelerator="gpu", ceiling=False)
    sweep = SweepSettings((2, 4), repeat=5, cooldown=1.5)
    argv = params_to_argv(params, sweep)
    back, back_sweep = params_from_options(vars(parser.parse_args(argv)))
    assert back == params and back_sweep == sweep
    default, default_sweep = params_from_options(vars(parser.parse_args([])))
    assert default == BenchParams() and default_sweep == SweepSettings((1,), DEFAULT_REPEAT, 0.0)
    assert "--repeat" in params_to_argv(BenchParams())  # a child process runs one process's worth


def test_click_and_argparse_flags_come_from_one_table():
    from edgekit.cli import cli
    click_flags = {o for p in cli.commands["bench"].params for o in getattr(p, "opts", [])}
    parser = argparse.ArgumentParser()
    add_argparse_options(parser)
    argparse_flags = {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}
    table = {o.flag for o in BENCH_OPTIONS}
    assert table == argparse_flags and table <= click_flags


@pytest.mark.parametrize("field,value,needle", [
    ("threads", 0, "threads must be at least 1"), ("num_runs", 0, "num_runs"), ("warmup_runs", -1, "warmup_runs"),
    ("min_secs", -1.0, "min_secs"), ("runtime", "onnx", "unknown runtime"), ("api", "graph", "unknown api"),
    ("accelerator", "tpu", "unknown accelerator")])
def test_bench_params_validation_names_the_field(field, value, needle):
    with pytest.raises(EdgekitError, match=needle):
        BenchParams(**{field: value}).validate()


@pytest.mark.parametrize("config,needle", [
    ({"models": [{"name": "squeezenet1_1"}], "thread": [1]}, "unknown setting 'thread'; did you mean 'threads'"),
    ({"models": [{"name": "squeezenet1_1"}], "threads": 2}, "'threads' must be a non-empty list of int"),
    ({"models": [{"name": "squeezenet1_1"}], "threads": []}, "'threads' must be a non-empty list"),
    ({"models": [{"name": "squeezenet1_1"}], "precisions": []}, "'precisions'"),
    ({"models": [{"name": "squeezenet1_1"}], "runs": "fifty"}, "'runs' must be a positive integer"),
    ({"models": [{"name": "squeezenet1_1", "size": "big"}]}, "models[0]: 'size' has the wrong type"),
    ({"models": [{"source": 5}]}, "models[0]: 'source' has the wrong type"),
    ({"models": [{"nmae": "x"}]}, "did you mean 'name'"),
    ({"models": []}, "no [[models]]"),
])
def test_study_config_is_checked_before_any_work(config, needle):
    from edgekit.study_config import Study
    with pytest.raises(EdgekitError) as e:
        Study.from_dict(config, "cfg.toml")
    assert needle in str(e.value) and str(e.value).startswith("cfg.toml")


def test_records_round_trip_and_error_rows():
    from device_bench.records import BenchResult, Bundle, EvalResult
    ok = BenchResult(model="m", threads=1, latency_ms={"p50": 1.0})
    assert BenchResult.from_dict(ok.to_dict()) == ok and ok.ok and ok.to_dict()["schema"] == 1
    err = BenchResult(model="m", threads=2, error="boom")
    assert err.to_dict() == {"model": "m", "threads": 2, "error": "boom", "warnings": [], "schema": 1}
    assert not err.ok
    b = Bundle(precision="int8", path="/tmp/x_int8", file_size=3)
    assert b.to_dict()["bundle"] == "/tmp/x_int8" and __import__("os").fspath(b) == "/tmp/x_int8"
    assert not EvalResult(model="m", errors=[{"image": "a", "error": "bad"}]).ok
