"""`edgekit profile`: one row per operator of the graph, here (OpenVINO's counters), on a phone (benchmark_model's
op profiler, replayed by the stand-in adb) and on an Ethos-U NPU (Vela's estimate). No timing is asserted:
the rows must cover the graph's operators and each share column must sum to 1."""

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest

from converters.tflite_graph import Graph, Op, read_graph
from device_bench.benchmark_model_parse import parse
from edgekit.profiling.phone import phone_profile
from edgekit.profiling.table import graph_rows, layer_names
from edgekit.profiling.vela import vela_command
from test_adb import DATA, QUICK, elf, phone  # noqa: F401  (the stand-in phone fixture)

FAST = ["--runs", "3", "--min-secs", "0"]


def graph_ops(bundle):
    return [(op.index, op.type) for op in read_graph((Path(bundle) / "model.tflite").read_bytes()).ops]


def check_rows(profile, bundle):
    rows = profile["rows"]
    assert sorted((r["index"], r["op"]) for r in rows if r["index"] is not None) == graph_ops(bundle)
    assert sum(r["time_share"] for r in rows) == pytest.approx(1.0)
    assert sum(r["mac_share"] for r in rows) == pytest.approx(1.0)
    assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)  # worst first


@pytest.fixture
def int8(tiny_bundles):
    return tiny_bundles[("mobilenet_v2", "int8")]


def test_layer_names_come_from_tensor_names():
    name = "m_1/m_1/block_1_expand_relu_1/Relu6;m_1/m_1/block_1_expand_1/convolution"
    assert layer_names(name) == ["block_1_expand_relu_1", "block_1_expand_1"] and layer_names("tfl.quantize") == []


def test_host_profile_covers_the_graph(invoke, int8, tmp_path):
    out = tmp_path / "profile.csv"
    r = invoke("profile", int8, *FAST, "--json", "--csv", out)
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)
    check_rows(p, int8)
    assert p["source"] == "openvino" and "not LiteRT's" in p["label"] and p["end_to_end_ms"] > 0
    assert {r["layer"] for r in p["rows"]} >= {"Conv1", "predictions"}  # Keras layer names, '_1' dropped
    print(f"op sum / end-to-end p50: {p['op_sum_over_end_to_end']:.2f}")
    with open(out, newline="") as f:
        assert len(list(csv.DictReader(f))) == len(p["rows"])
    again = invoke("profile", int8, *FAST, "--csv", out)
    assert again.exit_code == 1 and again.output.strip() == f"Error: {out} already exists; pass --force to replace it"
    table = invoke("profile", int8, *FAST, "--csv", out, "--force")
    assert table.exit_code == 0 and "OpenVINO" in table.output and "op times sum to" in table.output


def test_compare_pairs_op_by_op(invoke, tiny_bundles, int8):
    """int8 against fp32 of the same model: the layers pair up, int8's QUANTIZE edges are its own."""
    fp32 = tiny_bundles[("mobilenet_v2", "fp32")]
    r = invoke("profile", int8, "--compare", fp32, *FAST, "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["compare"]
    assert sorted(x["index_a"] for x in c["rows"] if x["index_a"] is not None) == [i for i, _ in graph_ops(int8)]
    assert sorted(x["index_b"] for x in c["rows"] if x["index_b"] is not None) == [i for i, _ in graph_ops(fp32)]
    only_a = [x["op"] for x in c["rows"] if x["index_a"] is not None and x["index_b"] is None]
    assert sorted(only_a) == ["QUANTIZE", "QUANTIZE"]
    assert all(x["ms_b"] is not None for x in c["rows"] if x["index_b"] is not None)
    table = invoke("profile", int8, "--compare", fp32, *FAST)
    assert table.exit_code == 0 and "ms A" in table.output and "B / A" in table.output
    other = tiny_bundles[("squeezenet1_1", "int8")]
    bad = invoke("profile", int8, "--compare", other, *FAST)
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1, bad.output
    assert bad.output.startswith(f"Error: {other}: another graph than {int8} (only ") and "differ at op #" in bad.output


def test_missing_runtimes_name_their_extra(invoke, int8, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)
    r = invoke("profile", int8)
    assert r.exit_code == 1 and r.output.strip() == \
        "Error: the host profile needs OpenVINO: pip install 'edgekit-tflite[openvino]'"
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    r = invoke("profile", int8, "--accelerator", "ethos-u55-128")
    assert r.exit_code == 1 and r.output.strip() == \
        "Error: the Ethos-U profile needs Arm's Vela compiler: pip install 'edgekit-tflite[ethos-u]'"
    r = invoke("profile", int8, "--accelerator", "gpu")
    assert r.exit_code == 1 and "gpu, npu and nnapi are profiled on a phone (--target adb)" in r.output


def _vela():
    try:
        return vela_command()
    except Exception as e:
        pytest.skip(f"Vela not installed ({e}); `make test` installs the [ethos-u] extra")


def test_vela_estimate(invoke, tiny_bundles, int8):
    _vela()
    r = invoke("profile", int8, "--accelerator", "ethos-u55-128", "--json")
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)
    check_rows(p, int8)
    assert p["estimate"] and p["label"].startswith("estimate: Arm Vela's") and p["settings"]["cycles_total"] > 0
    assert all(x["cycles"] is not None for x in p["rows"] if x["delegated"])
    bad = invoke("profile", int8, "--accelerator", "ethos-u99-1")
    assert bad.exit_code == 1 and bad.output.startswith("Error: --accelerator ethos-u99-1: Vela does not know it; "
                                                        "it knows ethos-u55-32, ethos-u55-64, ethos-u55-128")
    fp32 = tiny_bundles[("mobilenet_v2", "fp32")]
    bad = invoke("profile", fp32, "--accelerator", "ethos-u55-128")
    assert bad.exit_code == 1 and "Vela puts none of its" in bad.output and "profile an int8 build" in bad.output


