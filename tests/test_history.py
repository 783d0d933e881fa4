"""The results history and the `edgekit compare` regression gate, through the CLI on real benchmark results.

The gate's exit codes are tested only where they cannot flip: a build with 6x the multiply-adds of the same
model file against the base (caught), and a results file against itself (passed). How often identical reruns
raise a false alarm, and whether a 25% slowdown is caught, are benchmark figures: benchmarks/bench_gate.py.
"""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES
from edgekit.study.compare import mann_whitney_p, smallest_p

QUICK = ["--runs", 20, "--min-secs", 0.1, "--repeat", 5]  # 5 fresh processes: enough for p < 0.05


def cli_env(runner, cli, *args, env=None):
    """Run edgekit in-process with environment variables set (EDGEKIT_HISTORY, XDG_DATA_HOME)."""
    return runner.invoke(cli, [str(a) for a in args], env=env or {}, catch_exceptions=False)


def one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def gate(runner, cli, tmp_path_factory):
    """Two builds of one model file net.keras (SqueezeNet 1.1, 10 classes) at 64 and 160 px (6.25x the MACs),
    each converted to a bundle named net_fp32; the base benched at 1 thread, the heavy one at 1 and 2 threads,
    each appended to the default history (--history alone under XDG_DATA_HOME, then EDGEKIT_HISTORY)."""
    d = tmp_path_factory.mktemp("gate")
    built = {}
    for name, size in (("base", 64), ("heavy", 160)):
        (d / name).mkdir()
        for args in (["build", "squeezenet1_1", "--size", size, "--classes", 10, "-o", d / name / "net.keras"],
                     ["convert", d / name / "net.keras", "-p", "fp32", "-o", d / name]):
            r = cli_env(runner, cli, *args)
            assert r.exit_code == 0, r.output
        built[name] = d / name / "net_fp32"
    default = d / "data" / "edgekit" / "history.sqlite"
    r = cli_env(runner, cli, "bench", built["base"], *QUICK, "--json", "--history", "--label", "v1",
                env={"XDG_DATA_HOME": str(d / "data"), "EDGEKIT_HISTORY": None})
    assert r.exit_code == 0, r.output
    (d / "base.json").write_text(r.stdout)
    r = cli_env(runner, cli, "bench", built["heavy"], *QUICK, "--threads", "1,2", "--json", "--label", "v2",
                env={"EDGEKIT_HISTORY": str(default)})
    assert r.exit_code == 0, r.output
    (d / "heavy.json").write_text(r.stdout)
    return {"dir": d, "bundles": built, "history": default, "base": d / "base.json", "heavy": d / "heavy.json"}


@pytest.mark.slow
def test_the_gate_catches_a_much_heavier_build(gate, invoke):
    r = invoke("compare", gate["base"], gate["heavy"], "--fail-above", 5)
    assert r.exit_code == 1, r.output
    regressions = [line for line in r.stderr.splitlines() if line.startswith("regression: ")]
    assert len(regressions) == 1 and "net_fp32 / fp32" in regressions[0] and "1 threads" in regressions[0]
    assert "above --fail-above 5%" in regressions[0]
    assert "only in " + str(gate["heavy"]) in r.stdout and "2 threads" in r.stdout  # listed, not compared
    assert "REGRESSION" in r.stdout


@pytest.mark.slow
def test_the_gate_passes_a_file_against_itself(gate, invoke):
    r = invoke("compare", gate["base"], gate["base"], "--fail-above", 5, "--json")
    assert r.exit_code == 0, r.output
    [change] = json.loads(r.stdout)["changes"]
    assert change["p50_change"] == 0 and change["p_value"] == 1 and not change["regression"]
    assert change["processes"] == [5, 5]


