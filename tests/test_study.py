"""The main job end to end through the CLI: edgekit run / report on small configs."""

import csv
import json
import struct

import pytest

from edgekit.study.rows import table_rows

SMALL = """
precisions = ["fp32", "int8"]
runs = 3
min_secs = 0.0
weights = "none"
[[models]]
name = "squeezenet1_1"
size = 48
classes = 10
[[models]]
name = "mobilenet_v2"
alpha = 0.35
size = 48
classes = 10
[[models]]
name = "mobilenet_v9"
"""


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def table_block(report_md):
    return report_md.split("```")[1]


@pytest.fixture(scope="module")
def small_run(invoke, tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    (d / "small.toml").write_text(SMALL)
    result = invoke("run", d / "small.toml", "-o", d / "out")
    return d, result


def test_small_config_runs_end_to_end(small_run):
    d, result = small_run
    assert result.exit_code == 1  # one model failed: its rows carry the error, the rest finished
    out = d / "out"
    results = json.loads((out / "results.json").read_text())
    rows = table_rows(results)
    assert [(r["model"], r["precision"]) for r in rows] == [
        ("squeezenet1_1_48", "fp32"), ("squeezenet1_1_48", "int8"), ("mobilenet_v2_035_48", "fp32"),
        ("mobilenet_v2_035_48", "int8"), ("mobilenet_v9", "fp32"), ("mobilenet_v9", "int8")]
    assert "unknown model 'mobilenet_v9'" in rows[-1]["error"]
    for r in rows[:4]:
        assert r["p50_ms"] > 0 and r["peak_rss_mb"] > 0 and r["gmacs_per_s"] > 0 and r["size_mb"] > 0
        assert r["top1"] is None and "predictions" not in json.dumps(results["rows"][:4])  # random weights
    assert rows[1]["size_vs_fp32"] < 0.35 and rows[0]["size_vs_fp32"] == 1.0
    md = (out / "report.md").read_text()
    table = table_block(md)
    for r in rows:
        assert f"{r['model']}" in table
    assert "Random weights" in md and "edgekit convert squeezenet1_1" in md
    assert "3 fresh process(es)" in md and "Cooldown: not used" in md and "litert " in table and "interpreter/cpu" in table
    assert "Recommendation for this machine" in result.output and "CANNOT DECIDE: no accuracy" in result.output
    assert all(b["repeat"] == 3 and len(b["processes"]) == 3 for r in results["rows"][:4] for b in r["bench"])
    with open(out / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == len(rows)
    for c, r in zip(csv_rows, rows):
        assert c["model"] == r["model"] and c["precision"] == r["precision"]
        if r.get("p50_ms"):
            assert float(c["p50_ms"]) == pytest.approx(r["p50_ms"])
            assert float(c["size_mb"]) == pytest.approx(r["size_mb"])
    assert png_size(out / "tradeoff.png") == (1400, 550)


def test_report_rebuilds_the_same_table_and_compares_devices(small_run, invoke, tmp_path):
    d, _ = small_run
    saved = d / "out" / "results.json"
    result = invoke("report", saved, "-o", tmp_path / "again")
    assert result.exit_code == 0, result.output
    assert table_block((tmp_path / "again" / "report.md").read_text()) == table_block((d / "out" / "report.md").read_text())
    assert invoke("report", saved, "-o", tmp_path / "again").exit_code == 1  # exists: needs --force
    assert invoke("report", saved, "-o", tmp_path / "again", "--force").exit_code == 0
    other = json.loads(saved.read_text())
    other["environment"].update(cpu="Cortex-A72", board="Raspberry Pi 4 Model B Rev 1.4", arch="aarch64", cores=4)
    (tmp_path / "pi.json").write_text(json.dumps(other))
    both = invoke("report", saved, tmp_path / "pi.json", "-o", tmp_path / "both")
    assert both.exit_code == 0
    md = (tmp_path / "both" / "report.md").read_text()
    assert "## Raspberry Pi 4 Model B Rev 1.4, 4 cores" in md and md.count("\n## ") == 2
    assert png_size(tmp_path / "both" / "tradeoff.png") == (1400, 1100)
    bad = invoke("report", d / "small.toml", "-o", tmp_path / "x")
    assert bad.exit_code == 1 and "cannot read results" in bad.output


def test_rerun_reuses_unchanged_bundles(small_run, invoke):
    d, _ = small_run
    model = d / "out" / "bundles" / "squeezenet1_1_48_int8" / "model.tflite"
    before = model.stat().st_mtime_ns
    result = invoke("run", d / "small.toml", "-o", d / "out")
    assert "squeezenet1_1_48 int8: unchanged, reusing" in result.output
    assert model.stat().st_mtime_ns == before


def test_trained_model_gets_accuracy_agreement_and_predictions(invoke, digits, digit_models, tmp_path):
    config = tmp_path / "digits.toml"
    config.write_text(f"""
precisions = ["fp32", "int8"]
runs = 3
min_secs = 0.0
calibration = "{digits['train']}"
classify = "{digits['test'] / '4'}"
evaluate = "{digits['test']}"
[[models]]
source = "{digit_models['squeezenet1_1']['path']}"
preprocessing = "torch"  # as conftest.DIGIT_MODELS trained it
labels = "{digits['labels']}"
""")
    result = invoke("run", config, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = table_rows(json.loads((tmp_path / "out" / "results.json").read_text()))
    assert [r["precision"] for r in rows] == ["fp32", "int8"]
    # far above chance (10%), int8 near fp32: margins a seed cannot cross, a broken study row does
    assert rows[0]["top1"] >= 0.6 and abs(rows[1]["top1"] - rows[0]["top1"]) <= 0.05
    assert rows[1]["agreement_fp32"] >= 0.9
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Predictions (fp32, top-1)" in md and "Random weights" not in md
    assert "edgekit evaluate" in md and "### Recommendation" in md
    saved = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [a["runtime"]["name"] for r in saved for a in r["accuracy"]] == ["litert", "litert"]


def test_bad_config_is_one_line(invoke, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("precision = [\n")
    r = invoke("run", bad)
    assert r.exit_code == 1 and "not valid TOML" in r.output
    bad.write_text('colour = "red"\n[[models]]\nname = "squeezenet1_1"\n')
    r = invoke("run", bad)
    assert r.exit_code == 1 and "unknown setting 'colour'" in r.output


def test_run_refuses_another_studys_report(small_run, invoke, tmp_path):
    d, _ = small_run
    other = tmp_path / "other.toml"
    other.write_text('precisions = ["fp32"]\n[[models]]\nname = "squeezenet1_1"\nsize = 48\n')
    before = (d / "out" / "results.json").read_bytes()
    r = invoke("run", other, "-o", d / "out")
    assert r.exit_code == 1 and "holds the report of another study; pass --force" in r.output
    assert (d / "out" / "results.json").read_bytes() == before


def test_report_refuses_malformed_rows(invoke, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"environment": {"cpu": "x", "arch": "y"},
                               "rows": [{"model": "m", "bench": [{"threads": 1}]}]}))
    r = invoke("report", bad, "-o", tmp_path / "out")
    assert r.exit_code == 1 and "a malformed row" in r.output and "Traceback" not in r.output
