"""Remote devices over SSH, against an emulated aarch64 Debian board on 127.0.0.1.

`make test` (and so CI) sets the board up with tests/board/board.sh; without root or binfmt_misc these
tests are skipped with the reason. Timings under emulation are meaningless and never looked at.
"""

import json
import shutil
from pathlib import Path

from conftest import SAMPLES, board_ssh as ssh

QUICK = ["--runs", "1", "--min-secs", "0", "--warmup-runs", "0", "--warmup-secs", "0", "--repeat", "1"]
DEAD = "ssh://127.0.0.1:1"


def remote(invoke, board, *args):
    return invoke(*args, "--target", board["target"], "--ssh-config", board["config"])


def test_bench_on_board_and_a_dead_target_is_an_error_row(invoke, board, tiny_bundles):
    bundle = tiny_bundles[("squeezenet1_1", "int8")]
    r = remote(invoke, board, "bench", bundle, *QUICK, "--json", "--target", DEAD)
    assert r.exit_code == 1
    rows = json.loads(r.stdout)
    ok = [x for x in rows if x["target"] == "board"]
    dead = [x for x in rows if x["target"] == DEAD]
    assert len(ok) == 1 and "error" not in ok[0]
    assert ok[0]["environment"]["arch"] == "aarch64" and ok[0]["environment"]["emulated"] is True
    assert ok[0]["timings_meaningful"] is False and ok[0]["device"]["runtime"]["name"] == "litert"
    assert len(dead) == 1 and "unreachable" in dead[0]["error"]
    assert "edgekit-" not in ssh(board, "ls /tmp").stdout  # the private folder was removed


def test_report_compares_the_board_with_this_machine(invoke, board, tiny_bundles, tmp_path):
    bundles = [tiny_bundles[("squeezenet1_1", p)] for p in ("fp32", "int8")]
    there = remote(invoke, board, "bench", *bundles, *QUICK, "--json")
    here = invoke("bench", *bundles, *QUICK, "--json")
    (tmp_path / "board.json").write_text(there.stdout)
    (tmp_path / "here.json").write_text(here.stdout)
    r = invoke("report", tmp_path / "here.json", tmp_path / "board.json", "-o", tmp_path / "cmp")
    assert r.exit_code == 0, r.output
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert md.count("\n## ") == 2 and "EMULATED" in md and "Emulated CPU" in md
    assert md.count("squeezenet1_1_64_int8") >= 2


def _scores(rows):
    return [{p["index"]: p["score"] for p in r["predictions"]} for r in rows]


def test_outputs_match_x86(invoke, board, digit_models, digits):
    images = sorted((digits["test"] / "4").iterdir())[:2] + sorted((digits["test"] / "9").iterdir())[:1]
    for precision, exact in (("int8", True), ("fp32", False)):
        bundle = digit_models["squeezenet1_1"]["bundles"][precision]
        local = json.loads(invoke("classify", bundle, *images, "--top-k", "10", "--json").stdout)
        r = remote(invoke, board, "classify", bundle, *images, "--top-k", "10", "--json")
        assert r.exit_code == 0, r.output
        there = json.loads(r.stdout)
        assert [x["image"] for x in there] == [str(p) for p in images]
        for a, b in zip(_scores(local), _scores(there)):
            if exact:
                assert a == b  # int8: bit-identical on aarch64 and x86
            else:
                assert max(abs(a[k] - b[k]) for k in a) <= 1e-5


def test_evaluate_on_board_matches_local(invoke, board, digit_models, digits, tmp_path):
    subset = tmp_path / "subset"
    for c in ("1", "7"):
        (subset / c).mkdir(parents=True)
        for p in sorted((digits["test"] / c).iterdir())[:4]:
            shutil.copy(p, subset / c / p.name)
    bundle = digit_models["squeezenet1_1"]["bundles"]["int8"]
    local = json.loads(invoke("evaluate", bundle, subset, "--json").stdout)
    r = remote(invoke, board, "evaluate", bundle, subset, "--json")
    assert r.exit_code == 0, r.output
    there = json.loads(r.stdout)[0]
    assert there["count"] == local["count"] == 8 and there["top1"] == local["top1"]


def test_awkward_bundle_path_arrives_intact_and_runs_nothing(invoke, board, tiny_bundles, tmp_path):
    odd = tmp_path / "it's a \"bundle\" $(touch pwned) `touch pwned2`"
    shutil.copytree(tiny_bundles[("mobilenet_v1", "fp32")], odd)
    r = remote(invoke, board, "bench", odd, *QUICK, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["path"].endswith(odd.name)
    r = remote(invoke, board, "classify", odd, SAMPLES / "cat.jpg", "--json")
    assert r.exit_code == 0, r.output
    assert ssh(board, "ls / /root /tmp").stdout.count("pwned") == 0
    assert not list(Path.cwd().glob("pwned*")) and not list(tmp_path.glob("pwned*"))


def test_deploy_leaves_runner_and_bundle(invoke, board, tiny_bundles):
    bundle = tiny_bundles[("squeezenet1_1", "fp32")]
    r = remote(invoke, board, "deploy", bundle, "--dir", "edgekit deployed", "--json")
    assert r.exit_code == 0, r.output
    folder = json.loads(r.stdout)[0]["folder"]
    listing = ssh(board, f"ls '{folder}' '{folder}/{bundle.name}'").stdout
    assert "device_bench.pyz" in listing and "model.tflite" in listing and "edgekit.json" in listing
    run = ssh(board, f"cd '{folder}' && python3 device_bench.pyz bench {bundle.name} --runs 1 --min-secs 0 "
                     f"--warmup-runs 0 --warmup-secs 0 --in-process --json")
    assert run.returncode == 0 and json.loads(run.stdout)[0]["environment"]["emulated"] is True
    ssh(board, f"rm -r '{folder}'")


def test_targets_file_and_bad_targets(invoke, board, tiny_bundles, tmp_path):
    listing = tmp_path / "targets.txt"
    listing.write_text(f"# my boards\nboard\n{DEAD}\n")
    r = invoke("bench", tiny_bundles[("squeezenet1_1", "fp32")], *QUICK, "--json", "--targets", listing,
               "--ssh-config", board["config"])
    assert [("error" in x) for x in json.loads(r.stdout)] == [False, True]
    bad = invoke("bench", tiny_bundles[("squeezenet1_1", "fp32")], "--target", "ssh://host:notaport")
    assert bad.exit_code == 1 and "not ssh://[user@]host[:port]" in bad.output
    evil = invoke("bench", tiny_bundles[("squeezenet1_1", "fp32")], "--target", "-oProxyCommand=touch x")
    assert evil.exit_code == 1 and "neither" in evil.output


def test_board_without_runtime_names_the_package(invoke, board, tiny_bundles):
    """A device whose Python cannot import a TFLite runtime: the error says what to install."""
    r = ssh(board, "mv /usr/local/lib/python3.11/dist-packages/ai_edge_litert /usr/local/lib/ai_edge_litert.off")
    assert r.returncode == 0, r.stderr
    try:
        out = remote(invoke, board, "bench", tiny_bundles[("squeezenet1_1", "fp32")], *QUICK)
    finally:
        ssh(board, "mv /usr/local/lib/ai_edge_litert.off /usr/local/lib/python3.11/dist-packages/ai_edge_litert")
    assert out.exit_code == 1
    assert "no TFLite runtime for Python 3.11" in out.output and "pip install ai-edge-litert" in out.output
