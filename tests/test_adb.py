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


def test_xnnpack_operators_whose_node_types_hold_spaces():
    """XNNPACK's per-operator rows (TF 2.9.1 and later) name node types with spaces; the columns are tab-separated."""
    t = parse((DATA / "arm_tc2_xnnpack_op_profile.txt").read_text())
    assert t.unrecognised == [] and len(t.ops) == 115  # the transcript's "115 nodes observed"
    first = t.ops[0]
    assert (first.node_type, first.avg_ms, first.share) == ("Convolution (NHWC, QU8) IGEMM", 0.278, pytest.approx(0.03783))
    assert first.name == "Delegate/Convolution (NHWC, QU8) IGEMM:0"
    assert [o.node_type for o in t.ops].count("Convolution (NHWC, QU8) GEMM") == 54  # as its summary by node type says
    assert t.ops[-1].name.startswith("[TFLite_Detection_PostProcess, TFLite_Detection_PostProcess:1, ")


def test_a_table_whose_columns_differ():
    """A build without the [start] column (and spaces instead of tabs) is read by the header's names."""
    text = ("Operator-wise Profiling Info for Regular Benchmark Runs:\n"
            "============================== Run Order ==============================\n"
            "  [node type]  [first]  [avg ms]  [%]  [cdf%]  [mem KB]  [times called]  [Name]\n"
            "  FULLY_CONNECTED  0.120  0.110  55.000%  55.000%  0.000  1  [dense one]:0\n"
            "Timings (microseconds): count=10 first=300 curr=200 min=190 max=300 avg=200 std=30\n")
    t = parse(text)
    assert [(o.node_type, o.avg_ms, o.share, o.name) for o in t.ops] == [("FULLY_CONNECTED", 0.11, 0.55, "[dense one]:0")]
    no_share = parse(text.replace("  [%]  [cdf%]", "").replace("  55.000%  55.000%", ""))
    assert no_share.ops[0].share is None and json.dumps([vars(o) for o in no_share.ops], allow_nan=False)


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
    both = parse(f"VERBOSE: {line}\nINFO: Explicitly applied GPU delegate, and the model graph will be partially "
                 f"executed by the delegate w/ 3 delegate kernels.\n{report}")
    assert both.warnings == ["partial delegation: 29 of 65 nodes on TfLiteGpuDelegateV2, the rest on the CPU"]  # once


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


def test_truncated_transcripts_are_one_line():
    """A run that stopped before its timed runs were reported: the warm-up's lone count= line is no result."""
    lines = (DATA / "ti_am62x_cpu_percentiles_tf2.20.txt").read_text().splitlines(keepends=True)
    timed = next(i for i, l in enumerate(lines) if "count=50" in l)
    with pytest.raises(EdgekitError, match=r"^cut: benchmark_model printed no timed runs \(no count= line for them\); "
                                           r"its last line: 'Running benchmark for at least 50 iterations") as e:
        parse("".join(lines[:timed]), "cut")
    assert "\n" not in str(e.value)
    no_count = "".join(l for l in lines if "count=" not in l)  # the summary line kept, both count= lines gone
    assert "Inference timings" in no_count
    with pytest.raises(EdgekitError, match=r"printed no timed runs .* its last line: 'Memory footprint delta"):
        parse(no_count)


def test_a_single_timed_run_is_its_own_mean():
    text = ("Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.\n"
            "count=1 curr=3000\n"
            "Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds.\n"
            "count=1 curr=2500\n")
    t = parse(text)
    assert t.warmup.count == 1 and t.runs.to_ms() == {"curr": 2.5, "mean": 2.5, "count": 1}


# The adb target, driven as a user would: `edgekit bench MODEL --target adb://SERIAL --benchmark-binary ...`.
#
# adb is a stand-in (tests/adb_standin/adb.py): a folder of this machine (or, in the board test, of the emulated
# aarch64 board, reached over ssh) plays each phone; files really travel into it and shell commands really run
# there. The phone's "benchmark_model" is a stand-in too: it checks that the
# binary was pushed, made executable and is an ELF file, then replays a recorded public transcript. So these tests
# prove the orchestration (probe, push, chmod, command line, thermal wait, pull, parse, records, repeats, cleanup,
# failures), not that a real phone runs the model or what it measures.

