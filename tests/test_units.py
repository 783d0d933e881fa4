"""Pure functions, tested directly: statistics, fidelity, report rows, hashes, options, study checks."""

import argparse

import numpy as np
import pytest

from device_bench.errors import EdgekitError
from device_bench.records import BenchResult
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
    centred = lambda v: v - v.mean()  # noqa: E731 (near-uniform outputs would score ~1 on raw probabilities)
    assert f["cosine"] == pytest.approx(np.mean([np.dot(centred(x), centred(y)) / np.linalg.norm(centred(x))
                                                 / np.linalg.norm(centred(y)) for x, y in zip(a, b)]))
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


def test_peak_figures_and_table_rows():
    """of peak is against the measured ceiling (same process, runtime, threads); the nominal figure is kept."""
    from device_bench.environment import nominal_peak_macs_per_s
    from edgekit.study.rows import table_rows
    env = {"max_frequency_mhz": 2000, "vector_bits": 256, "int8_dot": True}
    assert nominal_peak_macs_per_s(env, 2, "fp32") == 2 * 2000e6 * 8 * 2
    assert nominal_peak_macs_per_s(env, 1, "int8") == 4 * nominal_peak_macs_per_s(env, 1, "fp32")
    assert nominal_peak_macs_per_s({"vector_bits": 256}, 1, "fp32") is None
    runtime = {"name": "litert", "version": "2.3.0", "api": "interpreter", "accelerator": "cpu"}

    def bench(p50, ceiling):
        return [{"threads": 1, "runtime": runtime, "init_ms": 1.0, "latency_ms": {"p50": p50, "p90": p50},
                 "peak_rss_mb": 50.0, "ceiling": {"macs_per_s": ceiling, "nominal_macs_per_s": 32e9},
                 "latency_spread": {"p50_min": p50 * 0.99, "p50_max": p50 * 1.02, "relative": 0.03, "processes": 3}}]
    results = {"environment": env, "rows": [
        {"model": "m", "precision": "int8", "macs": 4e8, "file_size": 1e6, "bench": bench(2.0, 400e9)},
        {"model": "m", "precision": "fp32", "macs": 4e8, "file_size": 4e6, "bench": bench(8.0, 100e9)},
        {"model": "x", "precision": "fp32", "error": "broke"}]}
    rows = table_rows(results)
    assert [r["precision"] for r in rows] == ["int8", "fp32", "fp32"]
    assert rows[0]["size_vs_fp32"] == 0.25 and rows[0]["speedup_vs_fp32"] == 4.0
    assert rows[1]["gmacs_per_s"] == pytest.approx(4e8 / 8e-3 / 1e9)
    assert rows[1]["fraction_of_peak"] == pytest.approx(4e8 / 8e-3 / 100e9)
    assert rows[1]["fraction_of_nominal_peak"] == pytest.approx(4e8 / 8e-3 / 32e9)  # above 1: nominal is no ceiling
    assert rows[0]["runtime"] == "litert 2.3.0 interpreter/cpu" and rows[0]["spread"] == 0.03
    assert rows[2]["error"] == "broke" and rows[2].get("p50_ms") is None


def _proc(p50, count=10):
    return BenchResult(model="m", threads=1, latency_ms={"p50": p50, "p90": p50 * 2, "mean": p50, "count": count},
                       init_ms=p50 * 10, first_ms=1.0, peak_rss_mb=50.0, ceiling={"macs_per_s": 100 + p50},
                       clock={"before": {"frequency_mhz": 1500}, "after": {"frequency_mhz": 1500 - p50}},
                       warnings=["same note"])


