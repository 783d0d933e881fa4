"""One bundle, every runtime: a trained digits bundle benchmarked and classified on every runtime installed
here (LiteRT's Interpreter and CompiledModel, OpenVINO from the extra, tflite-runtime from its own venv),
with the same top-1 across runtimes, every row complete, and absent accelerators reported as rows."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

QUICK = ["--runs", "3", "--min-secs", "0", "--warmup-runs", "1", "--warmup-secs", "0"]
MODEL = "squeezenet1_1"
PAIRS = [("litert", "interpreter"), ("litert", "compiled"), ("openvino", "compiled")]


def tfrt_python():
    """The tflite-runtime venv that `make test` creates, or None."""
    py = Path(os.environ.get("EDGEKIT_TFLITE_RUNTIME_PYTHON", ROOT / ".venv-tflite-runtime" / "bin" / "python"))
    return str(py) if py.exists() else None


def tfrt(args):
    """python -m device_bench ARGS under tflite-runtime 2.14 (NumPy 1.x): a device with only that runtime."""
    proc = subprocess.run([tfrt_python(), "-m", "device_bench", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_openvino_extra_is_installed():
    """CI installs the openvino extra, so the shoot-out below covers OpenVINO rather than skipping it."""
    from device_bench.runtime import installed_runtimes
    assert set(PAIRS) <= set(installed_runtimes())


def assert_complete(row):
    """A measured row: runtime named in full, median-of-processes figures, spread, ceiling, clock."""
    assert set(row["runtime"]) >= {"name", "version", "api", "accelerator"} and all(
        row["runtime"][k] for k in ("name", "version", "api", "accelerator"))
    assert "error" not in row and "unavailable" not in row, row.get("error") or row.get("unavailable")
    lat = row["latency_ms"]
    assert lat["min"] <= lat["p50"] <= lat["max"] and lat["count"] == sum(p["latency_ms"]["count"]
                                                                         for p in row["processes"])
    assert row["repeat"] == len(row["processes"]) and row["latency_spread"]["processes"] == row["repeat"]
    assert row["latency_spread"]["p50_min"] <= lat["p50"] <= row["latency_spread"]["p50_max"]
    for key in ("init_ms", "first_ms", "peak_rss_mb", "macs", "params", "model_size_bytes", "precision"):
        assert row[key], key
    assert row["ceiling"]["macs_per_s"] > 0 and row["ceiling"]["kernel"].startswith("1x1 conv")
    assert set(row["achieved"]) == {"macs_per_s", "fraction_of_ceiling", "fraction_of_nominal"}
    assert row["achieved"]["fraction_of_ceiling"] > 0
    assert set(row["clock"]) == {"before", "after"} and row["sweep"]["order"].startswith("interleaved")


def test_every_runtime_benchmarks_the_bundle(invoke, digit_models):
    bundles = digit_models[MODEL]["bundles"]
    result = invoke("bench", bundles["fp32"], bundles["int8"], "--runtime", "all", "--accelerator", "all",
                    "--repeat", "2", *QUICK, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    specs = [(r["precision"], r["runtime"]["name"], r["runtime"]["api"], r["runtime"]["accelerator"]) for r in rows]
    per_bundle = [("litert", "interpreter", "cpu")] + [(r, "compiled", a) for r in ("litert", "openvino")
                                                         for a in ("cpu", "gpu", "npu")]
    assert specs == [(p, *s) for p in ("fp32", "int8") for s in per_bundle]
    for r in rows:
        if r["runtime"]["accelerator"] == "cpu":
            assert_complete(r)
        else:  # a GPU or NPU is there (a full row) or it is not (a row that says so), never a failure
            assert "error" not in r
            if "unavailable" in r:
                assert r["runtime"]["accelerator"].upper() in r["unavailable"] and "latency_ms" not in r
            else:
                assert_complete(r)
    ov = [r for r in rows if r["runtime"]["name"] == "openvino" and "latency_ms" in r]
    assert all(r["runtime"]["inference_precision"] for r in ov)  # OpenVINO may compute fp32 in bf16: said
    table = invoke("bench", bundles["int8"], "--runtime", "all", "--repeat", "1", *QUICK)
    assert "openvino" in table.stdout and "compiled/cpu" in table.stdout and "1 fresh process(es)" in table.stdout
    lowered = {r["runtime"]["inference_precision"] for r in ov} - {"f32", "float32"}  # bfloat16 on AVX512_BF16
    assert all(f"computes float ops in {p}" in table.stdout for p in lowered)
    assert lowered or "computes float ops" not in table.stdout


def test_tflite_runtime_rows_are_complete(digit_models):
    if not tfrt_python():
        pytest.skip("tflite-runtime venv not found: `make test` creates it")
    bundles = digit_models[MODEL]["bundles"]
    rows = tfrt(["bench", bundles["fp32"], bundles["int8"], "--runtime", "all", "--repeat", "2", *QUICK, "--json"])
    assert [(r["precision"], r["runtime"]["name"]) for r in rows] == [("fp32", "tflite-runtime"),
                                                                      ("int8", "tflite-runtime")]
    for r in rows:
        assert_complete(r)


def top1_per_image(items):
    return {os.path.relpath(i["image"], os.path.dirname(os.path.dirname(i["image"]))): i["predictions"][0]["index"]
            for i in items}


def test_same_top1_across_runtimes(invoke, digits, digit_models):
    """Each runtime classifies the 360 held-out digits; every runtime agrees with LiteRT's Interpreter on the
    top-1 of at least 99% of them, for the fp32 and the int8 build."""
    bundles = digit_models[MODEL]["bundles"]
    for precision in ("fp32", "int8"):
        seen = {}
        for runtime, api in PAIRS:
            result = invoke("classify", bundles[precision], digits["test"], "--top-k", "1", "--runtime", runtime,
                            "--api", api, "--json")
            assert result.exit_code == 0, result.output
            seen[f"{runtime} {api}"] = top1_per_image(json.loads(result.stdout))
        if tfrt_python():
            seen["tflite-runtime"] = top1_per_image(tfrt(["classify", bundles[precision], digits["test"], "--top-k",
                                                          "1", "--json"]))
        base = seen.pop("litert interpreter")
        assert len(base) == 360
        for name, other in seen.items():
            assert other.keys() == base.keys()
            agree = sum(other[k] == v for k, v in base.items()) / len(base)
            print(f"{precision} {name}: top-1 agreement with LiteRT Interpreter {agree:.2%}")
            # the same model: other kernels (OpenVINO's own int8 rounding, bf16 on some CPUs) flip only near
            # ties, about 1% as the seed has it; a runtime fed other pixels or scales agrees on ~10%
            assert agree >= 0.95, (precision, name, agree)


def test_evaluate_in_each_runtime(invoke, digits, digit_models):
    bundle = digit_models[MODEL]["bundles"]["int8"]
    tops = {}
    for runtime, api in PAIRS:
        result = invoke("evaluate", bundle, digits["test"], "--runtime", runtime, "--api", api, "--json")
        assert result.exit_code == 0, result.output
        tops[(runtime, api)] = json.loads(result.stdout)["top1"]
    # far above chance in each, and the runtimes within a few images of each other (ties, see above)
    assert min(tops.values()) >= 0.6 and max(tops.values()) - min(tops.values()) <= 0.05
    bad = invoke("evaluate", bundle, digits["test"], "--runtime", "tflite-runtime", "--api", "compiled")
    assert bad.exit_code == 1 and "tflite-runtime has no compiled API" in bad.output
    gpu = invoke("classify", bundle, digits["test"] / "3", "--runtime", "litert", "--accelerator", "gpu")
    assert gpu.exit_code == 1 and "--api compiled" in gpu.output


def test_api_benchmark_takes_runtime_and_repeat(digit_models):
    import edgekit
    from device_bench.options import BenchParams
    rows = edgekit.benchmark(digit_models[MODEL]["bundles"]["int8"], runtime="openvino", repeat=2, num_runs=2,
                             min_secs=0, params=BenchParams(warmup_min_secs=0, ceiling=False))
    assert len(rows) == 1 and rows[0].runtime["name"] == "openvino" and rows[0].repeat == 2
    assert rows[0].ceiling is None and len(rows[0].processes) == 2
    assert edgekit.BenchResult.from_dict(rows[0].to_dict()) == rows[0]


def test_absent_accelerator_is_one_line(blocked_env, digits, digit_models):
    """Asking classify for an accelerator this machine lacks gives one line, without LiteRT's teardown log
    (it logs each accelerator it destroys when the failed compile's objects are freed, and at exit)."""
    from conftest import run_device
    bundle = digit_models[MODEL]["bundles"]["int8"]
    for accelerator in ("gpu", "npu"):
        proc = run_device(["classify", bundle, digits["test"] / "3", "--api", "compiled", "--accelerator",
                           accelerator], blocked_env)
        if proc.returncode == 0:
            continue  # this machine has one: nothing to check
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: LiteRT {accelerator.upper()} not available"), lines