import csv
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys

from conftest import ROOT, board_ssh

STANDIN = ROOT / "tests" / "adb_standin"
CEILING = ROOT / "device_bench" / "data"  # two small real models (fp32, int8) that run anywhere
TRANSCRIPT = DATA / "ti_am62x_cpu_percentiles_tf2.20.txt"
QUICK = ["--runs", "5", "--min-secs", "0", "--repeat", "1", "--json"]


def elf(path, machine=183):
    """A file with the ELF header of a binary for ``machine`` (183: aarch64, 62: x86_64); nothing runs it."""
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(44))
    return path


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """A stand-in adb on PATH serving one phone, PHONE1, whose benchmark_model replays TRANSCRIPT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN / "adb.py"}" "$@"\n')
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "phones"
    for key, value in (("ROOT", root), ("DEVICES", "PHONE1:device"), ("TRANSCRIPT", TRANSCRIPT),
                       ("LOG", tmp_path / "adb.log")):
        monkeypatch.setenv(f"EDGEKIT_STANDIN_{key}", str(value))
    model = tmp_path / "tiny.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(24))  # never loaded: the replayed transcript is the output
    return {"root": root, "model": model, "binary": elf(tmp_path / "android_aarch64_benchmark_model"),
            "log": tmp_path / "adb.log"}


def left_on(phone, serial="PHONE1"):
    tmp = phone["root"] / serial / "data" / "local" / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def bench(invoke, phone, *args):
    return invoke("bench", phone["model"], "--benchmark-binary", phone["binary"], *QUICK, *args)


def test_bench_on_a_phone_gives_local_records_and_leaves_nothing(invoke, phone):
    r = bench(invoke, phone, "--target", "adb://PHONE1", "--threads", "1,4", "--repeat", "2")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["target"], x["threads"]) for x in rows] == [("adb://PHONE1", 1), ("adb://PHONE1", 4)]
    row = rows[0]
    assert row["runtime"]["name"] == "LiteRT benchmark_model" and row["runtime"]["accelerator"] == "cpu"
    assert row["latency_ms"]["p50"] == pytest.approx(1239.807) and row["init_ms"] == pytest.approx(5.579)
    assert row["repeat"] == 2 and len(row["processes"]) == 2 and row["latency_spread"]["relative"] == 0
    assert row["memory_mb"]["overall"] == 109.832 and row["clock"]["before"]["temperature_c"] == 31
    assert row["device"]["arch"] == "arm64-v8a" and row["device"]["board"] == "Stand-in Phone (PHONE1)"
    log = phone["log"].read_text()
    assert "--num_threads=4" in log and "--num_runs=5" in log and "--use_xnnpack=true" in log and "pull" in log
    assert "--enable_op_profiling" not in log and "op_profile" not in row
    assert left_on(phone) == []


@pytest.mark.parametrize("accelerator, transcript, flag", [
    ("gpu", "android_gpu_tf_issue43541.txt", "--use_gpu=true"),
    ("npu", "android_nnapi_op_profile_tf2.4.txt", "--use_nnapi=true"),
    ("nnapi", "android_nnapi_op_profile_tf2.4.txt", "--use_nnapi=true"),  # the same delegate by its own name
])
def test_accelerators_on_a_phone_need_no_compiled_api(invoke, phone, monkeypatch, accelerator, transcript, flag):
    """benchmark_model picks the delegate itself: --api compiled is asked for only where device_bench runs."""
    monkeypatch.setenv("EDGEKIT_STANDIN_TRANSCRIPT", str(DATA / transcript))
    r = bench(invoke, phone, "--target", "adb://PHONE1", "--accelerator", accelerator)
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert row["runtime"]["accelerator"] == accelerator and row["xnnpack"] is False and row["latency_ms"]
    log = phone["log"].read_text()
    assert flag in log and "--use_xnnpack=false" in log
    here = invoke("bench", phone["model"], "--accelerator", accelerator)
    if accelerator == "nnapi":  # no NNAPI here, whatever the API: phone-only, as --benchmark-binary is
        assert here.exit_code == 1 and here.output.strip() == \
            "Error: --accelerator nnapi is for an Android phone: add --target adb (or adb://SERIAL)"
        compiled = invoke("bench", phone["model"], "--accelerator", accelerator, "--api", "compiled")
        assert compiled.exit_code == 1 and compiled.output.strip() == here.output.strip()
        classify = invoke("classify", phone["model"], phone["model"], "--accelerator", accelerator)
        assert classify.exit_code == 2 and "'nnapi' is not one of" in classify.output  # classify runs here only
    else:
        assert here.exit_code == 1 and f"accelerator {accelerator} needs --api compiled" in here.output


def test_op_profile_on_a_phone_and_not_here(invoke, phone, monkeypatch):
    monkeypatch.setenv("EDGEKIT_STANDIN_TRANSCRIPT", str(DATA / "riscv64_cpu_op_profile_tf2.8.txt"))
    r = bench(invoke, phone, "--target", "adb://PHONE1", "--op-profile", "--repeat", "2")
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert "--enable_op_profiling=true" in phone["log"].read_text()
    ops = row["op_profile"]
    assert len(ops) == 31 and row["repeat"] == 2  # each operator's median over the two processes
    assert ops[0] == {"node_type": "CONV_2D", "avg_ms": 60.957, "share": pytest.approx(0.02066),
                      "name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"}
    monkeypatch.setenv("EDGEKIT_STANDIN_TRANSCRIPT", str(TRANSCRIPT))  # a build that printed no table
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1", "--op-profile").stdout)
    assert "--op-profile: benchmark_model printed no operator table" in row["warnings"] and "op_profile" not in row
    here = invoke("bench", phone["model"], "--op-profile")
    assert here.exit_code == 1 and here.output.strip() == \
        "Error: --op-profile needs LiteRT's benchmark_model: bench on an Android phone (--target adb)"


def test_the_only_phone_two_phones_and_a_phone_that_goes_away(invoke, phone, monkeypatch):
    assert json.loads(bench(invoke, phone, "--target", "adb", "--adb", "adb").stdout)[0]["device"]["serial"] == "PHONE1"
    monkeypatch.setenv("EDGEKIT_STANDIN_DEVICES", "PHONE1:device,PHONE2:device")
    monkeypatch.setenv("EDGEKIT_STANDIN_VANISH", "PHONE2:1")  # unplugged after its first report was pulled
    r = bench(invoke, phone, "--target", "adb://PHONE1", "--target", "adb://PHONE2", "--threads", "1,2")
    assert r.exit_code == 1
    rows = {(x["target"], x["threads"]): x for x in json.loads(r.stdout)}
    assert all(rows[("adb://PHONE1", t)]["latency_ms"] for t in (1, 2))
    assert rows[("adb://PHONE2", 1)]["latency_ms"]  # measured before it went
    assert "the phone is gone" in rows[("adb://PHONE2", 2)]["error"]
    assert left_on(phone, "PHONE1") == []


@pytest.mark.parametrize("devices, target, message", [
    ("", "adb", "no Android device attached: plug the phone in and enable USB debugging (Settings > Developer options)"),
    ("A:device,B:device", "adb", "2 Android devices attached (A, B): name one with --target adb://SERIAL"),
    ("A:device", "adb://NOPE", "no Android device 'NOPE' attached (attached: A)"),
    ("A:unauthorized", "adb://A", "A: USB debugging is not authorized: accept the prompt on the phone"),
    ("down", "adb", "`adb devices` failed: adb: cannot connect to daemon"),  # the server, not the phone
])
def test_which_phone_one_line_each(invoke, phone, monkeypatch, devices, target, message):
    if devices == "down":
        monkeypatch.setenv("EDGEKIT_STANDIN_SERVER", "down")
    else:
        monkeypatch.setenv("EDGEKIT_STANDIN_DEVICES", devices)
    r = bench(invoke, phone, "--target", target)
    assert r.exit_code == 1
    [row] = json.loads(r.stdout)
    assert row["error"] == message


def test_bad_binaries_and_options_are_one_line(invoke, phone, tmp_path, monkeypatch):
    def error(*args):
        r = invoke("bench", phone["model"], *QUICK, "--target", "adb://PHONE1", *args)
        assert r.exit_code == 1
        [row] = json.loads(r.stdout)
        assert "\n" not in row["error"]
        return row["error"]

    assert "pass --benchmark-binary PATH" in error() and "android_aarch64_benchmark_model" in error()
    x86 = elf(tmp_path / "x86_benchmark_model", 62)
    assert "is built for x86_64, but the phone's ABI is arm64-v8a" in error("--benchmark-binary", x86)
    assert "no ELF header" in error("--benchmark-binary", phone["model"])
    assert error("--benchmark-binary", phone["binary"], "--input", phone["model"]) == \
        "--input is not supported on an Android phone (benchmark_model runs there)"
    assert error("--benchmark-binary", phone["binary"], "--api", "compiled", "--accelerator", "gpu") == \
        "--api compiled on an Android phone: benchmark_model runs the interpreter API only (--accelerator gpu, npu or " \
        "nnapi picks its delegate)"
    assert error("--benchmark-binary", phone["binary"], "--adb", "no-such-adb") == \
        "--adb no-such-adb: no such command (give adb's path or its name on PATH)"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert error("--benchmark-binary", phone["binary"]).startswith("adb is not installed")
    assert left_on(phone) == []


def test_key_values_and_no_device_bench_on_a_phone():
    from edgekit.targets.adb import AdbTarget, _key_values
    assert _key_values("ro.product.model=Pixel 7\r\ncores=8\r\n ignored line\r\n") == {"ro.product.model": "Pixel 7",
                                                                                      "cores": "8"}
    with pytest.raises(EdgekitError, match="runs LiteRT's benchmark_model only, not device_bench commands"):
        AdbTarget("adb://P").run(["python3", "device_bench.pyz", "bench"])


def test_phone_options_without_a_phone_are_refused(invoke, phone):
    for args in (("--max-temp", "30"), ("--target", "local", "--benchmark-binary", phone["binary"])):
        r = invoke("bench", phone["model"], *QUICK, *args)
        flag = next(a for a in args if a in ("--max-temp", "--benchmark-binary"))
        assert r.exit_code == 1 and r.output.strip() == f"Error: {flag} is for an Android phone: add --target adb " \
                                                         f"(or adb://SERIAL)"


def test_full_phone_and_unreadable_report_leave_nothing(invoke, phone, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_STANDIN_FULL", "PHONE1")
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1").stdout)
    assert "/data/local/tmp on the phone is full" in row["error"]
    assert left_on(phone) == []
    monkeypatch.delenv("EDGEKIT_STANDIN_FULL")
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("Segmentation fault\n")
    monkeypatch.setenv("EDGEKIT_STANDIN_TRANSCRIPT", str(garbage))
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1").stdout)
    assert "first line not understood: 'Segmentation fault'" in row["error"]
    assert left_on(phone) == []


@pytest.mark.parametrize("transcript, status, message", [
    # a whole report, then a crash on the way out: an error row, not a normal-looking one
    (TRANSCRIPT, "139", "benchmark_model failed (exit status 139 (SIGSEGV)): Memory footprint delta from the start"),
    (None, "1", "benchmark_model failed (exit status 1): NN API returned error ANEURALNETWORKS_BAD_DATA at line 1068"),
])
def test_a_failed_benchmark_model_is_an_error_row_quoting_it(invoke, phone, tmp_path, monkeypatch, transcript, status,
                                                             message):
    if transcript is None:
        transcript = tmp_path / "failed.txt"
        transcript.write_text("INFO: Created TensorFlow Lite delegate for NNAPI.\n"
                              "ERROR: NN API returned error ANEURALNETWORKS_BAD_DATA at line 1068 while adding operation.\n"
                              "Failed to apply NNAPI delegate.\nBenchmarking failed.\n")
    monkeypatch.setenv("EDGEKIT_STANDIN_TRANSCRIPT", str(transcript))
    monkeypatch.setenv("EDGEKIT_STANDIN_EXIT", status)
    r = bench(invoke, phone, "--target", "adb://PHONE1")
    assert r.exit_code == 1
    [row] = json.loads(r.stdout)
    assert row["error"].startswith(f"adb://PHONE1: tiny.tflite: {message}") and "\n" not in row["error"]
    assert "latency_ms" not in row and left_on(phone) == []
    assert row["runtime"]["name"] == "LiteRT benchmark_model" and row["runtime"]["binary"] == str(phone["binary"])


def test_waits_for_a_hot_phone_and_says_when_it_gave_up(invoke, phone, monkeypatch):
    import edgekit.targets.adb as adb
    monkeypatch.setattr(adb, "POLL_SECONDS", 0.0)
    monkeypatch.setenv("EDGEKIT_STANDIN_TEMPS", "31,41,40,36")  # probe, then two hot readings, then cool
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1").stdout)
    assert row["clock"]["before"]["temperature_c"] == 36 and not any("hot" in w for w in row["warnings"])
    monkeypatch.setenv("EDGEKIT_STANDIN_TEMPS", "45")
    for f in phone["root"].glob(".*.temps"):
        f.unlink()
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1", "--cooldown-max", "0").stdout)
    assert any(w.startswith("started hot: 45") for w in row["warnings"])


def test_without_a_thermal_status_the_hottest_thermal_zone_is_the_guard(invoke, phone, monkeypatch):
    """Where `dumpsys thermalservice` has nothing (no such service before Android 10), the phone's
    /sys/class/thermal zones (millidegrees) decide: the hottest must be below --max-temp. Zone readings go in
    turn: the probe, two waits, then cool."""
    import edgekit.targets.adb as adb
    monkeypatch.setattr(adb, "POLL_SECONDS", 0.0)
    monkeypatch.setenv("EDGEKIT_STANDIN_THERMAL", "none")
    monkeypatch.setenv("EDGEKIT_STANDIN_ZONES", "45000 30000;41000 -273000;36500 20000 999999")
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1").stdout)
    before = row["clock"]["before"]
    assert before["thermal_status"] is None and before["zone_c"] == 36.5  # the off (-273) and broken sensors skipped
    assert (before["temperature_c"], before["temperature_source"]) == (31, "battery")
    assert row["device"]["zone_c"] == 45 and not any("hot" in w for w in row["warnings"])
    log = phone["log"].read_text()
    assert "/sys/class/thermal/thermal_zone*/temp" in log

    # No battery temperature either: the hottest zone is the temperature; it never cools, so the row says so.
    for f in phone["root"].glob(".*.zones"):
        f.unlink()
    monkeypatch.setenv("EDGEKIT_STANDIN_TEMPS", "none")
    monkeypatch.setenv("EDGEKIT_STANDIN_ZONES", "52000 30000")
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1", "--cooldown-max", "0").stdout)
    assert (row["clock"]["before"]["temperature_c"], row["clock"]["before"]["temperature_source"]) == (52, "thermal zone")
    assert "started hot: 52.0 °C (thermal zone) after waiting 0 s (--cooldown-max)" in row["warnings"]

    # Battery cool and no status: a hot zone alone counts as throttled.
    monkeypatch.setenv("EDGEKIT_STANDIN_TEMPS", "31")
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1", "--cooldown-max", "0").stdout)
    assert "started hot: hottest thermal zone 52.0 °C (no thermal status from dumpsys) after waiting 0 s " \
           "(--cooldown-max)" in row["warnings"]

    # With a thermal status from dumpsys, that status decides, not a hot zone (a busy core runs above 37 °C).
    monkeypatch.delenv("EDGEKIT_STANDIN_THERMAL")
    [row] = json.loads(bench(invoke, phone, "--target", "adb://PHONE1", "--cooldown-max", "0").stdout)
    assert row["clock"]["before"]["thermal_status"] == 0 and row["clock"]["before"]["zone_c"] == 52
    assert not any("hot" in w for w in row["warnings"]) and left_on(phone) == []


def test_the_api_takes_the_same_phone_settings(phone):
    """edgekit.benchmark is the one place phone settings are built; `edgekit bench` passes its options to it."""
    import edgekit
    [row] = edgekit.benchmark(phone["model"], target="adb://PHONE1", benchmark_binary=phone["binary"], num_runs=5,
                              repeat=1, cpu_mask="1", max_temp=30.0, cooldown_max=0)
    assert row.ok and row.runtime["name"] == "LiteRT benchmark_model" and row.environment["cpu_mask"] == "1"
    assert any(w.startswith("started hot: 31") for w in row.warnings)  # 31 °C is above max_temp=30
    assert "taskset 1 " in phone["log"].read_text() and left_on(phone) == []


def test_report_and_recommend_show_the_phone_beside_this_machine(invoke, phone, tmp_path):
    """The same model measured here (really) and on the stand-in phone (a replayed transcript), side by side."""
    model = tmp_path / "dense.tflite"
    shutil.copyfile(CEILING / "ceiling_fp32.tflite", model)
    for name, args in (("here", ()), ("phone", ("--target", "adb://PHONE1", "--benchmark-binary", phone["binary"]))):
        r = invoke("bench", model, *QUICK, "--repeat", "2", "--no-ceiling", *args)
        assert r.exit_code == 0, r.output
        (tmp_path / f"{name}.json").write_text(r.stdout)
    results = [tmp_path / "here.json", tmp_path / "phone.json"]
    r = invoke("report", *results, "-o", tmp_path / "cmp")
    assert r.exit_code == 0, r.output
    with open(tmp_path / "cmp" / "results.csv", newline="") as f:
        rows = {row["device"].split(",")[0]: row for row in csv.DictReader(f)}
    assert rows.keys() - {"Stand-in Phone (PHONE1)"}, rows.keys()  # and this machine's row beside it
    there = rows.pop("Stand-in Phone (PHONE1)")
    [here] = rows.values()
    assert there["model"] == here["model"] == "dense" and float(there["p50_ms"]) == pytest.approx(1239.807)
    assert there["runtime"].startswith("LiteRT benchmark_model sha256 ") and here["runtime"].startswith("litert ")
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "## Stand-in Phone (PHONE1)" in md and "Android 14" in md
    assert f"dense.tflite --target adb://PHONE1 --benchmark-binary {phone['binary']} --threads 1" in md
    r = invoke("recommend", *results, "--json")
    recs = {rec["device"].split(",")[0]: rec for rec in json.loads(r.stdout)["items"]}
    winner = recs["Stand-in Phone (PHONE1)"]["winner"]
    assert winner["runtime_label"].startswith("LiteRT benchmark_model sha256 ") and len(recs) == 2
    assert "--target adb://PHONE1" in recs["Stand-in Phone (PHONE1)"]["command"]


def test_ctrl_c_stops_a_phone_run_at_once_and_leaves_nothing(phone):
    """Ctrl-C as a terminal sends it (SIGINT to the whole process group: edgekit and its adb children) once the
    first of 12 benchmark_model processes has run: no further process starts, the phone is cleaned up, and the
    command ends as interrupted."""
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "bench", str(phone["model"]), "--target", "adb://PHONE1",
                             "--benchmark-binary", str(phone["binary"]), "--runs", "5", "--min-secs", "0",
                             "--threads", "1,2,3,4", "--repeat", "3"],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    seen = []
    for line in proc.stderr:  # progress lines as they come
        seen.append(line)
        if "] [2/12] " in line:  # the first process has run, the second is starting
            os.killpg(proc.pid, signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=300)  # generous: without the fix it runs all 12 processes
    stderr = "".join(seen) + rest
    assert "] [2/12] " in "".join(seen), stderr[-2000:]
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "Error: interrupted", stderr[-2000:]
    assert "Traceback" not in stderr
    runs = [line for line in phone["log"].read_text().splitlines() if "/benchmark_model --graph=" in line]
    assert 1 <= len(runs) <= 3, runs  # of 12: the first, the one under way, at most one begun before the stop was seen
    assert left_on(phone) == []


def test_bench_on_the_emulated_board_leaves_nothing_there(invoke, phone, board, monkeypatch):
    """The stand-in adb in board mode: the phone is a folder on the emulated aarch64 board, files are pushed and
    pulled over ssh and every shell command (mktemp, getprop, dumpsys, chmod, rm) runs in the board's sh. Its
    "benchmark_model" is still the stand-in: on the board it checks the pushed binary is executable and an ELF
    file, then replays the recorded transcript. Nothing here measures a model."""
    phones = f"/root/adb-standin-{secrets.token_hex(4)}"
    monkeypatch.setenv("EDGEKIT_STANDIN_BOARD", board["config"])
    monkeypatch.setenv("EDGEKIT_STANDIN_BOARD_ROOT", phones)
    try:
        r = bench(invoke, phone, "--target", "adb://PHONE1", "--threads", "1,2", "--repeat", "2")
        assert r.exit_code == 0, r.output
        rows = json.loads(r.stdout)
        assert [(x["target"], x["threads"], x["repeat"]) for x in rows] == [("adb://PHONE1", 1, 2), ("adb://PHONE1", 2, 2)]
        assert rows[0]["latency_ms"]["p50"] == pytest.approx(1239.807) and rows[0]["memory_mb"]["overall"] == 109.832
        assert rows[0]["device"]["board"] == "Stand-in Phone (PHONE1)" and rows[0]["clock"]["after"]["temperature_c"] == 31
        log = phone["log"].read_text()
        assert log.count(" push ") == 2 and log.count(" pull ") == 4 and "chmod 755" in log
        there = board_ssh(board, f"cat {phones}/.PHONE1.temps; ls -A {phones}/PHONE1/data/local/tmp")
        assert there.returncode == 0, there.stderr
        # dumpsys ran on the board: the probe, then before and after each of the 4 processes
        assert there.stdout.split() == ["9"]  # and /data/local/tmp there is empty
        assert not phone["root"].joinpath("PHONE1").exists()  # nothing played the phone here
    finally:
        board_ssh(board, f"rm -rf {phones}")


def test_on_a_real_phone(invoke):
    """Opt-in, end to end on a real phone: EDGEKIT_ADB_SERIAL names it (`adb devices`), EDGEKIT_BENCHMARK_BINARY
    is LiteRT's benchmark_model for its ABI; adb is the one on PATH. Nothing is faked here."""
    serial, binary = os.environ.get("EDGEKIT_ADB_SERIAL"), os.environ.get("EDGEKIT_BENCHMARK_BINARY")
    if not serial:
        pytest.skip("no real phone: set EDGEKIT_ADB_SERIAL (and EDGEKIT_BENCHMARK_BINARY) to run on one")
    if not binary or not os.path.isfile(binary):
        pytest.skip(f"EDGEKIT_BENCHMARK_BINARY must name LiteRT's benchmark_model for the phone, got {binary!r}")

    def ours():
        listing = subprocess.run(["adb", "-s", serial, "shell", "ls /data/local/tmp"], capture_output=True, text=True)
        return {name for name in listing.stdout.split() if name.startswith("edgekit-")}

    before = ours()
    models = [CEILING / f"ceiling_{p}.tflite" for p in ("fp32", "int8")]
    r = invoke("bench", *models, "--target", f"adb://{serial}", "--benchmark-binary", binary, "--runs", "20",
               "--threads", "1,4", "--repeat", "2", "--op-profile", "--cooldown-max", "120", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["model"], x["threads"]) for x in rows] == [(m, t) for m in ("ceiling_fp32", "ceiling_int8") for t in (1, 4)]
    for row in rows:
        assert row["latency_ms"]["p50"] > 0 and row["repeat"] == 2 and row["op_profile"], row
        assert row["device"]["serial"] == serial and row["environment"]["board"] and row["environment"]["arch"]
    assert ours() == before