def test_repeats_combine_medians_of_processes_and_flag_spread():
    from device_bench.repeats import combine, with_processes
    steady = combine([with_processes(_proc(v)) for v in (10.0, 10.2, 10.1)])
    assert steady.latency_ms["p50"] == 10.1 and steady.latency_ms["p90"] == pytest.approx(20.2)
    assert steady.latency_ms["count"] == 30 and steady.repeat == 3 and len(steady.processes) == 3
    assert steady.init_ms == 101.0 and steady.ceiling == {"macs_per_s": 110.2}  # the best process's ceiling
    assert steady.latency_spread == {"p50_min": 10.0, "p50_max": 10.2, "relative": pytest.approx(0.2 / 10.1),
                                     "processes": 3}
    assert steady.warnings == ["same note"] and steady.clock == {"before": {"frequency_mhz": 1500},
                                                                 "after": {"frequency_mhz": 1489.9}}
    bimodal = combine([with_processes(_proc(v)) for v in (10.1, 12.3, 10.2, 12.2)]
                      + [BenchResult(model="m", error="crashed")])
    assert bimodal.latency_ms["p50"] == pytest.approx((10.2 + 12.2) / 2)
    assert any("spread 19.6% (10.1-12.3 ms over 4 processes), above 5%" in w for w in bimodal.warnings)
    assert any("1 of 5 processes failed (first: crashed)" in w for w in bimodal.warnings)
    absent = BenchResult(model="m", unavailable="no GPU")
    assert combine([absent]) is absent and absent.ok and absent.to_dict()["unavailable"] == "no GPU"


def test_clock_from_sysfs_and_throttling_warning(tmp_path):
    """A Raspberry Pi's /sys: cpufreq per core and a thermal zone; the warning reads as the issue asks."""
    from device_bench.environment import clock, clock_drift
    for cpu, khz in ((0, "1500000"), (1, "1500000"), (2, "600000")):
        d = tmp_path / f"devices/system/cpu/cpu{cpu}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(khz + "\n")
    (tmp_path / "class/thermal/thermal_zone0").mkdir(parents=True)
    (tmp_path / "class/thermal/thermal_zone0/temp").write_text("71540\n")
    assert clock(str(tmp_path)) == {"frequency_mhz": 1500, "temperature_c": 71.54}
    assert clock(str(tmp_path / "nothing")) == {"frequency_mhz": None, "temperature_c": None}
    notes = clock_drift({"frequency_mhz": 1500, "temperature_c": 45.0}, {"frequency_mhz": 600, "temperature_c": 71.5})
    assert notes[0].startswith("throttled: 1.5 \u2192 0.6 GHz") and "45 \u2192 72 \u00b0C" in notes[1]
    assert clock_drift({"frequency_mhz": 1500}, {"frequency_mhz": 1480}) == []


def test_runtime_specs_expand_all(monkeypatch):
    from device_bench import runtime, sweep
    monkeypatch.setattr(runtime, "installed_runtimes", lambda: [("litert", "interpreter"), ("litert", "compiled"),
                                                                ("openvino", "compiled")])
    specs = sweep.runtime_specs(BenchParams(runtime="all", accelerator="all"))
    assert specs == [("litert", "interpreter", "cpu"), ("litert", "compiled", "cpu"), ("litert", "compiled", "gpu"),
                     ("litert", "compiled", "npu"), ("openvino", "compiled", "cpu"), ("openvino", "compiled", "gpu"),
                     ("openvino", "compiled", "npu")]
    assert sweep.runtime_specs(BenchParams(runtime="all", api="interpreter")) == [("litert", "interpreter", "cpu")]
    assert sweep.runtime_specs(BenchParams()) == [(None, None, "cpu")]
    monkeypatch.setattr(runtime, "installed_runtimes", lambda: [])
    with pytest.raises(EdgekitError, match="no runtime is installed"):
        sweep.runtime_specs(BenchParams(runtime="all"))


