"""Android phones over adb: the benchmark_model report parser on real public transcripts, and the adb target
driven through the CLI against a stand-in adb (no phone here).

The transcripts in tests/data/benchmark_model/ are copied from public posts; sources.json names each one's
address and the binary that printed it.
"""

import json
from pathlib import Path

import pytest

from device_bench.benchmark_model_parse import parse
from device_bench.errors import EdgekitError

DATA = Path(__file__).parent / "data" / "benchmark_model"
SOURCES = json.loads((DATA / "sources.json").read_text())
TRANSCRIPTS = sorted(p.name for p in DATA.glob("*.txt"))


def test_every_transcript_names_its_source():
    assert len(TRANSCRIPTS) >= 6
    for name in TRANSCRIPTS:
        assert SOURCES[name]["url"].startswith("https://") and SOURCES[name]["binary"], name


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcript_parses_and_reports_coverage(name):
    t = parse((DATA / name).read_text(), name)
    print(f"{name}: {t.recognised}/{t.present} lines recognised ({t.coverage:.0%}); not understood: {t.unrecognised}")
    assert t.runs is not None and t.runs.count > 0
    assert t.coverage >= 0.9, t.unrecognised


def test_figures_of_the_newest_format():
    """INFO: prefixes, scientific notation, p5/median/p95, the new memory line."""
    t = parse((DATA / "ti_am62x_cpu_percentiles_tf2.20.txt").read_text())
    assert (t.init_us, t.first_us, t.warmup_avg_us, t.inference_avg_us) == (5579, 1357602, 1.3576e6, 1.24027e6)
    ms = t.runs.to_ms()
    assert ms["count"] == 50 and ms["mean"] == pytest.approx(1240.27) and ms["p50"] == pytest.approx(1239.807)
    assert ms["p5"] == pytest.approx(1238.753) and ms["p95"] == pytest.approx(1247.415)
    assert t.warmup.count == 1 and t.warmup.values["median"] == 1357602
    assert t.memory_mb == {"init": 6.36328, "overall": 109.832, "format": "delta from start"}


def test_older_formats():
    old = parse((DATA / "android_cpu_peak_memory_tf2.4.txt").read_text())
    assert old.memory_mb == {"init": 4.92969, "overall": 138.809, "format": "peak"}
    assert old.warmup is None and old.runs.count == 50 and "p50" not in old.runs.to_ms()
    riscv = parse((DATA / "riscv64_cpu_op_profile_tf2.8.txt").read_text())
    assert riscv.inference_avg_us == 2.95034e6 and riscv.warmup.values == {"curr": 3512391}


def test_op_profile_rows_by_header_name():
    riscv = parse((DATA / "riscv64_cpu_op_profile_tf2.8.txt").read_text())
    assert len(riscv.ops) == 31  # the run-order table of the regular runs, not the top-10 or the init tables
    first = riscv.ops[0]
    assert (first.node_type, first.avg_ms, first.share) == ("CONV_2D", 60.957, pytest.approx(0.02066))
    assert first.name == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"
    nnapi = parse((DATA / "android_nnapi_op_profile_tf2.4.txt").read_text())
    assert [o.node_type for o in nnapi.ops].count("TfLiteNnapiDelegate") == 3
    assert nnapi.ops[6].name == "[model/tf.nn.silu_16/mul, model/tf.nn.silu_26/mul, model/tf.nn.silu_35/mul]:231"
    assert nnapi.runs.count == 50 and nnapi.runs.values["avg"] == 158715  # only the profiler's summary was printed


def test_a_table_whose_columns_differ():
    """A build without the [start] column (and spaces instead of tabs) is read by the header's names."""
    text = ("Operator-wise Profiling Info for Regular Benchmark Runs:\n"
            "============================== Run Order ==============================\n"
            "  [node type]  [first]  [avg ms]  [%]  [cdf%]  [mem KB]  [times called]  [Name]\n"
            "  FULLY_CONNECTED  0.120  0.110  55.000%  55.000%  0.000  1  [dense one]:0\n"
            "Timings (microseconds): count=10 first=300 curr=200 min=190 max=300 avg=200 std=30\n")
    t = parse(text)
    assert [(o.node_type, o.avg_ms, o.share, o.name) for o in t.ops] == [("FULLY_CONNECTED", 0.11, 0.55, "[dense one]:0")]


def test_delegation_share_and_partial_warning():
    # The line as the runtime prints it (quoted in https://discuss.ai.google.dev/t/27507), inside a report.
    report = (DATA / "android_cpu_peak_memory_tf2.4.txt").read_text()
    line = "Replacing 29 out of 65 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 3 partitions for the whole graph."
    t = parse(f"INFO: Created TensorFlow Lite delegate for GPU.\nVERBOSE: {line}\n{report}")
    assert (t.delegate, t.delegated_nodes, t.total_nodes, t.fully_delegated) == ("TfLiteGpuDelegateV2", 29, 65, False)
    assert t.warnings == ["partial delegation: 29 of 65 nodes on TfLiteGpuDelegateV2, the rest on the CPU"]
    gpu = parse((DATA / "android_gpu_tf_issue43541.txt").read_text())
    assert (gpu.delegate, gpu.fully_delegated, gpu.warnings) == ("GPU", True, [])
    xnn = parse((DATA / "ti_am62x_xnnpack_partial_tf2.20.txt").read_text())
    assert xnn.warnings and "partially executed" in xnn.warnings[0]


def test_periodic_memory_line():
    report = (DATA / "ti_am62x_cpu_percentiles_tf2.20.txt").read_text()
    t = parse(report + "INFO: Overall peak memory footprint (MB) via periodic monitoring: 93.2383\n")
    assert t.memory_mb["peak_polled"] == 93.2383 and t.coverage == 1.0


def test_unparseable_and_failed_transcripts_are_one_line():
    with pytest.raises(EdgekitError, match=r"first line not understood: 'sh: benchmark_model: not found'"):
        parse("sh: benchmark_model: not found\n", "phone")
    failed = ("INFO: Created TensorFlow Lite delegate for NNAPI.\n"
              "ERROR: NN API returned error ANEURALNETWORKS_BAD_DATA at line 1068 while adding operation.\n"
              "ERROR: Restored original execution plan after delegate application failure.\n"
              "Failed to apply NNAPI delegate.\nBenchmarking failed.\n")
    with pytest.raises(EdgekitError, match="benchmark_model failed: NN API returned error") as e:
        parse(failed)
    assert "\n" not in str(e.value)
