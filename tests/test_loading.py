"""Loading a user's own model: .keras (safe mode), .h5, SavedModel; bad files."""

import pytest

from device_bench.errors import EdgekitError
from edgekit.zoo.loading import load_keras_model


@pytest.fixture(scope="session")
def tiny_model():
    import keras
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


def test_keras_and_h5_load(tiny_model, tmp_path):
    for name in ("m.keras", "m.h5"):
        tiny_model.save(tmp_path / name)
        assert load_keras_model(tmp_path / name).output_shape == (None, 3)


def test_saved_model_folder_loads_with_fixed_input(tiny_model, tmp_path):
    import keras
    inp = keras.Input((None, None, 3))
    flexible = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3)(inp)))
    flexible.export(str(tmp_path / "sm"), format="tf_saved_model")
    with pytest.raises(EdgekitError, match="no fixed size"):
        load_keras_model(tmp_path / "sm")
    tiny_model.export(str(tmp_path / "sm2"), format="tf_saved_model",
                      input_signature=[keras.InputSpec(shape=(1, 16, 16, 3), dtype="float32")])
    model = load_keras_model(tmp_path / "sm2")
    import numpy as np
    x = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), tiny_model.predict(x, verbose=0), atol=1e-6)


def test_lambda_layer_needs_unsafe(tmp_path):
    import keras
    inp = keras.Input((8, 8, 3))
    out = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    keras.Model(inp, keras.layers.Flatten()(out)).save(tmp_path / "lam.keras")
    with pytest.raises(EdgekitError, match="--unsafe"):
        load_keras_model(tmp_path / "lam.keras")
    import numpy as np
    x = np.arange(8 * 8 * 3, dtype=np.float32).reshape(1, 8, 8, 3)
    loaded = load_keras_model(tmp_path / "lam.keras", unsafe=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), 2.0 * x.reshape(1, -1))


@pytest.mark.parametrize("content,needle", [(b"", "cannot load"), (b"not a zip at all", "cannot load")])
def test_corrupt_model_file(tmp_path, content, needle):
    p = tmp_path / "bad.keras"
    p.write_bytes(content)
    with pytest.raises(EdgekitError, match=needle):
        load_keras_model(p)


def test_missing_and_wrong_kind(tmp_path):
    with pytest.raises(EdgekitError, match="no such model"):
        load_keras_model(tmp_path / "none.keras")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(EdgekitError, match="not a Keras model"):
        load_keras_model(tmp_path / "x.txt")
    (tmp_path / "d").mkdir()
    with pytest.raises(EdgekitError, match="not a SavedModel"):
        load_keras_model(tmp_path / "d")
