"""device_bench's benchmark: in a child process where TensorFlow, Keras and click cannot be imported."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import SAMPLES, run_device

LATENCY_KEYS = {"min", "max", "mean", "std", "p5", "p50", "p90", "p95", "p99", "count"}
QUICK = ["--runs", "3", "--min-secs", "0", "--warmup-runs", "1", "--warmup-secs", "0", "--repeat", "1"]


def test_bench_fp32_and_int8_sweep_json_and_csv(tiny_bundles, blocked_env, tmp_path):
    fp32, int8 = tiny_bundles[("mobilenet_v2", "fp32")], tiny_bundles[("mobilenet_v2", "int8")]
    out_csv = tmp_path / "r.csv"
    proc = run_device(["bench", fp32, int8, "--threads", "1,2", *QUICK, "--json", "--csv", out_csv], blocked_env)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["precision"], r["threads"]) for r in rows] == [("fp32", 1), ("fp32", 2), ("int8", 1), ("int8", 2)]
    for r in rows:
        assert r["runtime"]["name"] == "litert" and r["runtime"]["version"]
        assert r["xnnpack"] is True and r["init_ms"] > 0 and r["first_ms"] > 0
        assert LATENCY_KEYS <= set(r["latency_ms"]) and r["latency_ms"]["count"] >= 3
        assert r["latency_ms"]["min"] <= r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
        assert r["peak_rss_mb"] > 10 and r["memory_mb"]["rss_after_init"] >= r["memory_mb"]["rss_before_load"]
        assert 0 < r["delegated_nodes"] <= r["total_nodes"]
        env = r["environment"]
        assert env["arch"] and env["cores"] and env["python"] and env["numpy"] and env["emulated"] is False
    assert rows[2]["input_dtype"] == "uint8"
    with open(out_csv) as f:
        table = list(csv.DictReader(f))
    assert [int(t["threads"]) for t in table] == [1, 2, 1, 2]
    assert float(table[0]["latency_ms.p50"]) == pytest.approx(rows[0]["latency_ms"]["p50"])


def test_no_xnnpack_takes_no_nodes_and_table_output(tiny_bundles, blocked_env):
    proc = run_device(["bench", tiny_bundles[("squeezenet1_1", "fp32")], "--no-xnnpack", *QUICK, "--json",
                       "--poll-memory"], blocked_env)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)[0]
    assert row["xnnpack"] is False and row["delegated_nodes"] == 0
    assert row["memory_mb"]["peak_rss_polled_50ms"] > 0 and "may affect timing" in row["memory_mb"]["note"]
    table = run_device(["bench", tiny_bundles[("squeezenet1_1", "fp32")], *QUICK], blocked_env)
    assert table.returncode == 0 and "p50 ms" in table.stdout and "squeezenet1_1_64_fp32" in table.stdout


def test_inputs_from_npy_and_image(tiny_bundles, blocked_env, tmp_path):
    bundle = tiny_bundles[("mobilenet_v1", "int8")]
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((1, 64, 64, 3), np.float32))
    ok = run_device(["bench", bundle, "--input", good, *QUICK, "--json"], blocked_env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    img = run_device(["bench", bundle, "--input", SAMPLES / "cat.jpg", *QUICK, "--json"], blocked_env)
    assert img.returncode == 0 and json.loads(img.stdout)[0]["input"].endswith("cat.jpg")
    bad_shape = tmp_path / "shape.npy"
    np.save(bad_shape, np.zeros((1, 32, 32, 3), np.float32))
    bad_type = tmp_path / "type.npy"
    np.save(bad_type, np.zeros((1, 64, 64, 3), np.int64))
    for path, needle in ((bad_shape, "shape [1, 32, 32, 3]"), (bad_type, "dtype int64")):
        proc = run_device(["bench", bundle, "--input", path, *QUICK, "--json"], blocked_env)
        row = json.loads(proc.stdout)[0]
        assert proc.returncode == 1 and needle in row["error"] and str(path) in row["error"]


def test_bad_models_become_error_rows_and_the_sweep_goes_on(tiny_bundles, blocked_env, tmp_path):
    good = tiny_bundles[("squeezenet1_1", "fp32")] / "model.tflite"
    data = good.read_bytes()
    (tmp_path / "text.tflite").write_text("hello, not a model")
    (tmp_path / "truncated.tflite").write_bytes(data[: len(data) // 3])
    flipped = bytearray(data)
    flipped[4:8] = b"XXXX"
    (tmp_path / "flipped.tflite").write_bytes(bytes(flipped))
    models = [tmp_path / "missing.tflite", tmp_path / "text.tflite", tmp_path / "truncated.tflite",
              tmp_path / "flipped.tflite", good]
    proc = run_device(["bench", *models, *QUICK, "--json"], blocked_env)
    rows = json.loads(proc.stdout)
    assert proc.returncode == 1 and len(rows) == 5
    assert "no such file" in rows[0]["error"]
    for row, name in zip(rows[1:4], ("text", "truncated", "flipped")):
        assert f"{name}.tflite" in row["error"] and "Traceback" not in row["error"]
    assert "error" not in rows[4] and rows[4]["latency_ms"]["count"] >= 3


def test_runtime_crash_is_an_error_row(tiny_bundles, blocked_env, tmp_path):
    """A segfault inside the runtime process (here from a faulty delegate library) ends only its own row."""
    if not shutil.which("cc"):
        pytest.skip("no C compiler to build the crashing delegate")
    src = tmp_path / "crash.c"
    src.write_text("void *tflite_plugin_create_delegate(char **k, char **v, unsigned long n, void (*e)(const char *))"
                   "{ *(volatile int *)0 = 1; return 0; }\nvoid tflite_plugin_destroy_delegate(void *d) {}\n")
    lib = tmp_path / "libcrash.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, src], check=True)
    bundle = tiny_bundles[("squeezenet1_1", "int8")]
    proc = run_device(["bench", bundle, "--delegate", lib, *QUICK, "--json", "--threads", "1,2"], blocked_env)
    rows = json.loads(proc.stdout)
    assert len(rows) == 2 and all("crashed (SIGSEGV)" in r["error"] for r in rows)
    proc = run_device(["bench", bundle, "--delegate", tmp_path / "nope.so", *QUICK, "--json"], blocked_env)
    assert "nope.so will not load" in json.loads(proc.stdout)[0]["error"]


def test_runtime_not_installed_names_the_package(tiny_bundles, blocked_env):
    proc = run_device(["bench", tiny_bundles[("squeezenet1_1", "fp32")], "--runtime", "tflite-runtime", *QUICK,
                       "--json"], blocked_env)
    try:
        import tflite_runtime  # noqa: F401
        pytest.skip("tflite-runtime is installed here")
    except ImportError:
        pass
    assert proc.returncode == 1
    error = json.loads(proc.stdout)[0]["error"]
    assert "runtime tflite-runtime is not installed: pip install tflite-runtime 'numpy<2'" in error


def test_zipapp_runs_with_only_numpy_and_a_runtime(invoke, tiny_bundles, tmp_path, blocked_env):
    pyz = tmp_path / "device_bench.pyz"
    result = invoke("pack-runner", "-o", pyz)
    assert result.exit_code == 0, result.output
    env = dict(blocked_env, PYTHONPATH=blocked_env["PYTHONPATH"].split(":")[0])  # the blocker, not the repo
    proc = subprocess.run([sys.executable, pyz, "bench", tiny_bundles[("mobilenet_v2", "int8")], *QUICK,
                           "--threads", "1,2", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["threads"] for r in rows] == [1, 2] and all(r["latency_ms"]["p50"] > 0 for r in rows)
    assert all(r["ceiling"]["macs_per_s"] > 0 for r in rows)  # the ceiling kernels travel inside the zipapp
    again = invoke("pack-runner", "-o", pyz)
    assert again.exit_code == 1 and "--force" in again.output


def test_edgekit_bench_cli_table_json_csv(invoke, tiny_bundles, tmp_path):
    bundle = tiny_bundles[("squeezenet1_1", "dynamic")]
    result = invoke("bench", bundle, *QUICK, "--json", "--csv", tmp_path / "b.csv")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    for key in ("model", "runtime", "threads", "xnnpack", "init_ms", "first_ms", "latency_ms", "peak_rss_mb",
                "environment"):
        assert key in row
    assert (tmp_path / "b.csv").read_text().startswith("model,")
    again = invoke("bench", bundle, *QUICK, "--csv", tmp_path / "b.csv")
    assert again.exit_code == 1 and "already exists; pass --force" in again.output
    table = invoke("bench", bundle, *QUICK)
    assert "squeezenet1_1_64_dynamic" in table.stdout and "p90 ms" in table.stdout
    swept = invoke("bench", bundle, *QUICK, "--threads", "1,2", "--cooldown", "0.2", "--json")
    assert [r["threads"] for r in json.loads(swept.stdout)] == [1, 2]
    (tmp_path / "swept.json").write_text(swept.stdout)
    assert invoke("report", tmp_path / "swept.json", "-o", tmp_path / "rep").exit_code == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Cooldown: **0.2 s** between processes" in md and "1 fresh process(es)" in md
    bad = invoke("bench", bundle, "--threads", "0")
    assert bad.exit_code == 2 and "at least 1" in bad.output
