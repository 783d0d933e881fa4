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
    assert f"{out / 'report.html'} (open it in a browser)" in result.output
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


@pytest.fixture(scope="module")
def trained_run(invoke, digits, digit_models, tmp_path_factory):
    """A study of a trained model with an evaluate folder: accuracy, agreement, predictions, a recommendation."""
    tmp_path = tmp_path_factory.mktemp("trained")
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
    return tmp_path, invoke("run", config, "-o", tmp_path / "out")


def test_trained_model_gets_accuracy_agreement_and_predictions(trained_run):
    tmp_path, result = trained_run
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


def check_report_html(out, tmp_path, accuracy):
    """report.html from a real run, opened offline in Chromium: no console error, no request leaving the file,
    one point per measured build in each Pareto chart, the recommended build ringed on one of them, the table as
    long as results.csv; a screenshot is kept as the test's artefact."""
    from browser import marks, offline_page
    from edgekit.study.recommend import recommend
    with open(out / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    measured = [r for r in csv_rows if r["p50_ms"]]
    winners = [r.winner for r in recommend(out / "results.json") if r.winner]
    with offline_page(out / "report.html") as (page, seen):
        assert seen == {"requests": [], "errors": []}
        charts = ["builds_0_latency", "builds_0_size"] if accuracy else ["builds_0_latency"]
        for chart in charts:
            assert marks(page, chart) == len(measured) > 0
            assert marks(page, f"{chart}_recommended") == len(winners) > 0
            # the ring sits on a build's point
            rings, points = (page.eval_on_selector_all(f"div.chart svg g.{name}_marks > path",
                                                       "els => els.map(e => e.getAttribute('transform'))")
                             for name in (f"{chart}_recommended", chart))
            assert set(rings) <= set(points)
        assert marks(page, "builds_0_size") == (len(measured) if accuracy else -1)
        label = "recommended" if all(r.decided for r in recommend(out / "results.json") if r.winner) \
            else "fastest measured"
        assert page.locator("div.chart svg text", has_text=label).count() >= len(winners)
        page.locator(f"div.chart svg g.{charts[0]}_marks > path").first.hover(force=True)
        assert "process medians" in page.locator("#vg-tooltip-element.visible").inner_text()  # the hover
        assert page.locator("table#results tbody tr").count() == len(csv_rows)
        page.click("table#results th:text-is('p50 ms')")
        first = page.eval_on_selector("table#results tbody tr", "tr => tr.innerText")
        fastest = min(measured, key=lambda r: float(r["p50_ms"]))
        assert fastest["model"] in first and fastest["precision"] in first
        no_accuracy = page.locator("p.note", has_text="No accuracy was measured").count()
        assert no_accuracy == (0 if accuracy else 1)
        shot = tmp_path / "report.png"
        page.screenshot(path=shot, full_page=True)
    print(f"screenshot of {out / 'report.html'}: {shot}")
    assert png_size(shot)[0] > 1000


def test_report_html_in_a_browser_with_accuracy(trained_run, tmp_path):
    check_report_html(trained_run[0] / "out", tmp_path, accuracy=True)


def test_report_html_in_a_browser_without_accuracy(small_run, tmp_path):
    check_report_html(small_run[0] / "out", tmp_path, accuracy=False)


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
