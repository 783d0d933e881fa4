"""The converter stage, through the CLI, on the real converter and LiteRT."""

import hashlib
import json

import numpy as np
import pytest

from conftest import PRECISIONS, SAMPLES, TINY_ZOO
from device_bench.manifest import LABELS_NAME, META_MANIFEST, read_bundle, read_embedded, validate_manifest


@pytest.mark.parametrize("name", [m[0] for m in TINY_ZOO])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_bundle_loads_runs_and_carries_its_manifest(tiny_bundles, name, precision):
    from ai_edge_litert.interpreter import Interpreter
    folder = tiny_bundles[(name, precision)]
    manifest = json.loads((folder / "edgekit.json").read_text())
    validate_manifest(manifest)
    assert manifest["precision"] == precision
    assert manifest["file_size"] == (folder / "model.tflite").stat().st_size
    assert (folder / "labels.txt").read_text().splitlines()[3] == "class 3"
    embedded = read_embedded(folder / "model.tflite")
    assert json.loads(embedded[META_MANIFEST]) == {k: v for k, v in manifest.items() if k != "model_sha256"}
    assert manifest["model_sha256"] == hashlib.sha256((folder / "model.tflite").read_bytes()).hexdigest()
    assert embedded[LABELS_NAME].decode() == (folder / "labels.txt").read_text()
    it = Interpreter(model_path=str(folder / "model.tflite"))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    assert list(inp["shape"]) == [1, 64, 64, 3] == manifest["input"]["shape"]
    assert np.dtype(inp["dtype"]).name == manifest["input"]["dtype"]
    assert manifest["input"]["dtype"] == ("uint8" if precision == "int8" else "float32")
    assert inp["name"] == "image" and it.get_output_details()[0]["name"] == "probabilities"
    assert manifest["input"]["preprocessing"]["mode"] == "folded"  # zoo models take raw pixels
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    it.invoke()
    out = it.get_tensor(it.get_output_details()[0]["index"])
    assert out.shape == (1, 10) and np.all(np.isfinite(out.astype(float)))
    fid = manifest["fidelity"]
    assert fid["images"] == len(list(SAMPLES.glob("*.*"))) - 1  # every sample photograph but SOURCES.md
    if precision == "fp32":
        assert fid["max_abs_diff"] < 1e-4 and fid["top1_agreement"] == 1.0


def test_lone_tflite_reads_like_its_bundle(tiny_bundles, tmp_path):
    folder = tiny_bundles[("mobilenet_v2", "int8")]
    lone = tmp_path / "copy.tflite"
    lone.write_bytes((folder / "model.tflite").read_bytes())
    ref = read_bundle(lone)
    assert ref.origin == "embedded"
    assert ref.manifest == {k: v for k, v in read_bundle(folder).manifest.items() if k != "model_sha256"}
    assert ref.labels == [f"class {i}" for i in range(10)]


def test_sizes_shrink_by_precision(tiny_bundles):
    size = {p: tiny_bundles[("mobilenet_v1", p)].joinpath("model.tflite").stat().st_size for p in PRECISIONS}
    assert size["fp16"] < 0.6 * size["fp32"]
    assert size["int8"] < 0.4 * size["fp32"] and size["dynamic"] < 0.4 * size["fp32"]


@pytest.mark.slow
def test_full_size_mobilenet_v2_ratios(invoke, tmp_path):
    """Only full size proves the published ratios: int8 <= 0.29x fp32, fp16 <= 0.51x."""
    result = invoke("convert", "mobilenet_v2", "-p", "fp32", "-p", "fp16", "-p", "int8", "-o", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    sizes = {b["precision"]: b["file_size"] for b in json.loads(result.stdout)["bundles"]}
    assert abs(sizes["fp32"] - 13.92e6) < 0.05e6
    assert sizes["int8"] <= 0.29 * sizes["fp32"] and sizes["fp16"] <= 0.51 * sizes["fp32"]


def test_user_model_io_and_preprocessing(invoke, tmp_path):
    import keras
    keras.utils.set_random_seed(1)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x)).save(tmp_path / "mine.keras")
    src = tmp_path / "mine.keras"
    none = invoke("convert", src, "-p", "fp32", "-o", tmp_path / "o")
    assert none.exit_code == 1 and "--mean and --std" in none.output
    for io in ("int8", "float32"):
        r = invoke("convert", src, "-p", "int8", "--io", io, "--mean", "0", "--std", "255",
                   "-o", tmp_path / io, "--json")
        assert r.exit_code == 0, r.output
        m = json.loads((tmp_path / io / f"mine_int8_{io}io" / "edgekit.json").read_text())
        assert m["input"]["dtype"] == io and m["output"]["dtype"] == io
        assert m["input"]["preprocessing"]["std"] == [255.0] * 3
        assert m["source"]["kind"] == "file" and len(m["source"]["sha256"]) == 64
    again = invoke("convert", src, "-p", "int8", "--io", "int8", "--mean", "0", "--std", "255", "-o", tmp_path / "int8")
    assert again.exit_code == 1 and "--force" in again.output
    wrong = invoke("convert", src, "-p", "fp32", "--mean", "0", "--std", "255", "--size", "64", "-o", tmp_path / "w")
    assert wrong.exit_code == 1 and "got --size 64" in wrong.output


