"""Models nobody in this project wrote, and studies and results files a user got wrong, through the CLI:
custom layers, built-in preprocessing, open input sizes, early --force checks, and one-line refusals."""

import json
import textwrap

import pytest

from conftest import SAMPLES

CUSTOM_MODULE = '''
import keras

@keras.saving.register_keras_serializable(package="mine")
class Scale(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
'''


def _one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def _tiny(keras, first=None, input_shape=(16, 16, 3)):
    inputs = keras.Input(input_shape)
    x = first(inputs) if first is not None else inputs
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory):
    """A .keras file with a custom layer, and the folder of the module that registers it."""
    import importlib.util
    import keras
    folder = tmp_path_factory.mktemp("custom")
    (folder / "mylayers_rm.py").write_text(CUSTOM_MODULE)
    spec = importlib.util.spec_from_file_location("mylayers_rm_build", folder / "mylayers_rm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = folder / "custom.keras"
    _tiny(keras, module.Scale()).save(path)
    keras.saving.get_custom_objects().pop("mine>Scale", None)  # as a fresh process would see it
    return folder, path


def test_custom_layer_names_the_class_and_the_option(invoke, custom_model, tmp_path):
    _, path = custom_model
    error = _one_line_error(invoke("convert", path, "--mean", 0, "--std", 1, "-p", "fp32", "-o", tmp_path),
                            str(path), "'Scale'", "--custom-objects")
    assert "could not be deserialized" not in error


def test_custom_objects_module_makes_it_load(invoke, custom_model, tmp_path, monkeypatch):
    folder, path = custom_model
    monkeypatch.chdir(folder)  # the module is found in the working folder, as `python -m` would find it
    result = invoke("convert", path, "--mean", 0, "--std", 1, "-p", "fp32", "-o", tmp_path,
                    "--custom-objects", "mylayers_rm", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bundles"][0]["file_size"] > 0
    _one_line_error(invoke("convert", path, "--mean", 0, "--std", 1, "-p", "fp32", "-o", tmp_path / "x",
                           "--custom-objects", "no_such_module_here"), "no_such_module_here", "cannot import")


def test_builtin_rescaling_is_used_and_double_normalization_warned(invoke, tmp_path):
    import keras
    path = tmp_path / "rescaling.keras"
    _tiny(keras, keras.layers.Rescaling(1 / 127.5, offset=-1)).save(path)
    result = invoke("convert", path, "-p", "fp32", "-o", tmp_path / "a", "--json")
    assert result.exit_code == 0, result.output
    assert "Rescaling layer: it takes raw pixels" in result.stderr
    bundle = json.loads(result.stdout)["bundles"][0]["bundle"]
    manifest = json.loads((tmp_path / "a" / bundle / "edgekit.json").read_text())
    assert set(manifest["input"]["preprocessing"]["mean"]) == {0.0} and set(manifest["input"]["preprocessing"]["std"]) == {1.0}
    warned = invoke("convert", path, "--mean", 127.5, "--std", 127.5, "-p", "fp32", "-o", tmp_path / "b")
    assert warned.exit_code == 0 and "a second time" in warned.stderr


def test_size_fixes_an_open_input(invoke, tmp_path):
    import keras
    path = tmp_path / "open.keras"
    _tiny(keras, input_shape=(None, None, 3)).save(path)
    _one_line_error(invoke("convert", path, "--mean", 0, "--std", 1, "-p", "fp32", "-o", tmp_path), "--size")
    result = invoke("convert", path, "--mean", 0, "--std", 1, "--size", 24, "-p", "fp32", "-o", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)["bundles"][0]["bundle"]
    assert json.loads((tmp_path / bundle / "edgekit.json").read_text())["input"]["shape"] == [1, 24, 24, 3]


def test_force_is_checked_before_the_model_loads(invoke, tmp_path):
    (tmp_path / "squeezenet1_1_48_fp32").mkdir()
    result = invoke("convert", "squeezenet1_1", "--size", 48, "-p", "fp32", "-o", tmp_path)
    _one_line_error(result, "squeezenet1_1_48_fp32", "--force")
    assert "loading" not in result.stderr


def test_build_writes_what_convert_needs(invoke, tmp_path):
    path = tmp_path / "built.keras"
    assert invoke("build", "mobilenet_v2", "--alpha", 0.35, "--size", 32, "--classes", 3, "-o", path).exit_code == 0
    result = invoke("convert", path, "-p", "fp32", "-o", tmp_path, "--json")  # no --mean/--std
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("body, words", [
    ('min_secs = nan\n[[models]]\nname = "squeezenet1_1"\n', ["min_secs"]),
    ('[[models]]\nname = "squeezenet1_1"\nsize = 100000\n', ["100000", "size"]),
    ('classify = "no_such_folder"\n[[models]]\nname = "squeezenet1_1"\n', ["classify", "does not exist"]),
])
def test_study_mistakes_are_refused_before_any_work(invoke, tmp_path, body, words):
    config = tmp_path / "study.toml"
    config.write_text(textwrap.dedent(body))
    result = invoke("run", config, "-o", tmp_path / "out")
    _one_line_error(result, *words)
    assert not (tmp_path / "out" / "bundles").exists()


def test_report_refuses_results_without_an_environment(invoke, tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"environment": {"os": "x"}, "rows": []}))
    _one_line_error(invoke("report", bad, "-o", tmp_path / "r"), str(bad), "cpu")


def test_calibration_images_ship_with_the_package():
    from edgekit.sources import default_calibration
    assert default_calibration() == str(SAMPLES) and any(SAMPLES.glob("*.jpg"))