@pytest.mark.slow
def test_without_fail_above_a_slowdown_is_reported_not_failed(gate, invoke):
    r = invoke("compare", gate["base"], gate["heavy"], "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    [change] = out["changes"]
    assert change["significant"] and change["p50_ci"][0] > 0 and change["regression"] is False
    assert change["memory_change_mb"] is not None and len(out["only_new"]) == 1


@pytest.mark.slow
def test_compare_reads_history_selections(gate, invoke):
    r = invoke("compare", "history:v1", "history:v2", "--history", gate["history"], "--fail-above", 5, "--json")
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout)
    assert out["regressions"] == [c["configuration"] for c in out["changes"]] and len(out["only_new"]) == 1
    r = invoke("compare", "history:v1", "history:nope", "--history", gate["history"])
    one_line_error(r, "history:nope", "no record labelled 'nope'", "v1, v2")


@pytest.mark.slow
def test_history_keeps_every_record_with_its_provenance(gate, runner, cli):
    r = cli_env(runner, cli, "history", "list", "--json", env={"XDG_DATA_HOME": str(gate["dir"] / "data"),
                                                                "EDGEKIT_HISTORY": None})
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["label"], x["threads"], x["kind"]) for x in rows] == [("v1", 1, "bench"), ("v2", 1, "bench"),
                                                                     ("v2", 2, "bench")]
    r = cli_env(runner, cli, "history", "show", rows[0]["id"], "--history", gate["history"])
    shown = json.loads(r.stdout)
    tflite = gate["bundles"]["base"] / "model.tflite"
    assert shown["model_sha256"] == hashlib.sha256(tflite.read_bytes()).hexdigest()
    assert shown["bundle"]["precision"] == "fp32" and shown["bundle"]["input"]["shape"] == [1, 64, 64, 3]
    assert shown["edgekit_version"] and shown["created"].endswith("Z") and shown["runtime_version"]
    run = shown["record"]
    [bench] = run["rows"][0]["bench"]
    assert len(bench["processes"]) == 5 and all(p["latency_ms"]["p50"] > 0 for p in bench["processes"])
    assert run["environment"]["cpu"] and bench["runtime"]["name"] == "litert"


@pytest.mark.slow
def test_history_export_csv_and_json(gate, invoke, tmp_path):
    out = tmp_path / "h.csv"
    r = invoke("history", "export", "--history", gate["history"], "-o", out)
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("id,created,label,kind,device,model") and len(lines) == 4
    one_line_error(invoke("history", "export", "--history", gate["history"], "-o", out), "already exists", "--force")
    r = invoke("history", "export", "--history", gate["history"], "-o", out, "--format", "json", "--force",
               "--label", "v2")
    assert r.exit_code == 0, r.output
    assert [x["threads"] for x in json.loads(out.read_text())] == [1, 2]


@pytest.mark.slow
def test_results_of_another_schema_version_are_refused(gate, invoke, tmp_path):
    records = json.loads(gate["base"].read_text())
    other = tmp_path / "v2.json"
    other.write_text(json.dumps([dict(r, schema=2) for r in records]))
    one_line_error(invoke("compare", gate["base"], other), str(other), "schema version 2", "reads schema 1")


@pytest.mark.slow
def test_files_with_no_configuration_in_common_are_an_error(gate, invoke, tmp_path):
    two_threads = tmp_path / "t2.json"  # the heavy run's 2-thread record alone
    two_threads.write_text(json.dumps([r for r in json.loads(gate["heavy"].read_text()) if r["threads"] == 2]))
    one_line_error(invoke("compare", gate["base"], two_threads), "no configuration in common")