def _tflite_outputs(bundle, batches):
    """The raw outputs of a bundle's model.tflite in LiteRT on the given (already typed) inputs."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(str(bundle / "model.tflite"), num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for x in batches:
        it.set_tensor(i["index"], x.astype(i["dtype"]))
        it.invoke()
        out.append(it.get_tensor(o["index"]).copy())
    return np.stack(out)


def test_folding_costs_no_op(invoke, tmp_path):
    """A user's model with a SAME first convolution (odd size: padded on both sides), folded: the float
    build takes raw pixels through an explicit pad of the mean and the folded convolution, and computes
    what the unfolded build computes on normalized pixels to float error; the int8 build has no op for
    the normalization at all, its uint8 input holding it (scale 1/127.5, zero point 127: half a pixel from
    the mean, recorded and shown). A model whose first layer is not a convolution keeps a Rescaling, and
    the output says so."""
    import keras
    from converters.tflite_graph import op_sequence
    keras.utils.set_random_seed(2)
    inp = keras.Input((15, 15, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization(beta_initializer="random_normal")(x)
    x = keras.layers.Flatten()(keras.layers.ReLU()(x))
    keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x)).save(tmp_path / "same.keras")
    common = ["--mean", "127.5", "--std", "127.5", "--calibration", SAMPLES, "--json"]
    r = invoke("convert", tmp_path / "same.keras", "--fold-preprocessing", "-p", "fp32", "-p", "int8", "-o",
               tmp_path / "folded", *common)
    assert r.exit_code == 0, r.output
    u = invoke("convert", tmp_path / "same.keras", "--no-fold-preprocessing", "-p", "fp32", "-o",
               tmp_path / "unfolded", *common)
    assert u.exit_code == 0, u.output
    fp32, int8 = tmp_path / "folded" / "same_fp32", tmp_path / "folded" / "same_int8"
    assert op_sequence((fp32 / "model.tflite").read_bytes())[:2] == ["PADV2", "CONV_2D"]
    ops = op_sequence((int8 / "model.tflite").read_bytes())
    assert ops[:2] == ["QUANTIZE", "CONV_2D"] and "MUL" not in ops and "ADD" not in ops
    pixels = np.random.default_rng(0).integers(0, 256, (8, 1, 15, 15, 3)).astype(np.float32)
    want = _tflite_outputs(tmp_path / "unfolded" / "same_fp32", (pixels - 127.5) / 127.5)
    got = _tflite_outputs(fp32, pixels)
    assert np.abs(want - got).max() <= 1e-5, np.abs(want - got).max()  # a border padded with 0 differs by ~0.1
    m = json.loads((int8 / "edgekit.json").read_text())
    assert (m["input"]["dtype"], m["input"]["zero_point"]) == ("uint8", 127)
    assert m["input"]["scale"] == pytest.approx(1 / 127.5, rel=1e-6)
    folded = m["input"]["preprocessing"]["folded"]
    assert folded["method"] == "input_quantization" and folded["zero_point_error_pixels"] == 0.5
    # the device side feeds a raw pixel as itself: (pixel - 127) / 127.5 quantized back is the pixel
    assert m["input"]["preprocessing"]["mean"] == [127.0] * 3 and m["input"]["preprocessing"]["std"] == [127.5] * 3
    shown = invoke("inspect", int8)
    assert "into the input's scale and zero point (zero point 0.5 pixel from the mean)" in shown.stdout
    quantized = _tflite_outputs(int8, pixels).astype(np.float32) * m["output"]["scale"]
    assert np.mean(quantized.argmax(-1) == want.argmax(-1)) >= 0.75  # int8 on random weights: near ties flip
    dense = keras.Input((8, 8, 3))
    flat = keras.layers.Flatten()(dense)
    keras.Model(dense, keras.layers.Dense(3, activation="softmax")(flat)).save(tmp_path / "dense.keras")
    d = invoke("convert", tmp_path / "dense.keras", "--fold-preprocessing", "--preprocessing", "torch", "-p", "fp32",
               "-o", tmp_path / "dense", "--json")
    assert d.exit_code == 0, d.output
    assert "could not go into the first convolution (the first layer is Flatten" in d.stderr
    assert "MUL and an ADD over every input pixel" in d.stderr
    assert "MUL" in op_sequence((tmp_path / "dense" / "dense_fp32" / "model.tflite").read_bytes())


def test_unsupported_op_is_named(invoke, tmp_path):
    import keras
    import tensorflow as tf

    class Fft(keras.layers.Layer):
        def call(self, x):
            return tf.math.real(tf.signal.fft2d(tf.cast(x, tf.complex64)))

    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, keras.layers.Flatten()(Fft()(inp)))
    from converters.keras_to_tflite import convert, export_saved_model
    from device_bench.errors import EdgekitError
    export_saved_model(model, tmp_path / "sm")
    with pytest.raises(EdgekitError, match=r"cannot express .*FFT2D.*--allow-tf-ops"):
        convert(tmp_path / "sm", "fp32")


def test_unsupported_layer_is_named_through_the_cli(invoke, tmp_path):
    import keras
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Resizing(24, 24, interpolation="bicubic", name="upscale")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x)).save(tmp_path / "bicubic.keras")
    r = invoke("convert", tmp_path / "bicubic.keras", "--mean", "0", "--std", "255", "-p", "fp32", "-p", "fp16",
               "-o", tmp_path / "out")
    assert r.exit_code == 1
    errors = [line for line in r.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 2 and all("tf.ResizeBicubic" in e and "upscale" in e for e in errors)
    assert not (tmp_path / "out" / "bicubic_fp32").exists()
    flex = invoke("convert", tmp_path / "bicubic.keras", "--mean", "0", "--std", "255", "-p", "fp32",
                  "--allow-tf-ops", "-o", tmp_path / "out")
    assert flex.exit_code == 0, flex.output
    assert "a device without TensorFlow cannot run it" in flex.output
    from converters.tflite_graph import op_names
    assert "FlexResizeBicubic" in op_names((tmp_path / "out" / "bicubic_fp32" / "model.tflite").read_bytes())
    bench = invoke("bench", tmp_path / "out" / "bicubic_fp32", "--runs", "1", "--min-secs", "0", "--json")
    assert bench.exit_code == 1 and "bicubic" in json.loads(bench.stdout)[0]["error"]


def test_lambda_model_converts_only_with_unsafe(invoke, tmp_path):
    import keras
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x)).save(tmp_path / "lam.keras")
    args = ["convert", tmp_path / "lam.keras", "--mean", "127.5", "--std", "127.5", "-p", "fp32", "-o", tmp_path / "o"]
    refused = invoke(*args)
    assert refused.exit_code == 1 and "--unsafe" in refused.output
    assert invoke(*args, "--unsafe").exit_code == 0
    assert (tmp_path / "o" / "lam_fp32" / "model.tflite").exists()


def test_broken_variable_file_is_caught(tmp_path):
    """from_concrete_functions(..., keras_model) leaves weights as variables under Keras 3."""
    import tensorflow as tf
    from converters.tflite_check import verify_tflite
    from device_bench.errors import EdgekitError
    from edgekit.zoo import create_model
    model = create_model("mobilenet_v2", alpha=0.35, size=64, classes=10)
    fn = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([1, 64, 64, 3], tf.float32))
    try:
        data = tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert()
    except Exception:
        pytest.skip("this TensorFlow refuses the broken path outright")
    from device_bench.engines import InterpreterEngine
    from device_bench.runtime import resolve_runtime
    (tmp_path / "trap.tflite").write_bytes(data)
    it = InterpreterEngine(tmp_path / "trap.tflite", resolve_runtime("litert"))  # it loads and runs: only the
    assert len(data) < 300_000  # check below tells it is broken, as the weights are missing
    with pytest.raises(EdgekitError, match="broken conversion"):
        verify_tflite(data, it, "trap")


@pytest.mark.parametrize("setup,args,needle", [
    ("missing", ["--calibration", "{tmp}/nowhere"], "does not exist"),
    ("empty", ["--calibration", "{tmp}/empty"], "holds no image files"),
    ("junk", ["--calibration", "{tmp}/junk"], "no decodable image"),
])
def test_bad_calibration_folders(invoke, tmp_path, setup, args, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "junk" / "b.png").write_bytes(b"")
    result = invoke("convert", "squeezenet1_1", "--size", "48", "-p", "int8", "-o", tmp_path / "out",
                    *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1 and needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "squeezenet1_1_48_int8").exists()


def test_some_bad_calibration_files_are_named_and_skipped(invoke, tmp_path):
    import shutil
    cal = tmp_path / "cal"
    cal.mkdir()
    shutil.copy(SAMPLES / "cat.jpg", cal / "cat.jpg")
    (cal / "broken.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes()[:300])
    result = invoke("convert", "squeezenet1_1", "--size", "48", "--classes", "3", "-p", "int8",
                    "--calibration", cal, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "broken.jpg" in result.output and "1 calibration images" in result.output
    three = invoke("classify", tmp_path / "out" / "squeezenet1_1_48_int8", SAMPLES / "cat.jpg", "--json")
    assert three.exit_code == 0 and len(json.loads(three.stdout)[0]["predictions"]) == 3  # default: all 3


def test_unwritable_output(invoke, tmp_path):
    """The bundle's folder cannot be made (a file stands where its parent should be): a clean error
    from the bundle writer, not click's own usage error."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("convert", "squeezenet1_1", "--size", "48", "--classes", "3", "-p", "fp32", "-o", blocker / "out")
    assert result.exit_code == 1, result.output
    assert "cannot write" in result.output and "Not a directory" in result.output
    assert "Traceback" not in result.output and blocker.read_text() == "x"


