"""edgekit quantize: a float .tflite to bundles with the LiteRT quantizer, without TensorFlow; the
per-layer report; automatic mixed precision; and convert --quantizer litert. Real quantizer, real LiteRT.

How close each build stays to fp32 or to TFLiteConverter's int8 (about a point) is a figure of
benchmarks/bench_accuracy.py; the tests hold margins no seed crosses and a broken build does (chance is
10%: a wrong scale, zero point or normalization leaves a digits model near it)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

MODELS = ("squeezenet1_1", "mobilenet_v1", "mobilenet_v2")


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _top1(invoke, bundle, dataset, *extra):
    return _json(invoke("evaluate", bundle, dataset, "--json", *extra))


def _strip_metadata(src, dst, signatures=True):
    """Copy a .tflite without edgekit's embedded manifest and labels, without the standard TFLite Metadata
    (and optionally without its signatures), as a bare model from elsewhere would come."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    model = fbu.convert_bytearray_to_object(bytearray(src.read_bytes()))
    model.metadata = [m for m in model.metadata or [] if not m.name.decode().startswith(("edgekit", "TFLITE_METADATA"))]
    if not signatures:
        model.signatureDefs = []
    dst.write_bytes(bytes(fbu.convert_object_to_bytearray(model)))
    return dst


@pytest.fixture(scope="module")
def hidden(digit_models, tmp_path_factory):
    """The trained digits MobileNetV2 as a bare fp32 .tflite: no Keras file beside it, no manifest in it.
    Its normalization is folded in, so it takes raw pixels (--mean 0 --std 1)."""
    folder = tmp_path_factory.mktemp("hidden")
    return _strip_metadata(digit_models["mobilenet_v2"]["bundles"]["fp32"] / "model.tflite",
                           folder / "digits_net.tflite")


def test_hidden_model_quantized_where_tensorflow_cannot_be_imported(hidden, digits, digit_models, no_tf_env, invoke,
                                                                   tmp_path):
    """The proof: a .tflite and no Keras model, quantized in a process where TensorFlow and Keras cannot
    be imported; int8 close to fp32 top-1 on the held-out digits."""
    from device_bench.manifest import read_bundle
    bare = read_bundle(hidden)
    assert bare.manifest is None and bare.preprocessing is None  # nothing about the model is known but the file
    out = tmp_path / "out"
    code = ("import sys; from edgekit.cli import main; sys.argv[0] = 'edgekit'\n"
            "try:\n    main()\nfinally:\n    assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code, "quantize", hidden, "-p", "fp32", "-p", "int8",
                           "--mean", "0", "--std", "1", "--labels", digits["labels"], "--calibration", digits["train"],
                           "-o", out, "--json"], env=no_tf_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    blocked = subprocess.run([sys.executable, "-c", "import tensorflow"], env=no_tf_env, capture_output=True)
    assert blocked.returncode != 0  # the blocker itself works
    made = {b["precision"]: b for b in json.loads(proc.stdout)["bundles"]}
    assert made["int8"]["quantizer"] == "litert" and "quantizer" not in made["fp32"]
    fp32, int8 = (_top1(invoke, made[p]["bundle"], digits["test"]) for p in ("fp32", "int8"))
    print(f"hidden model: fp32 top-1 {fp32['top1']:.2%}, int8 (LiteRT quantizer) {int8['top1']:.2%}")
    assert fp32["count"] == int8["count"] == 360 and fp32["top1"] >= 0.6
    assert abs(fp32["top1"] - int8["top1"]) <= 0.05  # about a point, as the seed has it
    manifest = json.loads((out / "digits_net_int8" / "edgekit.json").read_text())
    assert manifest["source"]["kind"] == "tflite" and "tensorflow" not in manifest["versions"]
    assert manifest["versions"]["ai_edge_quantizer"] and manifest["quantizer"] == "litert"
    keras_counted = json.loads((digit_models["mobilenet_v2"]["bundles"]["fp32"] / "edgekit.json").read_text())
    assert manifest["macs"] == keras_counted["macs"] > 0  # counted in the flatbuffer, equal to the Keras count
    assert (out / "digits_net_fp32" / "labels.txt").read_text().splitlines()[3] == "3"