def test_sweep_interleaves_processes_round_robin_alternating(monkeypatch):
    from device_bench import sweep
    order = []

    def fake_isolated(model, params):  # the process launcher; the scheduling around it is what is tested
        order.append((model, params.threads))
        return _proc(float(len(order)))
    monkeypatch.setattr(sweep, "run_isolated", fake_isolated)
    rows = sweep.run_sweep(["a", "b"], BenchParams(), SweepSettings((1, 2), repeat=3, cooldown=0.0))
    a1, a2, b1, b2 = ("a", 1), ("a", 2), ("b", 1), ("b", 2)
    assert order == [a1, a2, b1, b2, b2, b1, a2, a1, a1, a2, b1, b2]
    assert [r.repeat for r in rows] == [3] * 4 and rows[0].sweep["order"].startswith("interleaved")
    assert [p["latency_ms"]["p50"] for p in rows[0].processes] == [1.0, 8.0, 9.0]


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


@pytest.mark.parametrize("kwargs,needle", [
    ({"runtime": "tflite-runtime", "api": "compiled"}, "tflite-runtime has no compiled API"),
    ({"runtime": "openvino", "api": "interpreter"}, "openvino has no interpreter API"),
    ({"accelerator": "gpu"}, "accelerator gpu needs --api compiled"),
    ({"runtime": "litert", "api": "interpreter", "accelerator": "npu"}, "the Interpreter API runs on the CPU")])
def test_runtime_api_accelerator_combinations_are_checked(kwargs, needle):
    with pytest.raises(EdgekitError, match=needle):
        BenchParams(**kwargs).validate()
    BenchParams(runtime="openvino", accelerator="gpu").validate()
    with pytest.raises(EdgekitError, match="repeat must be at least 1"):
        SweepSettings((1,), repeat=0).validate()


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
    ({"models": [{"name": "squeezenet1_1"}], "runtimes": ["onnx"]}, "'runtimes' takes litert, tflite-runtime"),
    ({"models": [{"name": "squeezenet1_1"}], "runtimes": ["openvino:interpreter"]}, "openvino has no 'interpreter'"),
    ({"models": [{"name": "squeezenet1_1"}], "repeat": 0}, "'repeat' must be a positive integer"),
])
def test_study_config_is_checked_before_any_work(config, needle):
    from edgekit.study.config import Study
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


def _steps(*figures):
    return [{"step": i, "top1": t, "drop_points": round(100 * (0.95 - t), 2), "latency_ms": ms}
            for i, (t, ms) in enumerate(figures)]


@pytest.mark.parametrize("limit", [True, False])
def test_mixed_precision_stops_when_slower_than_fp32(limit):
    from converters.mixed_precision import _choose, _stop, latency_limited
    from converters.pipeline import ConvertSettings
    s = ConvertSettings(recover_accuracy=1.0, latency_limit=limit)
    fp32 = {"top1": 0.95, "latency_ms": 10.0}
    steps = _steps((0.80, 5.0), (0.90, 8.0), (0.945, 11.0))  # the last one is within bounds but slower than fp32
    assert not latency_limited(steps[:2], fp32, limit) and latency_limited(steps, fp32, limit) == limit
    if limit:
        assert "slower than fp32" in _stop(steps, fp32, s) and _choose(steps, fp32, s)["step"] == 1
    else:
        assert _stop(steps, fp32, s) == "top-1 within bounds" and _choose(steps, fp32, s)["step"] == 2
    slow_int8 = _steps((0.80, 12.0), (0.945, 14.0))  # int8 slower than fp32 here: latency cannot guide the search
    assert not latency_limited(slow_int8, fp32, limit) and _choose(slow_int8, fp32, s)["step"] == 1
    assert _stop(_steps((0.80, 5.0)), fp32, s) is None


