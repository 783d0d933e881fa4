"""report.html on results written here with known figures (the browser tests on real runs are in test_study):
the Pareto front, the recommended build marked, every results.csv row and column with its warnings, the
per-layer panel, and a page that cannot be broken out of by what it shows."""

import csv
import json
import re

from test_recommend import ENV, LITERT, OPENVINO, bench, row, write

from edgekit.study.html_report import Chart, Table, heading, html_page
from edgekit.study.report_page import pareto_front


def specs(page):
    """Each chart's Vega-Lite spec in the page, by its name."""
    found = re.findall(r'<div class="chart" id="(chart-\d+)" data-name="([^"]+)"></div>'
                       r'<script type="application/json" id="\1-spec">(.*?)</script>', page, re.S)
    return {name: json.loads(text) for _, name, text in found}


def layer(spec, name):
    return next(x for x in spec["layer"] if x.get("name") == name)


def test_pareto_front_keeps_the_non_dominated():
    points = [{"ms": 10, "top1": 95}, {"ms": 6, "top1": 94.8}, {"ms": 5, "top1": 93}, {"ms": 8, "top1": 94.9},
              {"ms": 9, "top1": 94.0}, {"ms": 7, "top1": None}]
    assert [p["ms"] for p in pareto_front(points, "ms", "top1")] == [10, 6, 5, 8]
    assert [p["ms"] for p in pareto_front(points, "ms", "top1", maximize_y=False)] == [5]
    assert pareto_front([], "ms", "top1") == []


def test_report_html_from_known_figures(invoke, tmp_path):
    bf16 = dict(OPENVINO, inference_precision="bf16")
    partial = dict(bench(LITERT, 5.0, 4.9, 5.1), fully_delegated=False, delegated_nodes=40, total_nodes=42)
    hot = dict(bench(LITERT, 10.0, 8.0, 12.0), warnings=["throttled: 2.0 \u2192 1.0 GHz during the run"])
    results = write(tmp_path, [row("fp32", [hot], [0.950]),
                               row("int8", [bench(bf16, 6.0, 5.9, 6.1), partial], [0.948, 0.930])])
    r = invoke("report", results, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "report.html" in r.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert "https://" not in page.split("<script>")[0] and "<script src" not in page  # nothing fetched
    charts = specs(page)
    assert set(charts) == {"pareto-0-latency", "pareto-0-size"}
    builds = layer(charts["pareto-0-latency"], "builds_0_latency")["data"]["values"]
    assert sorted((b["precision"], b["runtime"], b["p50_ms"]) for b in builds) == [
        ("fp32", "litert 2.3.0 interpreter/cpu", 10.0), ("int8", "litert 2.3.0 interpreter/cpu", 5.0),
        ("int8", "openvino 2026.4.1 compiled/cpu", 6.0)]
    ring = layer(charts["pareto-0-latency"], "builds_0_latency_recommended")["data"]["values"]
    assert [(b["runtime"], b["mark"]) for b in ring] == [("openvino 2026.4.1 compiled/cpu", "recommended")]
    front = charts["pareto-0-latency"]["layer"][0]["data"]["values"]
    assert [p["p50_ms"] for p in front] == [5.0, 6.0, 10.0]  # every build here trades speed for accuracy
    assert "5.9-6.1 ms over 3 processes" in json.dumps(builds)

    with open(tmp_path / "out" / "results.csv") as f:
        columns = next(csv.reader(f))
    table = page.split('<table class="sortable" id="results">')[1].split("</table>")[0]
    body = table.split("<tbody>")[1]
    assert body.count("<tr") == 3
    assert all(f'title="{c}"' in table for c in columns)  # every column of results.csv
    rows = body.split("<tr")[1:]
    assert "throttled: 2.0" in rows[0] and "process medians spread 40.0%" in rows[0] and "class=warn" in rows[0]
    assert "float ops computed in bf16" in rows[1] and "partial delegation: 40 of 42 nodes" in rows[2]
    assert "Recommended: digits_net" in page and "edgekit bench /b/digits_net_int8 --runtime openvino" in page
    assert "AMD EPYC" in page and "No accuracy was measured" not in page


def test_per_layer_panel_where_a_bundle_has_a_layer_report(invoke, tmp_path):
    bundle = tmp_path / "digits_net_int8"
    bundle.mkdir()
    with open(bundle / "layer_report.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "index", "layer", "op", "dtype", "macs", "macs_share", "quant_snr_db", "snr_db",
                    "cosine", "mse", "tensor"])
        w.writerow([1, 3, "fire2_squeeze1x1", "CONV_2D", "int8", 100, 0.1, 4.5, 3.0, 0.9, 0.2, "t3"])
        w.writerow([2, 1, "conv1", "CONV_2D", "int8", 300, 0.3, 30.0, 29.0, 0.999, 0.001, "t1"])
    r = row("int8", [bench(LITERT, 5.0, 4.9, 5.1)])
    results = write(tmp_path, [dict(r, bundle=str(bundle))])
    assert invoke("report", results, "-o", tmp_path / "out").exit_code == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Per-layer quantization error: digits_net int8" in page
    values = specs(page)["layers-digits_net-int8"]["data"]["values"]
    assert {(v["index"], v["dB"]) for v in values} == {(3.0, 4.5), (3.0, 3.0), (1.0, 30.0), (1.0, 29.0)}
    # no accuracy here: latency against size, and the page says why
    assert "No accuracy was measured" in page and set(specs(page)) == {"pareto-0-latency", "layers-digits_net-int8"}
    (bundle / "layer_report.csv").write_bytes(b"\xff\xfe\x00broken")
    assert invoke("report", results, "-o", tmp_path / "out", "--force").exit_code == 0
    assert "cannot read the per-layer report" in (tmp_path / "out" / "report.html").read_text()


def test_a_page_cannot_be_broken_out_of():
    evil = "</script><script>alert(1)</script>"
    page = html_page(evil, [heading(evil), Chart("c", {"mark": "point", "data": {"values": [{"a": evil}]}}),
                            Table("t", [("a", "a")], [{"a": evil, "w": [evil]}], warnings_key="w")])
    # the bundle, the chart's spec and the page's own script: each closed once, where it ends
    assert page.count("</script>") == 3 and "alert(1)</script>" not in page
    assert json.loads(re.search(r'id="chart-1-spec">(.*?)</script>', page, re.S).group(1))["data"]["values"][0]["a"] \
        == evil


def test_without_altair_the_rest_of_the_report_is_written(tmp_path):
    """altair (the convert extra) missing: report.md and the rest, no report.html, and a line that says why."""
    import subprocess
    import sys
    from conftest import ROOT, _blocking_env
    results = write(tmp_path, [row("int8", [bench(LITERT, 5.0, 4.9, 5.1)])])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.html").write_text("stale")
    env = _blocking_env(tmp_path, ("altair", "vl_convert", "tensorflow", "keras"))
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "report", str(results), "-o", str(tmp_path / "out")],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "no report.html: it needs altair and vl-convert-python" in r.stderr
    assert (tmp_path / "out" / "report.md").is_file() and not (tmp_path / "out" / "report.html").exists()


def test_odd_environment_values_are_shown_as_they_are(invoke, tmp_path):
    env = dict(ENV, cpuinfo_mhz="fast", temperature_c=[41], governor=None, cores="two")
    results = write(tmp_path, [row("int8", [bench(LITERT, 5.0, 4.9, 5.1)])], env=env)
    r = invoke("report", results, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<dd>fast</dd>" in page and "<dd>[41]</dd>" in page and "<dd>two</dd>" in page
