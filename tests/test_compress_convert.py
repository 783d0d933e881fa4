"""`edgekit compress` measures the int8 file that `edgekit convert` ships for the same model and
calibration folder: the very same converter output, not a look-alike made another way."""

import json


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_compress_measures_the_int8_graph_convert_writes(invoke, digits, tmp_path):
    model, pruned = tmp_path / "m.keras", tmp_path / "pruned.keras"
    _json(invoke("train", "mobilenet_v2", "--alpha", 0.35, "--size", 32, digits["train"], "-o", model,
                 "--epochs", 1, "--augment", "none", "--json"))
    record = _json(invoke("compress", model, digits["train"], "--method", "prune", "--sparsity", 0.5,
                          "--epochs", 1, "-o", pruned, "--json"))
    measured = record["measurements"][-1]
    assert measured["error"] is None and len(measured["graph_sha256"]) == 64
    # no --calibration: the file names the folder it was trained on, as compress calibrated on it
    summary = _json(invoke("convert", pruned, "-p", "int8", "-o", tmp_path / "bundles", "--json"))
    bundle = summary["bundles"][0]["bundle"]
    with open(f"{bundle}/edgekit.json") as f:
        manifest = json.load(f)
    assert manifest["graph_sha256"] == measured["graph_sha256"]
    # and the input stage is the unpruned model: another graph
    assert record["measurements"][0]["graph_sha256"] != measured["graph_sha256"]