@pytest.fixture(scope="module")
def unfolded(invoke, digits, digit_models, tmp_path_factory):
    """The digits models converted without folding their normalization (fp32 and TFLiteConverter's int8):
    a float .tflite as it usually comes from elsewhere, whose input is already normalized."""
    out, made = tmp_path_factory.mktemp("unfolded"), {}
    for name, m in digit_models.items():
        r = _json(invoke("convert", m["path"], "--preprocessing", m["preprocessing"], "--no-fold-preprocessing",
                         "-p", "fp32", "-p", "int8", "--labels", digits["labels"], "--calibration", digits["train"],
                         "--calibration-count", 200, "-o", out, "--json"))
        made[name] = {b["precision"]: Path(b["bundle"]) for b in r["bundles"]}
    return made


@pytest.mark.parametrize("name", MODELS)
def test_int8_predictions_equal_tfliteconverters(invoke, digits, unfolded, name, tmp_path):
    """Min/max calibration on the same 200 images: the same class as TFLiteConverter's int8 (about 99%,
    rounding apart near ties; 95% is a margin no seed crosses, a different calibration or scale falls far)."""
    bundles = unfolded[name]
    made = _json(invoke("quantize", bundles["fp32"], "-p", "int8", "--calibration", digits["train"],
                        "--calibration-count", 200, "-o", tmp_path, "--json"))["bundles"][0]
    r = _top1(invoke, made["bundle"], digits["test"], "--compare", bundles["int8"])
    print(f"{name}: LiteRT quantizer int8 agrees with TFLiteConverter's on {r['compare']['top1_agreement']:.2%}")
    assert r["count"] == 360 and r["compare"]["top1_agreement"] >= 0.95
    m = json.loads((tmp_path / f"{name}_int8" / "edgekit.json").read_text())
    fp32_prep = json.loads((bundles["fp32"] / "edgekit.json").read_text())["input"]["preprocessing"]
    assert m["input"]["preprocessing"] == fp32_prep  # taken from the fp32 bundle's manifest
    assert m["macs"] == json.loads((bundles["fp32"] / "edgekit.json").read_text())["macs"]


@pytest.fixture(scope="module")
def outlier(digit_models, digits, tmp_path_factory):
    """The trained digits SqueezeNet with one huge outlier channel in fire2_squeeze1x1's activations:
    that channel x1000, the expand layers reading it /1000. Float outputs are unchanged."""
    import keras
    from edgekit import convert
    src = digit_models["squeezenet1_1"]["keras"]
    model = keras.models.clone_model(src)
    model.set_weights(src.get_weights())
    w, b = model.get_layer("fire2_squeeze1x1").get_weights()
    c = int(np.argmax(np.abs(w).sum((0, 1, 2))))
    w[..., c] *= 1000.0
    b[c] *= 1000.0
    model.get_layer("fire2_squeeze1x1").set_weights([w, b])
    for name in ("fire2_expand1x1", "fire2_expand3x3"):
        k, kb = model.get_layer(name).get_weights()
        k[:, :, c, :] /= 1000.0
        model.get_layer(name).set_weights([k, kb])
    out = tmp_path_factory.mktemp("outlier")
    bundles = convert(model, ["fp32"], out, preprocessing=digit_models["squeezenet1_1"]["preprocessing"],
                      labels=digits["labels"], calibration=digits["train"],
                      calibration_count=50)
    return Path(bundles["fp32"].path)


