"""`edgekit quantize` on .tflite files as they come from elsewhere: op codes of the older schema, float16
weights, a segmentation output; and fidelity figures that say when they measure nothing (random weights).
Each model file is built here, small; real converter, real quantizer, real LiteRT."""

import json
from collections import Counter

import numpy as np
import pytest

from conftest import SAMPLES


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _types(path):
    """How many tensors of each type the main graph of a .tflite holds, and how often each operator runs."""
    from converters.tflite_graph import op_counts, read_graph
    data = path.read_bytes()
    return Counter(t["type"] for t in read_graph(data).tensors), op_counts(data)


def _refused(result, *needles):
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), result.output


def _save(model, path):
    model.save(path)
    return path


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory):
    """Small random-weight Keras models: a classifier (near-uniform outputs), one whose bias makes it predict
    the same class for every image, one with no convolution or dense layer, and a segmentation net."""
    import keras
    folder = tmp_path_factory.mktemp("real_models")
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, activation="relu")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    out = {
        "classifier": keras.Model(inp, keras.layers.Dense(5, activation="softmax")(pooled)),
        # random weights whose outputs hardly depend on the image: like a random ResNet50, one class everywhere
        "one_class": keras.Model(inp, keras.layers.Dense(
            10, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3),
            bias_initializer=keras.initializers.RandomNormal(stddev=3.0))(pooled)),
        "depthwise_only": keras.Model(inp, keras.layers.Softmax()(keras.layers.GlobalAveragePooling2D()(
            keras.layers.DepthwiseConv2D(3)(inp)))),
    }
    paths = {name: _save(model, folder / f"{name}.keras") for name, model in out.items()}
    seg = keras.Model(inp, keras.layers.Conv2D(5, 1)(keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp)))
    from converters.keras_to_tflite import convert, export_saved_model
    export_saved_model(seg, folder / "seg_saved")
    paths["segmentation"] = folder / "segmentation.tflite"
    paths["segmentation"].write_bytes(convert(folder / "seg_saved", "fp32"))
    return paths


@pytest.fixture(scope="session")
def converted(invoke, keras_files, tmp_path_factory):
    """The classifier through `edgekit convert`: fp32, and fp16 (TFLiteConverter's float16 optimization:
    float16 weights read through DEQUANTIZE ops, as in every MediaPipe model)."""
    out = tmp_path_factory.mktemp("converted")
    made = _json(invoke("convert", keras_files["classifier"], "-p", "fp32", "-p", "fp16", "--preprocessing", "tf",
                        "-o", out, "--json"))
    return {b["precision"]: out / f"classifier_{b['precision']}" for b in made["bundles"]}