def test_debug_layers_writes_csv(invoke, tmp_path):
    result = invoke("convert", "mobilenet_v2", "--alpha", "0.35", "--size", "48", "--classes", "3",
                    "-p", "int8", "--debug-layers", "--calibration-count", "3", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("worst layer:") == 5
    rows = (tmp_path / "mobilenet_v2_035_48_int8" / "layer_errors.csv").read_text().splitlines()
    assert rows[0].startswith("rmse/scale") and len(rows) > 10


@pytest.mark.parametrize("edit,needle", [
    (lambda m: m.update(precision="fp64"), "field 'precision' must be one of"),
    (lambda m: m["input"].pop("dtype"), "missing field 'input.dtype'"),
    (lambda m: m.update(format=7), "field 'format' must be 1 (the format this edgekit reads), got 7"),
    (lambda m: m["input"].update(shape="224"), "field 'input.shape' must be [1, H, W, C] of positive integers"),
    (lambda m: m["input"]["preprocessing"].update(resize="lanczos"), "field 'input.preprocessing.resize' must be"),
    (lambda m: m["input"]["preprocessing"].update(crop_fraction=5), "'input.preprocessing.crop_fraction' must be"),
    (lambda m: m["input"]["preprocessing"].update(mean=[1, 2]), "'input.preprocessing.mean' must be 1 or 3"),
    (lambda m: m["input"]["preprocessing"].update(std=[0.0]), "'input.preprocessing.std' must be 1 or 3 finite"),
    (lambda m: m["input"]["preprocessing"].update(mean=[float("nan")] * 3), "'input.preprocessing.mean' must"),
    (lambda m: m["input"]["preprocessing"].update(mean=[None] * 3), "'input.preprocessing.mean' must"),
    (lambda m: m["input"].update(shape=[1, 30000, 30000, 3]), "is not the model's (float32"),
    (lambda m: m["input"].update(shape=[1, 0, 64, 3]), "field 'input.shape' must be"),
    (lambda m: m.update(file_size="big"), "field 'file_size' must be a size in bytes"),
    (lambda m: m.update(model_sha256="0" * 64), "its sha256 does not match the manifest"),
    (lambda m: m.update(file_size=m["file_size"] + 1), "but the manifest says"),
    (lambda m: m["input"].update(dtype="int8"), "the manifest's input (int8 [1, 64, 64, 3]) is not the model's"),
])
def test_bad_manifest_names_the_field(invoke, tiny_bundles, tmp_path, edit, needle):
    import shutil
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundles[("squeezenet1_1", "fp32")], bundle)
    manifest = json.loads((bundle / "edgekit.json").read_text())
    edit(manifest)
    (bundle / "edgekit.json").write_text(json.dumps(manifest))
    r = invoke("classify", bundle, SAMPLES / "cat.jpg")
    assert r.exit_code == 1 and needle in r.output and str(bundle) in r.output, r.output
