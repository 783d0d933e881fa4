"""`edgekit recommend` on results files written here with known figures: the choice under each objective,
the runners-up, the reproducing command, and "cannot decide" when the data cannot tell."""

import json

import pytest

LITERT = {"name": "litert", "version": "2.3.0", "api": "interpreter", "accelerator": "cpu"}
COMPILED = dict(LITERT, api="compiled")
OPENVINO = {"name": "openvino", "version": "2026.4.1", "api": "compiled", "accelerator": "cpu"}
ENV = {"hostname": "bench-host", "cpu": "AMD EPYC", "arch": "x86_64", "cores": 2, "vector_bits": 256}


def bench(runtime, p50, low, high, processes=3, threads=1, rss=60.0):
    return {"threads": threads, "runtime": runtime, "init_ms": 5.0, "peak_rss_mb": rss,
            "latency_ms": {"p50": p50, "p90": p50 * 1.1, "count": 50 * processes},
            "latency_spread": {"p50_min": low, "p50_max": high, "relative": (high - low) / p50,
                               "processes": processes}}


def row(precision, benches, accuracy=None, model="digits_net"):
    r = {"model": model, "precision": precision, "bundle": f"/b/{model}_{precision}", "macs": 3e8,
         "file_size": 4_000_000 if precision == "fp32" else 1_000_000, "bench": benches}
    if accuracy is not None:
        r["accuracy"] = [{"runtime": b["runtime"], "top1": top1} for b, top1 in zip(benches, accuracy)]
        r["top1"] = accuracy[0]
    return r


def write(tmp_path, rows, name="results.json", env=ENV):
    path = tmp_path / name
    path.write_text(json.dumps({"format": 1, "environment": env, "meta": {"config": {"evaluate": "/data/test"}},
                                "rows": rows}))
    return path


@pytest.fixture
def shootout(tmp_path):
    """fp32 in LiteRT at 10 ms (top-1 95.0%); int8 in OpenVINO at 6 ms (94.8%, within 0.5 points); int8 in LiteRT
    at 5 ms (93.0%, below the floor); int8 in LiteRT's CompiledModel at 8 ms (94.9%)."""
    return write(tmp_path, [
        row("fp32", [bench(LITERT, 10.0, 9.9, 10.2, rss=90.0)], [0.950]),
        row("int8", [bench(OPENVINO, 6.0, 5.9, 6.1, rss=120.0), bench(LITERT, 5.0, 4.9, 5.1),
                     bench(COMPILED, 8.0, 7.9, 8.1)], [0.948, 0.930, 0.949]),
    ])


def test_fastest_within_the_accuracy_floor(invoke, shootout):
    result = invoke("recommend", shootout)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "recommended: openvino 2026.4.1 compiled/cpu, int8, 1 thread: p50 6 ms" in out
    assert "the fastest of 3 build(s) within 0.5 points of the best top-1 (95.00%)" in out
    assert "1.33x as fast as the runner-up" in out and "CANNOT DECIDE" not in out
    assert "left out: 1 build(s) more than 0.5 points below the best top-1" in out
    runners = out.split("runners-up:")[1].split("reproduce:")[0]
    assert runners.index("compiled/cpu, int8") < runners.index("interpreter/cpu, fp32")
    assert "reproduce: edgekit bench /b/digits_net_int8 --runtime openvino --api compiled --threads 1 --repeat 3" in out
    assert "edgekit evaluate /b/digits_net_int8 /data/test --runtime openvino --api compiled" in out


def test_a_looser_floor_and_a_memory_limit_change_the_choice(invoke, shootout):
    loose = invoke("recommend", shootout, "--max-top1-drop", "3", "--json")
    winner = json.loads(loose.stdout)["items"][0]["winner"]
    assert (winner["runtime"]["name"], winner["runtime"]["api"], winner["precision"]) == ("litert", "interpreter", "int8")
    lean = invoke("recommend", shootout, "--max-memory-mb", "100", "--json")
    rec = json.loads(lean.stdout)["items"][0]
    assert rec["winner"]["runtime"]["api"] == "compiled" and rec["winner"]["runtime"]["name"] == "litert"
    assert "1 build(s) above 100 MB peak RSS" in rec["left_out"]