@pytest.fixture(scope="session")
def old_schema(converted, tmp_path_factory):
    """The fp32 classifier with its operator codes as the older schema wrote them: the operator only in
    deprecated_builtin_code, builtin_code left 0 (which reads as ADD). A foreign file: no edgekit manifest
    (rewritten, the embedded one's file_size would be stale), so quantize is told its pixel scaling."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    from device_bench.manifest import META_MANIFEST
    from device_bench.tflite_metadata import without_entries
    bare = without_entries((converted["fp32"] / "model.tflite").read_bytes(), [META_MANIFEST])
    model = fbu.convert_bytearray_to_object(bytearray(bare))
    for code in model.operatorCodes:
        assert code.builtinCode < 127  # every operator of this model has a code the older schema can hold
        code.deprecatedBuiltinCode, code.builtinCode = code.builtinCode, 0
    path = tmp_path_factory.mktemp("old_schema") / "old_schema.tflite"
    path.write_bytes(bytes(fbu.convert_object_to_bytearray(model)))
    return path


def test_old_schema_op_codes_decoded_and_quantized(invoke, old_schema, converted, tmp_path):
    """A file of the older schema: its operators are read as TFLite reads them, and each quantized build
    really is quantized (it used to come out float32 under a quantized name, and int8 did not load)."""
    from device_bench.manifest import tflite_schema
    table = tflite_schema().Model.GetRootAs(old_schema.read_bytes(), 0)
    assert {table.OperatorCodes(i).BuiltinCode() for i in range(table.OperatorCodesLength())} == {0}
    assert _types(old_schema)[1] == _types(converted["fp32"] / "model.tflite")[1]  # CONV_2D, not ADD
    made = _json(invoke("quantize", old_schema, "-p", "fp16", "-p", "dynamic", "-p", "int8", "--preprocessing", "tf",
                        "--calibration", SAMPLES, "-o", tmp_path, "--json"))
    folders = {b["precision"]: tmp_path / f"old_schema_{b['precision']}" for b in made["bundles"]}
    fp16, dynamic, int8 = (_types(folders[p] / "model.tflite")[0] for p in ("fp16", "dynamic", "int8"))
    assert fp16["FLOAT16"] >= 4 and dynamic["INT8"] >= 3 and int8["INT8"] > int8["FLOAT32"]
    r = invoke("classify", folders["int8"], SAMPLES / "cat.jpg", "--json")
    assert r.exit_code == 0, r.output


def test_float16_weights_dequantized_then_quantized(invoke, converted, tmp_path):
    """A float model stored with float16 weights is a float model: its fp32 bundle is the float32 graph
    (same outputs, no DEQUANTIZE), and int8 is made from it."""
    source = converted["fp16"] / "model.tflite"
    types, ops = _types(source)
    assert types["FLOAT16"] >= 4 and ops["DEQUANTIZE"] >= 4  # what MediaPipe's models look like
    made = _json(invoke("quantize", converted["fp16"], "-p", "fp32", "-p", "int8", "--calibration", SAMPLES,
                        "-o", tmp_path, "--json"))
    assert [b["precision"] for b in made["bundles"]] == ["fp32", "int8"]
    fp32 = tmp_path / "classifier_fp16_fp32" / "model.tflite"
    types, ops = _types(fp32)
    assert "FLOAT16" not in types and "DEQUANTIZE" not in ops and ops["CONV_2D"] == 2
    assert _types(tmp_path / "classifier_fp16_int8" / "model.tflite")[0]["INT8"] > 0
    from ai_edge_litert.interpreter import Interpreter
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)

    def run(path):
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_allclose(run(fp32), run(source), atol=1e-6)


def test_segmentation_output_refused(invoke, keras_files, tmp_path):
    _refused(invoke("quantize", keras_files["segmentation"], "-p", "int8", "--mean", "127.5", "--std", "127.5",
                    "--calibration", SAMPLES, "-o", tmp_path),
             "segmentation.tflite", "not an image classifier", "[1, 16, 16, 5]")
    assert not any(tmp_path.iterdir())


def test_build_without_quantized_tensor_refused(invoke, keras_files, tmp_path):
    """Dynamic range quantizes convolutions and dense layers: a model with neither would come out float32
    under the name dynamic."""
    made = _json(invoke("convert", keras_files["depthwise_only"], "-p", "fp32", "--preprocessing", "tf", "-o",
                        tmp_path, "--json"))
    _refused(invoke("quantize", made["bundles"][0]["bundle"], "-p", "dynamic", "-o", tmp_path / "q"),
             "dynamic", "holds no quantized tensor")
    assert not (tmp_path / "q" / "depthwise_only_dynamic").exists()


def test_random_weights_flagged(invoke, keras_files, old_schema, tmp_path):
    """Agreement between two builds of a model that says the same of every image measures nothing: a model
    predicting one class everywhere, or near-uniform outputs, is flagged; trained_weights is not claimed."""
    fid = _json(invoke("convert", keras_files["one_class"], "-p", "fp32", "--preprocessing", "tf", "-o", tmp_path,
                       "--json"))["bundles"][0]["fidelity"]
    assert fid["degenerate_output"] and fid["top_class_share"] == 1.0 and fid["entropy"] < 0.99, fid
    assert fid["trained_weights"] is None  # a user's file: whether it was trained is not known
    near_uniform = _json(invoke("quantize", old_schema, "-p", "fp32", "--preprocessing", "tf", "--calibration",
                                SAMPLES, "-o",
                                tmp_path / "q", "--json"))["bundles"][0]["fidelity"]
    assert near_uniform["degenerate_output"] and near_uniform["entropy"] > 0.99, near_uniform
    zoo = _json(invoke("convert", "squeezenet1_1", "--size", 48, "--classes", 3, "-p", "fp32", "-o",
                       tmp_path / "zoo", "--json"))["bundles"][0]
    assert zoo["fidelity"]["trained_weights"] is False  # random weights, and said so
    again = _json(invoke("quantize", zoo["bundle"], "-p", "fp32", "--calibration", SAMPLES, "-o", tmp_path / "zq",
                         "--json"))["bundles"][0]["fidelity"]
    assert again["trained_weights"] is False  # and still said of a bundle made from that bundle