def test_settings_builds_and_folders():
    from converters.pipeline import ConvertSettings
    both = ConvertSettings(precisions=["fp32", "int8", "int16x8"], quantizers=["tflite", "litert"], outdir="o")
    assert both.builds() == [("fp32", None), ("int8", "tflite"), ("int8", "litert"), ("int16x8", "litert")]
    assert [both.folder("m", p, q) for p, q in both.builds()] == ["o/m_fp32", "o/m_int8", "o/m_int8_litert",
                                                                  "o/m_int16x8"]
    assert "quantizer" not in both.hashed("int8", "tflite") and both.hashed("int8", "litert")["quantizer"] == "litert"
    with pytest.raises(EdgekitError, match="LiteRT quantizer only"):
        ConvertSettings(precisions=["int16x8"]).builds()
    from device_bench.records import Bundle, ConvertResult
    r = ConvertResult("m", {}, [Bundle("int8", "a", quantizer="tflite"), Bundle("int8", "b", quantizer="litert"),
                                Bundle("int16x8", "c", quantizer="litert")])
    assert list(r) == ["int8", "int8_litert", "int16x8"] and r["int8_litert"].path == "b"


def test_macs_counted_in_the_flatbuffer():
    from converters.tflite_graph import Graph, Op, op_macs
    t = lambda shape: {"name": "", "shape": shape, "type": "FLOAT32", "constant": False}  # noqa: E731
    g = Graph(tensors=[t([1, 8, 8, 3]), t([16, 3, 3, 3]), t([1, 8, 8, 16]), t([16, 3, 3, 1]), t([1, 1, 3, 16 * 2]),
                       t([1, 4, 4, 32]), t([10, 64]), t([2, 10])], ops=[], inputs=[0], outputs=[7],
              has_signature=True)
    assert op_macs(Op(0, "CONV_2D", [0, 1], [2]), g) == 8 * 8 * 16 * 3 * 3 * 3
    assert op_macs(Op(1, "DEPTHWISE_CONV_2D", [2, 4], [5]), g) == 4 * 4 * 32 * 1 * 3
    assert op_macs(Op(2, "FULLY_CONNECTED", [5, 6], [7]), g) == 2 * 10 * 64
    assert op_macs(Op(3, "ADD", [2, 2], [2]), g) == 0


def test_channel_weighted_quant_snr_sees_an_outlier_channel():
    """A huge channel sets the scale and crushes the others; weighted by how the next layer reads each
    channel, the loss shows, where the plain tensor SNR looks fine."""
    from converters.layer_errors import weighted_snr_db
    x = np.random.default_rng(0).uniform(0, 1, (1000, 8)).astype(np.float32)
    x[:, 0] *= 1000.0
    scale = x.max() / 255
    noise, power = np.square(np.round(x / scale) * scale - x).sum(0), np.square(x).sum(0)
    w = np.ones(8)
    w[0] = 1e-6  # the next layer divides the outlier channel by 1000
    assert weighted_snr_db(power, noise, [None]) > 40  # the plain tensor SNR looks fine
    assert weighted_snr_db(power, noise, [None, w]) < 10  # the worst reader sees the crushed channels


def test_inference_precision_notes_name_runtimes_that_lower_precision():
    from device_bench.views import inference_precision_notes
    ov = {"name": "openvino", "version": "2026.4.1", "api": "compiled", "accelerator": "cpu",
          "inference_precision": "bfloat16"}
    lines = inference_precision_notes([ov, dict(ov), {"name": "litert", "version": "2.3.0", "api": "interpreter",
                                                      "accelerator": "cpu"}, None])
    assert lines == ["openvino 2026.4.1 compiled/cpu computes float ops in bfloat16 (its own default on this CPU): "
                     "its fp32 figures are not float32 arithmetic, so compare accuracy measured in that runtime"]
    assert inference_precision_notes([dict(ov, inference_precision="f32")]) == []


@pytest.mark.parametrize("threads", [0, "1,x", [1, "a"]])
def test_api_threads_out_of_range_is_an_edgekit_error(threads):
    import edgekit
    with pytest.raises(edgekit.EdgekitError, match="threads must be"):
        edgekit.benchmark("model.tflite", threads=threads)