def test_outlier_layer_ranked_first_and_recovered(outlier, invoke, digits, tmp_path):
    fp32 = _top1(invoke, outlier, digits["test"])["top1"]
    plain = _json(invoke("quantize", outlier, "-p", "int8", "--calibration", digits["train"], "--report",
                         "-o", tmp_path / "plain", "--json"))["bundles"][0]
    int8 = _top1(invoke, plain["bundle"], digits["test"])["top1"]
    worst = plain["layer_report"]["worst"]
    print(f"outlier model: fp32 {fp32:.2%}, plain int8 {int8:.2%}; worst layer {worst[0]['layer']} "
          f"(quant SNR {worst[0]['quant_snr_db']} dB, SNR {worst[0]['snr_db']} dB)")
    # the outlier channel (x1000) crushes plain int8 by tens of points, far beyond what a seed moves
    assert fp32 >= 0.6 and fp32 - int8 > 0.05
    assert "fire2_squeeze1x1" in worst[0]["layer"] and worst[0]["quant_snr_db"] < 10 <= worst[1]["quant_snr_db"]
    csv = (tmp_path / "plain" / "squeezenet1_1_int8" / "layer_report.csv").read_text().splitlines()
    assert csv[0].startswith("rank,index,layer,op") and "fire2_squeeze1x1" in csv[1] and len(csv) > 30
    explorer = json.loads((tmp_path / "plain" / "squeezenet1_1_int8" / "layer_report_model_explorer.json").read_text())
    assert max(explorer["results"].items(), key=lambda kv: kv[1]["value"])[0] == worst[0]["tensor"]
    # benchmarked, the bundle's report.html has its per-layer panel, the outlier layer worst
    bench = invoke("bench", plain["bundle"], "--runs", "3", "--min-secs", "0", "--warmup-runs", "1", "--warmup-secs",
                   "0", "--repeat", "1", "--json")
    assert bench.exit_code == 0, bench.output
    (tmp_path / "bench.json").write_text(bench.stdout)
    assert invoke("report", tmp_path / "bench.json", "-o", tmp_path / "rep").exit_code == 0
    panel = (tmp_path / "rep" / "report.html").read_text().split("Per-layer quantization error: ")[1]
    assert panel.split("</h3>")[0].endswith(" int8")
    worst_table = panel.split("<tbody>")[1].split("</tbody>")[0]
    assert "fire2_squeeze1x1" in worst_table.split("</tr>")[0]

    result = invoke("quantize", outlier, "-p", "int8", "--calibration", digits["train"], "--eval", digits["test"],
                    "--recover-accuracy", "1.0", "--no-latency-limit", "-o", tmp_path / "mixed", "--json")
    rec = _json(result)["bundles"][0]["recovery"]
    print(json.dumps({k: rec[k] for k in ("steps", "chosen_step", "stopped", "layers")}, indent=1))
    assert rec["reached"] and rec["steps"][0]["drop_points"] > 5 and rec["chosen_step"] >= 1
    assert "fire2_squeeze1x1" in rec["ranking"][0]["layer"] and any("fire2_squeeze1x1" in x for x in rec["layers"])
    mixed = _top1(invoke, tmp_path / "mixed" / "squeezenet1_1_int8", digits["test"])["top1"]
    assert fp32 - mixed <= 0.01
    size = (tmp_path / "mixed" / "squeezenet1_1_int8" / "model.tflite").stat().st_size
    assert size < 0.5 * (outlier / "model.tflite").stat().st_size  # still mostly int8
    m = json.loads((tmp_path / "mixed" / "squeezenet1_1_int8" / "edgekit.json").read_text())
    assert m["mixed_precision"]["layers"] == rec["layers"]