def test_vela_failure_quotes_vela(int8, tmp_path):
    """A file Vela cannot load (cut in half; edgekit's own reader refuses it before Vela sees it, so Vela's
    runner is driven directly): its reason, in one line."""
    from device_bench.errors import EdgekitError
    from edgekit.profiling.vela import run_vela
    _vela()
    data = (int8 / "model.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(EdgekitError) as e:
        run_vela(str(cut), "ethos-u55-128", str(tmp_path / "out"))
    assert str(e.value).startswith(f"{cut}: Vela cannot compile it for ethos-u55-128: ") and "\n" not in str(e.value)
    print(e.value)


def test_benchmark_model_rows_land_on_their_ops():
    """The riscv64 transcript (MobileNet V1 from TF-slim) on a graph of the same op types: each run-order row
    [tensor]:N is op N's time."""
    t = parse((DATA / "riscv64_cpu_op_profile_tf2.8.txt").read_text())
    names = ["input"] + [o.name.split("]")[0][1:] for o in t.ops]  # each op's output tensor, as the row names it
    tensors = [{"name": n, "shape": [1], "type": "FLOAT32", "constant": False} for n in names]
    ops = [Op(i, o.node_type, [i], [i + 1], macs=10 if "CONV" in o.node_type else 0) for i, o in enumerate(t.ops)]
    graph = Graph(tensors, ops, [0], [len(t.ops)], True)
    record = {"target": "adb://PHONE1", "threads": 4, "runtime": {"accelerator": "cpu"}, "latency_ms": {"p50": 2950.0}}
    p = phone_profile("mobilenet_v1.tflite", graph, graph_rows(graph), [vars(o) for o in t.ops], record)
    assert [r.index for r in p.rows] == list(range(31)) and p.notes == []
    assert p.rows[0].ms == 60.957 and p.rows[0].delegated is False
    assert p.op_ms == pytest.approx(sum(o.avg_ms for o in t.ops))


def test_profile_on_a_phone(invoke, phone, int8, monkeypatch):  # noqa: F811
    """Through the stand-in adb: the replayed table is of another model, and the profile says so."""
    monkeypatch.setenv("EDGEKIT_STANDIN_TRANSCRIPT", str(DATA / "riscv64_cpu_op_profile_tf2.8.txt"))
    r = invoke("profile", int8, "--target", "adb://PHONE1", "--benchmark-binary", phone["binary"], *FAST, "--json")
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)
    assert "--enable_op_profiling=true" in phone["log"].read_text()
    assert p["source"] == "benchmark_model" and p["end_to_end_ms"] == pytest.approx(2950.34)
    assert sorted((x["index"], x["op"]) for x in p["rows"] if x["index"] is not None) == graph_ops(int8)
    assert sum(x["index"] is None for x in p["rows"]) == 31  # the transcript's rows, matched to no op of this graph
    assert p["notes"] and "name no operator of" in p["notes"][0]
    assert sum(x["time_share"] for x in p["rows"]) == pytest.approx(1.0)


def test_quantize_report_gains_a_time_column(invoke, tiny_bundles, tmp_path):
    fp32 = tiny_bundles[("mobilenet_v2", "fp32")]
    r = invoke("quantize", fp32, "-p", "int8", "--report", "--profile", "-o", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    [b] = json.loads(r.stdout)["bundles"]
    worst = b["layer_report"]["worst"]
    assert worst and all("ms" in row and "time_share" in row for row in worst)
    assert any(row["ms"] for row in worst)  # joined by tensor name: the layers' ops were found in the profile
    from converters.layer_errors import table  # what the CLI prints of those rows, without quantizing again
    assert table(worst).splitlines()[0].split()[4:6] == ["ms", "time"]
    alone = invoke("quantize", fp32, "-p", "int8", "--profile", "-o", tmp_path, "--force")
    assert alone.exit_code == 2 and "--profile adds a time column to --report's table" in alone.output