def test_most_accurate_within_a_latency_budget(invoke, shootout):
    result = invoke("recommend", shootout, "--max-latency-ms", "9", "--max-top1-drop", "3")
    assert result.exit_code == 0, result.output
    assert "recommended: litert 2.3.0 compiled/cpu, int8, 1 thread: p50 8 ms" in result.output  # 94.9% beats 94.8%
    assert "the most accurate of 3 build(s) within 9 ms" in result.output
    none = invoke("recommend", shootout, "--max-latency-ms", "4")
    assert "CANNOT DECIDE: no build's median latency fits 4 ms" in none.output and "recommended:" not in none.output


def test_cannot_decide_when_process_medians_overlap(invoke, tmp_path):
    path = write(tmp_path, [row("int8", [bench(OPENVINO, 6.0, 5.7, 6.6), bench(COMPILED, 6.2, 5.9, 6.4)],
                                [0.95, 0.95])])
    result = invoke("recommend", path)
    assert result.exit_code == 0
    assert "fastest measured (not a recommendation): openvino" in result.output
    assert "CANNOT DECIDE: the process medians of openvino 2026.4.1 compiled/cpu int8 1t (5.7-6.6 ms) and " \
           "litert 2.3.0 compiled/cpu int8 1t (5.9-6.4 ms) overlap" in result.output
    single = write(tmp_path, [row("int8", [bench(OPENVINO, 6.0, 6.0, 6.0, processes=1),
                                           bench(COMPILED, 9.0, 9.0, 9.0, processes=1)], [0.95, 0.95])], "one.json")
    assert "ran in a single process, so their spread is unknown" in invoke("recommend", single).output


def test_cannot_decide_without_accuracy(invoke, tmp_path):
    """`edgekit bench --json` records hold latency only: recommend names the fastest, but will not call it a choice."""
    records = [{"model": "m", "precision": p, "path": f"/b/m_{p}", "macs": 3e8, "environment": ENV,
                **bench(OPENVINO if p == "int8" else LITERT, p50, p50 - 0.1, p50 + 0.1)}
               for p, p50 in (("fp32", 9.0), ("int8", 6.0))]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(records))
    result = invoke("recommend", path, "--json")
    rec = json.loads(result.stdout)["items"][0]
    assert rec["decided"] is False and rec["winner"]["precision"] == "int8"
    assert "no accuracy was measured" in rec["undecided"][0]


def test_device_filter_and_api(tmp_path, shootout, invoke):
    import edgekit
    pi = write(tmp_path, [row("int8", [bench(LITERT, 40.0, 39.0, 41.0)], [0.94])], "pi.json",
               env=dict(ENV, hostname="pi", cpu="Cortex-A72", arch="aarch64", board="Raspberry Pi 4"))
    both = edgekit.recommend([shootout, pi])
    assert isinstance(both, edgekit.Recommendations) and [r.device for r in both] == ["AMD EPYC, 2 cores",
                                                                                     "Raspberry Pi 4, 2 cores"]
    only = edgekit.recommend([shootout, pi], device="raspberry")
    assert len(only) == 1 and only.items[0].decided and only.items[0].winner["p50_ms"] == 40.0
    assert isinstance(only.items[0], edgekit.Recommendation) and only.to_dict()["items"][0]["decided"]
    bad = invoke("recommend", shootout, "--device", "jetson")
    assert bad.exit_code == 1 and "no measured build to choose from on a device matching 'jetson'" in bad.output
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    out = invoke("recommend", broken)
    assert out.exit_code == 1 and out.output.startswith("Error: ") and "broken.json" in out.output