def test_cli_prints_table_and_steps(outlier, invoke, digits, tmp_path):
    r = invoke("quantize", outlier, "-p", "int8", "--calibration", digits["train"], "--calibration-count", 50,
               "--eval", digits["test"], "--recover-accuracy", "1.0", "--no-latency-limit", "--report", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert "worst layers" in r.stdout and "quant SNR dB" in r.stdout and "layer_report.csv" in r.stdout
    assert "mixed precision (target: top-1 within 1.0 points of fp32)" in r.stdout and "chose step" in r.stdout


@pytest.mark.parametrize("precision,io,dtype", [("int8", "uint8", "uint8"), ("int8", "float32", "float32"),
                                                ("int16x8", "int8", "float32"), ("dynamic", "int8", "float32"),
                                                ("fp16", "int8", "float32")])
def test_precisions_and_io(invoke, digits, unfolded, tmp_path, precision, io, dtype):
    """Every precision and I/O type from an unfolded float model (int16x8 cannot take raw 0..255 pixels
    into a folded normalization: LiteRT's int16 ADD refuses that rescale)."""
    from converters.tflite_graph import read_graph
    fp32 = unfolded["mobilenet_v2"]["fp32"]
    made = _json(invoke("quantize", fp32, "-p", precision, "--io", io, "--calibration", digits["train"],
                        "--calibration-count", 50, "-o", tmp_path, "--json"))["bundles"][0]
    folder = Path(made["bundle"])
    assert folder.name == f"mobilenet_v2_{precision}" + ("_float32io" if (precision, io) == ("int8", "float32") else "")
    m = json.loads((folder / "edgekit.json").read_text())
    assert m["input"]["dtype"] == m["output"]["dtype"] == dtype and m["precision"] == precision
    assert made["fidelity"]["top1_agreement"] >= 0.9  # about 99% (fp16: 100%); broken: about 10%
    r = _top1(invoke, made["bundle"], digits["test"], "--compare", fp32)
    assert r["compare"]["top1_agreement"] >= 0.9
    graph = read_graph((folder / "model.tflite").read_bytes())
    weight_types = {op.type: graph.tensors[op.inputs[1]]["type"] for op in graph.ops if op.macs}
    if precision == "dynamic":  # depthwise weights stay float: quantized ones would leave XNNPACK
        assert weight_types == {"CONV_2D": "INT8", "DEPTHWISE_CONV_2D": "FLOAT32", "FULLY_CONNECTED": "INT8"}
    size = m["file_size"] / (fp32 / "model.tflite").stat().st_size
    assert size < (0.6 if precision == "fp16" else 0.45)


def test_model_without_signature(invoke, digits, hidden, tmp_path):
    bare = _strip_metadata(hidden, tmp_path / "nosig.tflite", signatures=False)
    from converters.tflite_graph import read_graph
    assert not read_graph(bare.read_bytes()).has_signature
    r = invoke("quantize", bare, "-p", "int8", "--mean", "0", "--std", "1", "--calibration", digits["train"],
               "--calibration-count", 50, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert _top1(invoke, tmp_path / "out" / "nosig_int8", digits["test"])["top1"] >= 0.6  # far above chance


def test_convert_with_both_quantizers(invoke, digits, digit_models, tmp_path):
    """convert --quantizer litert starts from the fp32 .tflite; with both, the two int8 builds are compared."""
    r = _json(invoke("convert", digit_models["mobilenet_v1"]["path"], "-p", "fp32", "-p", "int8", "-p", "int16x8",
                     "--quantizer", "litert", "--quantizer", "tflite", "--preprocessing", "tf", "--calibration",
                     digits["train"], "--calibration-count", 100, "--layer-report", "-o", tmp_path, "--json"))
    made = {(b["precision"], b.get("quantizer")): b for b in r["bundles"]}
    assert set(made) == {("fp32", None), ("int8", "tflite"), ("int8", "litert"), ("int16x8", "litert")}
    assert made[("int8", "litert")]["bundle"].endswith("mobilenet_v1_int8_litert")
    assert made[("int16x8", "litert")]["bundle"].endswith("mobilenet_v1_int16x8")
    assert made[("int8", "litert")]["versus_tflite"]["top1_agreement"] >= 0.9  # about 99%; apart: about 10%
    for key in (("int8", "tflite"), ("int8", "litert"), ("int16x8", "litert")):
        report = made[key]["layer_report"]
        assert report["layers"] > 20 and set(report["files"]) >= {"csv", "model_explorer", "plot"}
    m = json.loads((tmp_path / "mobilenet_v1_int8_litert" / "edgekit.json").read_text())
    assert m["quantizer"] == "litert" and m["versions"]["tensorflow"] and m["versions"]["ai_edge_quantizer"]


def test_api_returns_bundles(digits, digit_models, tmp_path):
    import edgekit
    result = edgekit.quantize(digit_models["squeezenet1_1"]["bundles"]["fp32"], ["fp32", "dynamic"], tmp_path)
    assert list(result) == ["fp32", "dynamic"] and isinstance(result["dynamic"], edgekit.Bundle)
    assert result["fp32"].fidelity["max_abs_diff"] == 0.0 and result.to_dict()["source"]["kind"] == "tflite"


@pytest.mark.parametrize("case,needle", [
    ("quantized", "already quantized"), ("junk", "not a TFLite model"), ("no-scaling", "--mean and --std"),
    ("recover-no-eval", "--recover-accuracy needs --eval"), ("labels", "2 labels for a model with 10 outputs"),
    ("int16x8-tflite", "made by the LiteRT quantizer only"),
])
def test_bad_input(invoke, digits, digit_models, hidden, tmp_path, case, needle):
    b = digit_models["squeezenet1_1"]["bundles"]
    (tmp_path / "junk.tflite").write_bytes(b"not a model at all")
    (tmp_path / "two.txt").write_text("a\nb\n")
    args = {"quantized": ["quantize", b["int8"], "-p", "int8"], "junk": ["quantize", tmp_path / "junk.tflite", "-p",
                                                                        "int8"],
            "no-scaling": ["quantize", hidden, "-p", "int8"],
            "recover-no-eval": ["quantize", b["fp32"], "-p", "int8", "--recover-accuracy", "1"],
            "labels": ["quantize", b["fp32"], "-p", "fp32", "--labels", tmp_path / "two.txt"],
            "int16x8-tflite": ["convert", "squeezenet1_1", "--size", "48", "-p", "int16x8"]}[case]
    r = invoke(*args, "--calibration", digits["train"], "-o", tmp_path / "out")
    assert r.exit_code == 1 and needle in r.output and "Traceback" not in r.output, r.output
    assert len([line for line in r.output.splitlines() if line.startswith("Error: ")]) == 1


def test_existing_output_needs_force(invoke, digit_models, tmp_path):
    fp32 = digit_models["squeezenet1_1"]["bundles"]["fp32"]
    assert invoke("quantize", fp32, "-p", "fp32", "-o", tmp_path).exit_code == 0
    again = invoke("quantize", fp32, "-p", "fp32", "-o", tmp_path)
    assert again.exit_code == 1 and "--force" in again.output
    assert invoke("quantize", fp32, "-p", "fp32", "-o", tmp_path, "--force").exit_code == 0


def test_recover_with_int16_activations(outlier, invoke, digits, tmp_path):
    """--keep-as int16: the recovered layers keep int8 weights and get int16 activations instead of float."""
    rec = _json(invoke("quantize", outlier, "-p", "int8", "--calibration", digits["train"], "--calibration-count",
                       50, "--eval", digits["test"], "--recover-accuracy", "1.0", "--keep-as", "int16",
                       "--no-latency-limit", "-o", tmp_path, "--json"))["bundles"][0]["recovery"]
    steps = rec["steps"]
    print("int16 recovery:", [(s["step"], round(s["top1"], 4), s["size"]) for s in steps])
    assert rec["keep_as"] == "int16" and steps[0]["drop_points"] > 5
    assert steps[-1]["top1"] - steps[0]["top1"] > 0.05 and steps[-1]["size"] < 1.2 * steps[0]["size"]  # weights int8
    # step 0 (plain int8) is more than 5 points off a 1-point target, so recovery must have kept layers:
    # the saved model is a later step, with the outlier layer among those kept, in int16
    assert rec["chosen_step"] >= 1 and any("fire2_squeeze1x1" in x for x in rec["layers"]), rec["layers"]
    from converters.tflite_graph import read_graph
    graph = read_graph((tmp_path / "squeezenet1_1_int8" / "model.tflite").read_bytes())
    assert any(t["type"] == "INT16" for t in graph.tensors)


def test_fp16_with_eval_and_no_calibration(invoke, digits, hidden, tmp_path):
    """fp16 needs no calibration images: with --eval (fidelity on the labelled images) none are loaded, and
    the LiteRT quantizer must not ask for them (it once crashed with a TypeError here)."""
    r = invoke("quantize", hidden, "-p", "fp16", "--mean", "0", "--std", "1", "--eval", digits["test"],
               "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert _top1(invoke, tmp_path / "digits_net_fp16", digits["test"])["top1"] >= 0.6  # far above chance