@pytest.mark.slow
def test_run_and_evaluate_append_to_the_history(gate, invoke, tmp_path):
    """A one-model study and an evaluation appended, then the study's results.json compared with its record."""
    db = tmp_path / "h.sqlite"
    (tmp_path / "s.toml").write_text('precisions = ["fp32"]\nruns = 3\nmin_secs = 0.0\nrepeat = 2\n'
                                     'weights = "none"\n[[models]]\nname = "squeezenet1_1"\nsize = 48\nclasses = 2\n')
    r = invoke("run", tmp_path / "s.toml", "-o", tmp_path / "out", "--history", db, "--label", "study")
    assert r.exit_code == 0, r.output
    for i, photo in enumerate(sorted(SAMPLES.glob("*.jpg"))[:4]):
        (tmp_path / "ds" / str(i % 2)).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, tmp_path / "ds" / str(i % 2))
    r = invoke("evaluate", gate["bundles"]["base"], tmp_path / "ds", "--history", db, "--label", "eval")
    assert r.exit_code == 0, r.output
    rows = json.loads(invoke("history", "list", "--history", db, "--json").stdout)
    assert [(x["kind"], x["label"]) for x in rows] == [("run", "study"), ("evaluate", "eval")]
    assert rows[0]["p50_ms"] > 0 and rows[1]["top1"] is not None and rows[1]["precision"] == "fp32"
    r = invoke("compare", tmp_path / "out" / "results.json", "history:study", "--history", db, "--fail-above", 1)
    assert r.exit_code == 0, r.output
    assert "2 against 2 processes can never be significant" in r.stdout


# --- fast: no benchmark ---------------------------------------------------------------------------------------

RUN = {"schema": 1, "environment": {"cpu": "test cpu", "arch": "x86_64", "cores": 2}, "rows": []}


def _run(model, p50s):
    row = {"model": model, "precision": "fp32", "bench": [{
        "threads": 1, "runtime": {"name": "litert", "version": "2.3.0", "api": "interpreter", "accelerator": "cpu"},
        "init_ms": 1.0, "latency_ms": {"p50": sorted(p50s)[len(p50s) // 2]}, "peak_rss_mb": 50.0,
        "processes": [{"latency_ms": {"p50": v}, "peak_rss_mb": 50.0} for v in p50s]}]}
    return dict(RUN, rows=[row])


WRITER = """
import sys
from edgekit.study.history import History
db = History(sys.argv[1])
for i in range(200):
    db.append([{run!r}], "bench", label=sys.argv[2] + "-" + str(i))
"""


def test_two_concurrent_writers_lose_nothing(tmp_path):
    db = tmp_path / "h.sqlite"
    script = WRITER.format(run=_run("m", [1.0, 1.1, 1.2]))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(db), name], env=env, stderr=subprocess.PIPE,
                              text=True) for name in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=240) == 0, p.stderr.read()
    labels = [r[0] for r in sqlite3.connect(db).execute("SELECT label FROM records")]
    assert sorted(labels) == sorted(f"{w}-{i}" for w in "ab" for i in range(200))


@pytest.mark.parametrize("kind", ["corrupt", "foreign"])
def test_a_corrupt_or_foreign_database_is_an_error_and_left_alone(kind, invoke, tmp_path):
    db = tmp_path / "h.sqlite"
    if kind == "corrupt":
        db.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    else:
        with sqlite3.connect(db) as c:
            c.execute("CREATE TABLE people (name TEXT)")
            c.execute("INSERT INTO people VALUES ('ada')")
    before = db.read_bytes()
    words = ["cannot open the history"] if kind == "corrupt" else ["not an edgekit history", "people"]
    one_line_error(invoke("bench", tmp_path / "none.tflite", "--history", db), str(db), *words)
    one_line_error(invoke("history", "list", "--history", db), str(db), *words)
    one_line_error(invoke("compare", "history:a", "history:b", "--history", db), str(db), *words)
    assert db.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["h.sqlite"]


def test_a_history_path_that_is_a_folder_or_unwritable(invoke, tmp_path):
    one_line_error(invoke("bench", tmp_path / "none.tflite", "--history", tmp_path), "a folder")
    one_line_error(invoke("evaluate", tmp_path / "none.tflite", tmp_path, "--history", "/proc/h.sqlite"),
                   "/proc/h.sqlite")
    one_line_error(invoke("bench", tmp_path / "none.tflite", "--history", tmp_path / "no" / "h.sqlite"),
                   "does not exist")
    if os.geteuid() != 0:  # root writes anywhere: only /proc above stops it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        one_line_error(invoke("bench", tmp_path / "none.tflite", "--history", locked / "h.sqlite"), "not writable")


