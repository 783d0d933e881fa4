"""The model zoo: registry, exact parameter counts, multiply-adds, build CLI and its errors."""

import json

import pytest

from edgekit.zoo import create_model, get_spec, list_models
from edgekit.zoo.macs import count_macs
from device_bench.errors import EdgekitError


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1", "mobilenet_v1", "mobilenet_v2"])
def test_every_registered_model_builds_small(name):
    assert name in list_models()
    spec = get_spec(name)
    model = create_model(name, alpha=min(spec.alphas), size=max(spec.min_size, 48), classes=7)
    assert model.output_shape == (None, 7)
    assert model.input_shape == (None, max(spec.min_size, 48), max(spec.min_size, 48), 3)
    assert all("/" not in layer.name for layer in model.layers)


@pytest.mark.parametrize("name,alpha,params", [
    ("squeezenet1_0", None, 1_248_424), ("squeezenet1_1", None, 1_235_496),
    ("mobilenet_v1", 1.0, 4_253_864), ("mobilenet_v2", 1.0, 3_538_984)])
def test_published_parameter_counts_exactly(name, alpha, params):
    assert create_model(name, alpha=alpha, size=224).count_params() == params


@pytest.mark.parametrize("name,alpha,size,published,tolerance", [
    ("mobilenet_v1", 1.0, 224, 569e6, 0.03), ("mobilenet_v1", 0.75, 224, 317e6, 0.03),
    ("mobilenet_v1", 0.5, 224, 150e6, 0.03), ("mobilenet_v1", 0.25, 224, 41e6, 0.03),
    ("mobilenet_v2", 1.0, 224, 300e6, 0.03), ("mobilenet_v2", 0.35, 224, 59e6, 0.03),
    ("squeezenet1_1", None, 224, 349e6, 0.03), ("squeezenet1_0", None, 224, 819e6, 0.08)])
def test_multiply_adds_match_published(name, alpha, size, published, tolerance):
    macs = count_macs(create_model(name, alpha=alpha, size=size))
    assert abs(macs - published) / published <= tolerance, macs


def test_squeezenet_paper_input_gives_55_27_13_maps():
    model = create_model("squeezenet1_0")
    assert model.input_shape[1] == 227
    sizes = [model.get_layer(n).output.shape[1] for n in ("pool1", "pool4", "pool8")]
    assert sizes == [55, 27, 13]


@pytest.mark.parametrize("kwargs,needle", [
    (dict(name="mobilenet_v3"), "did you mean mobilenet_v2"),
    (dict(name="mobilenet_v2", alpha=0.3), "got 0.3"),
    (dict(name="mobilenet_v1", size=16), "got 16"),
    (dict(name="squeezenet1_1", weights="imagenet"), "local weights file"),
    (dict(name="mobilenet_v2", size=100, weights="imagenet"), "got 100"),
])
def test_bad_build_arguments_are_named(kwargs, needle):
    with pytest.raises(EdgekitError, match=needle):
        create_model(**kwargs)


def test_models_command_lists_zoo_as_json(invoke):
    result = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) == {"squeezenet1_0", "squeezenet1_1", "mobilenet_v1", "mobilenet_v2"}
    assert rows["mobilenet_v2"]["params"] == 3_538_984
    assert rows["squeezenet1_1"]["preprocessing"] == "torch"
    assert "local weights file" in rows["squeezenet1_0"]["weights"]
    table = invoke("models")
    assert "mobilenet_v1" in table.output and "4,253,864" in table.output


def test_build_writes_keras_file_and_refuses_overwrite(invoke, tmp_path):
    out = tmp_path / "m.keras"
    result = invoke("build", "mobilenet_v2", "--alpha", "0.35", "--size", "64", "--classes", "5", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 100_000
    again = invoke("build", "mobilenet_v2", "--alpha", "0.35", "--size", "64", "-o", out)
    assert again.exit_code == 1 and "already exists" in again.output and "--force" in again.output
    forced = invoke("build", "squeezenet1_1", "--size", "64", "--classes", "3", "-o", out, "--force")
    assert forced.exit_code == 0
    from edgekit.zoo.loading import load_keras_model
    assert load_keras_model(out).output_shape == (None, 3)


def test_build_with_local_weights_file(invoke, tmp_path):
    model = create_model("squeezenet1_1", size=48, classes=4)
    weights = tmp_path / "sq.weights.h5"
    model.save_weights(weights)
    out = tmp_path / "sq.keras"
    result = invoke("build", "squeezenet1_1", "--size", "48", "--classes", "4", "--weights", weights, "-o", out)
    assert result.exit_code == 0, result.output
    from edgekit.zoo.loading import load_keras_model
    loaded = load_keras_model(out)
    import numpy as np
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))
    bad = invoke("build", "squeezenet1_1", "--size", "48", "--classes", "5", "--weights", weights,
                 "-o", tmp_path / "x.keras")
    assert bad.exit_code == 1 and str(weights) in bad.output
    assert not (tmp_path / "x.keras").exists()


@pytest.mark.parametrize("args,needle", [
    (["build", "nosuchnet", "-o", "{tmp}/a.keras"], "unknown model 'nosuchnet'"),
    (["build", "mobilenet_v1", "--alpha", "0.6", "-o", "{tmp}/a.keras"], "got 0.6"),
    (["build", "mobilenet_v1", "--size", "8", "-o", "{tmp}/a.keras"], "got 8"),
    (["build", "mobilenet_v1", "-o", "{tmp}/missing/a.keras"], "does not exist"),
    (["build", "mobilenet_v1", "--weights", "{tmp}/nope.h5", "-o", "{tmp}/a.keras"], "nope.h5"),
])
def test_build_errors_are_one_line(invoke, tmp_path, args, needle):
    result = invoke(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and needle in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "a.keras").exists()


def test_imagenet_labels_come_from_keras_in_index_order(monkeypatch):
    """Keras's own class index (decode_predictions' file) supplies the names; none are shipped."""
    from edgekit.zoo.imagenet import imagenet_labels
    fetched = imagenet_labels()
    assert fetched is None or (len(fetched) == 1000 and fetched[0] == "tench")
    import keras.src.applications.imagenet_utils as utils
    monkeypatch.setattr(utils, "CLASS_INDEX", {str(i): [f"n{i:08d}", f"name{i}"] for i in range(1000)})
    assert imagenet_labels() == [f"name{i}" for i in range(1000)]


def test_imagenet_weights_offline_fail_in_one_line_or_load(invoke, tmp_path):
    """Offline, Keras's download fails: one line naming what and how to pass a file."""
    result = invoke("build", "mobilenet_v2", "--alpha", "0.35", "--size", "96", "--weights", "imagenet",
                    "-o", tmp_path / "w.keras")
    if result.exit_code == 0:  # online or cached: real weights were used
        assert (tmp_path / "w.keras").exists()
    else:
        assert "could not fetch ImageNet weights" in result.output and "--weights PATH" in result.output
        assert not (tmp_path / "w.keras").exists()