@pytest.mark.parametrize("value", ["-5", "abc", "nan"])
def test_fail_above_must_be_a_percentage(value, invoke, tmp_path):
    one_line_error(invoke("compare", tmp_path / "a.json", tmp_path / "b.json", f"--fail-above={value}"),
                   "--fail-above", repr(value))


def test_other_schema_versions_are_named_in_every_results_reader(invoke, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(dict(_run("m", [1.0, 1.1, 1.2]), schema=3)))
    one_line_error(invoke("report", path, "-o", tmp_path / "out"), "schema version 3")


def test_compare_of_history_records_written_here(invoke, tmp_path):
    """Records appended through the library, compared through the CLI: a clear step is flagged, noise is not."""
    from edgekit.study.history import History
    db = History(tmp_path / "h.sqlite")
    db.append([_run("m", [1.00, 1.02, 0.99, 1.01, 1.03])], "bench", "old")
    db.append([_run("m", [1.50, 1.52, 1.49, 1.55, 1.51])], "bench", "new")
    db.append([_run("m", [1.01, 0.98, 1.02, 1.00, 1.04])], "bench", "same")
    db.close()
    args = ["--history", tmp_path / "h.sqlite", "--fail-above", 5]
    assert invoke("compare", "history:old", "history:new", *args).exit_code == 1
    assert invoke("compare", "history:old", "history:same", *args).exit_code == 0


def test_mann_whitney_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    import numpy as np
    rng = np.random.default_rng(7)
    for n, m in [(3, 3), (5, 5), (4, 9), (6, 7)]:
        a, b = rng.normal(0, 1, n), rng.normal(1, 1, m)
        expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
        assert mann_whitney_p(a, b) == pytest.approx(expected)
    a, b = rng.normal(0, 1, 40), rng.normal(0.5, 1, 45)
    assert mann_whitney_p(a, b) == pytest.approx(stats.mannwhitneyu(a, b, method="asymptotic").pvalue, rel=1e-6)
    assert smallest_p(3, 3) == pytest.approx(0.1) and smallest_p(5, 5) == pytest.approx(2 / 252)


def _three_records(path):
    from edgekit.study.history import History
    db = History(path)
    for label, p50s in (("a", [1.0, 1.1, 1.2]), ("b", [1.3, 1.2, 1.25]), ("c", [0.9, 1.0, 0.95])):
        db.append([_run("m", p50s)], "bench", label)
    db.close()


def test_history_plot_refuses_to_replace_and_needs_a_history(invoke, tmp_path):
    _three_records(tmp_path / "h.sqlite")
    (tmp_path / "plot.html").write_text("mine")
    one_line_error(invoke("history", "plot", "--history", tmp_path / "h.sqlite", "-o", tmp_path / "plot.html"),
                   "already exists", "--force")
    assert (tmp_path / "plot.html").read_text() == "mine"
    one_line_error(invoke("history", "plot", "--history", tmp_path / "none.sqlite", "-o", tmp_path / "p2.html"),
                   "no history there")


@pytest.mark.slow  # vl-convert's JavaScript bundle takes seconds to make, and a browser to start
def test_history_plot_is_one_offline_page_in_a_browser(invoke, tmp_path):
    from browser import offline_page
    _three_records(tmp_path / "h.sqlite")
    out = tmp_path / "plot.html"
    r = invoke("history", "plot", "--history", tmp_path / "h.sqlite", "-o", out)
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert page.count("<tr><td data-sort=") == 3 and "<script src=" not in page
    with offline_page(out) as (page, seen):
        assert seen["requests"] == [] and seen["errors"] == []
        assert page.evaluate("document.querySelectorAll('#records tbody tr').length") == 3
        assert page.evaluate("document.querySelectorAll('div.chart svg g.mark-symbol.role-mark path').length") == 3
