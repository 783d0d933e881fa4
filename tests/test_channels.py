"""Channel surgery (edgekit.training.surgery) on tiny zoo models: removing channels that contribute nothing
leaves the output unchanged, tied groups stay consistent, the result is a plain Keras model that reloads
with safe_mode and converts at every precision; a layer the surgery cannot slice is named in one line."""

import numpy as np
import pytest

TINY = [("mobilenet_v1", 0.25), ("mobilenet_v2", 0.35), ("squeezenet1_1", None)]
SIZE = 32


def _model(name, alpha, seed=0):
    import keras
    from edgekit.zoo import create_model
    keras.utils.set_random_seed(seed)
    model = create_model(name, alpha=alpha, size=SIZE, classes=10)
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # BatchNorm statistics away from identity, so a wrong slice shows in the output
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else rng.normal(0, 0.3, w.shape)
                               for i, w in enumerate(layer.get_weights())])
    return model


def _pixels(seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (4, SIZE, SIZE, 3)).astype("float32")


def _silence(model, layer_name, channels):
    """Zero the input weights of ``layer_name`` (a Conv2D or Dense) that read ``channels``: whatever those
    channels carry, the layer no longer sees it."""
    layer = model.get_layer(layer_name)
    weights = layer.get_weights()
    weights[0][..., channels, :] = 0.0
    layer.set_weights(weights)


def _removed(size, kept):
    return np.setdiff1d(np.arange(size), kept)


@pytest.mark.parametrize("name,alpha", TINY)
def test_removing_silent_channels_keeps_the_output(name, alpha):
    """Every prunable group halved; the consumers' weights for the removed channels zeroed first (computed
    here from the layers' input widths, not from the surgery): outputs equal to float rounding."""
    from edgekit.training import surgery
    model = _model(name, alpha)
    plan = surgery.analyze(model)
    kept = surgery.keep_strongest(plan, surgery.importance(model, plan),
                                  {g.id: max(1, g.size // 2) for g in plan.prunable()})
    for layer_name, cmap in plan.inputs.items():
        if type(model.get_layer(layer_name)).__name__ in ("Conv2D", "Dense"):
            offset, silent = 0, []
            for gid, size in cmap:
                if gid in kept:
                    silent += list(offset + _removed(size, kept[gid]))
                offset += size
            _silence(model, layer_name, silent)
    pruned = surgery.prune_channels(model, plan, kept)
    x = _pixels()
    np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-6)
    assert pruned.count_params() < 0.5 * model.count_params()
    assert [l.name for l in pruned.layers] == [l.name for l in model.layers]  # every layer survives, same name


def _prune_by_hand(model, widths):
    """Prune named producers to the given widths (the rest whole)."""
    from edgekit.training import surgery
    plan = surgery.analyze(model)
    w = {plan.group_of(name).id: n for name, n in widths.items()}
    kept = surgery.keep_strongest(plan, surgery.importance(model, plan), w)
    return plan, kept, surgery.prune_channels(model, plan, kept)


def test_mobilenet_v2_expansion_and_tied_residual_group():
    """An expansion layer inside a block, and block_1/block_2's projections tied by block_2_add: the
    removed channels silenced by hand in the layers that read them (named here, from the architecture)."""
    model = _model("mobilenet_v2", 0.35)
    plan, kept, _ = _prune_by_hand(model, {"block_3_expand": 20, "block_1_project": 5})
    tied = plan.group_of("block_1_project")
    assert tied is plan.group_of("block_2_project") and tied.size == 8
    _silence(model, "block_3_project", _removed(48, kept[plan.group_of("block_3_expand").id]))
    for reader in ("block_2_expand", "block_3_expand"):  # block_1's output and block_2_add's
        _silence(model, reader, _removed(8, kept[tied.id]))
    from edgekit.training import surgery
    pruned = surgery.prune_channels(model, plan, kept)
    x = _pixels()
    np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-6)
    get = pruned.get_layer
    assert get("block_1_project").filters == get("block_2_project").filters == 5
    assert get("block_1_project_BN").gamma.shape == (5,) and get("block_2_add").output.shape[-1] == 5
    assert get("block_3_expand").filters == 20 and get("block_3_depthwise").kernel.shape[2] == 20
    assert get("block_3_expand_BN").moving_mean.shape == (20,) and get("block_3_project").kernel.shape[2] == 20


def test_mobilenet_v1_depthwise_follows_its_pointwise_producer():
    model = _model("mobilenet_v1", 0.25)
    plan, kept, _ = _prune_by_hand(model, {"conv_pw_3": 10})
    _silence(model, "conv_pw_4", _removed(plan.group_of("conv_pw_3").size, kept[plan.group_of("conv_pw_3").id]))
    from edgekit.training import surgery
    pruned = surgery.prune_channels(model, plan, kept)
    x = _pixels()
    np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-6)
    assert pruned.get_layer("conv_dw_4").kernel.shape[2] == 10 and pruned.get_layer("conv_dw_4_bn").beta.shape == (10,)
    assert pruned.get_layer("conv_pw_4").kernel.shape[2] == 10


def test_squeezenet_concat_maps_to_both_expand_layers():
    """fire3's 3x3 expand lands in channels 64..127 of the concatenation fire4's squeeze reads (after a pool)."""
    model = _model("squeezenet1_1", None)
    plan, kept, _ = _prune_by_hand(model, {"fire3_expand3x3": 40, "fire3_expand1x1": 60})
    _silence(model, "fire4_squeeze1x1", list(_removed(64, kept[plan.group_of("fire3_expand1x1").id])) +
             list(64 + _removed(64, kept[plan.group_of("fire3_expand3x3").id])))
    from edgekit.training import surgery
    pruned = surgery.prune_channels(model, plan, kept)
    x = _pixels()
    np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-6)
    assert pruned.get_layer("fire3_concat").output.shape[-1] == 100
    assert pruned.get_layer("fire4_squeeze1x1").kernel.shape[2] == 100


@pytest.mark.slow
def test_pruned_file_reloads_with_safe_mode_and_converts_at_every_precision(tmp_path):
    import keras
    from device_bench.options import PRECISIONS
    from edgekit.conversion import convert
    from edgekit.training import surgery
    from edgekit.zoo.meta import read_model_meta, save_model
    model = _model("mobilenet_v2", 0.35)
    plan = surgery.analyze(model)
    pruned = surgery.prune_channels(model, plan, surgery.keep_strongest(
        plan, surgery.importance(model, plan), {g.id: max(1, g.size // 3) for g in plan.prunable()}))
    prep = {"mode": "tf", "mean": [127.5] * 3, "std": [127.5] * 3, "color_order": "RGB", "resize": "bilinear",
            "crop_fraction": 1.0}
    path = save_model(pruned, tmp_path / "thin.keras", {"preprocessing": prep, "labels": [str(i) for i in range(10)]})
    again = keras.saving.load_model(path, safe_mode=True)
    x = _pixels()
    np.testing.assert_allclose(again(x).numpy(), pruned(x).numpy(), rtol=1e-5, atol=1e-6)
    assert read_model_meta(path)["labels"][0] == "0"
    images = tmp_path / "calib"
    images.mkdir()
    from PIL import Image
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(images / f"{i}.png")
    result = convert(path, list(PRECISIONS), tmp_path / "out", calibration=images, calibration_count=4)
    for p in PRECISIONS:
        assert result[p].error is None, (p, result[p].error)


def test_unsupported_layer_is_named_with_how_to_keep_it():
    """A LayerNormalization reading a Conv2D's channels: the surgery cannot slice it; --keep conv excludes it."""
    import keras
    from edgekit.training import surgery
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.LayerNormalization(name="odd_norm")(x)
    x = keras.layers.Conv2D(8, 3, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(x))
    with pytest.raises(Exception) as e:
        surgery.analyze(model)
    assert "'odd_norm' (LayerNormalization)" in str(e.value) and "--keep conv" in str(e.value)
    plan = surgery.analyze(model, keep=["conv"])
    assert [g.name for g in plan.prunable()] == ["conv2"]
    with pytest.raises(Exception, match="--keep nothere: .* no layer"):
        surgery.analyze(model, keep=["nothere"])


# -- the NetAdapt loop through the CLI ----------------------------------------------------------------------

PREP = {"mode": "tf", "mean": [127.5] * 3, "std": [127.5] * 3, "color_order": "RGB", "resize": "bilinear",
        "crop_fraction": 1.0}


def _one_line_error(result, *words):
    """Exit 1, one 'Error: ...' line, no traceback, no training."""
    assert result.exit_code == 1, result.output
    errors = [l for l in result.output.splitlines() if l.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "epoch" not in result.output and "channels step" not in result.output
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def _save(model, path):
    from edgekit.zoo.meta import save_model
    return save_model(model, path, {"preprocessing": PREP, "labels": [str(i) for i in range(10)]})


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    """Three 3x3 convolutions at 32 px: the two wide ones dominate latency, so a 1.5x speed-up is far from the
    floor; a shared latency cache (EDGEKIT_CACHE_DIR) lets later tests reuse what earlier ones measured."""
    import keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for name, filters in (("c1", 16), ("c2", 48), ("c3", 48)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=name)(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(x), name="small_cnn")
    folder = tmp_path_factory.mktemp("small_cnn")
    return _save(model, folder / "cnn.keras"), folder / "cache"


@pytest.fixture
def latency_cache(small_cnn, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(small_cnn[1]))


@pytest.mark.slow
def test_loop_stops_at_the_target_and_writes_a_smaller_plain_model(small_cnn, latency_cache, invoke, digits,
                                                                   tmp_path):
    import json
    import keras
    out = tmp_path / "thin.keras"
    result = invoke("compress", small_cnn[0], digits["train"], "--method", "channels", "--speedup", 1.25,
                    "--keep", "c1", "--epochs", 1, "--augment", "none", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    d = record["steps"][0]["details"]
    print(json.dumps({k: v for k, v in d.items() if k != "history"}, indent=1))
    assert record["steps"][0]["stage"] == "pruned-channels-1.25x"
    # the loop's own stopping rule, on its own measurements: every step before the last above the target
    assert d["target_met"] and d["steps"] and d["final_ms"] <= d["target_ms"] == pytest.approx(d["base_ms"] / 1.25)
    assert all(s["p50_ms"] > d["target_ms"] for s in d["steps"][:-1]) and d["steps"][-1]["p50_ms"] <= d["target_ms"]
    assert len(d["history"]) >= 1 and all(np.isfinite(h["loss"]) for h in d["history"])
    for s in d["steps"]:
        assert 1 <= s["after"] < s["before"] and s["group"] in ("c2", "c3")  # --keep c1
    model = keras.saving.load_model(out, safe_mode=True)
    widths = {g["group"]: g["kept"] for g in d["groups"]}
    assert {g["group"]: g["channels"] for g in d["groups"]} == {"c2": 48, "c3": 48}
    assert model.get_layer("c1").filters == 16
    assert {n: model.get_layer(n).filters for n in ("c2", "c3")} == widths
    assert model.count_params() < keras.saving.load_model(small_cnn[0]).count_params()
    from edgekit.zoo.meta import read_model_meta
    meta = read_model_meta(out)
    assert meta["labels"] == [str(i) for i in range(10)] and meta["preprocessing"]["mode"] == "tf"
    before, after = record["measurements"]
    assert after["tflite_bytes"] < before["tflite_bytes"]  # fewer channels: a smaller raw file, unlike --method prune


def test_speedup_at_most_one_and_missing_goal(small_cnn, invoke, digits, tmp_path):
    for extra, words in ((["--speedup", 1], ("--speedup must be greater than 1",)),
                         (["--speedup", 0.5], ("--speedup",)),
                         ([], ("--target-latency-ms or --speedup",)),
                         (["--speedup", 2, "--target-latency-ms", 1], ("one of",))):
        _one_line_error(invoke("compress", small_cnn[0], digits["train"], "--method", "channels", *extra,
                               "-o", tmp_path / "x.keras"), *words)
    _one_line_error(invoke("compress", small_cnn[0], digits["train"], "--method", "prune", "--speedup", 2,
                           "-o", tmp_path / "x.keras"), "apply to --method channels")


def test_no_prunable_layer_and_unsupported_layer(invoke, digits, tmp_path):
    import keras
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(10, 3, name="only")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    _save(keras.Model(inputs, keras.layers.Activation("softmax")(x), name="bare"), tmp_path / "bare.keras")
    _one_line_error(invoke("compress", tmp_path / "bare.keras", digits["train"], "--method", "channels",
                           "--speedup", 2, "-o", tmp_path / "x.keras"), "no prunable channels")
    x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    x = keras.layers.LayerNormalization(name="odd_norm")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    _save(keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x)), tmp_path / "odd.keras")
    _one_line_error(invoke("compress", tmp_path / "odd.keras", digits["train"], "--method", "channels",
                           "--speedup", 2, "-o", tmp_path / "x.keras"), "'odd_norm' (LayerNormalization)",
                    "--keep conv")


@pytest.mark.slow
def test_target_already_met_or_below_the_measured_floor(small_cnn, latency_cache, invoke, digits, tmp_path):
    met = _one_line_error(invoke("compress", small_cnn[0], digits["train"], "--method", "channels",
                                 "--target-latency-ms", 10000, "-o", tmp_path / "x.keras"), "already meets the target")
    floor = _one_line_error(invoke("compress", small_cnn[0], digits["train"], "--method", "channels",
                                   "--target-latency-ms", 1e-6, "-o", tmp_path / "x.keras"), "below the floor",
                            "one channel")
    print(met, floor, sep="\n")


def test_variant_names_in_reports_and_studies():
    from edgekit.study.config import _VARIANT_KEYS
    from edgekit.training.compress import stage_label
    assert stage_label(["channels"], None, 1.6) == "pruned-channels-1.6x"
    assert stage_label(["channels", "qat"], None, None, 2.5) == "pruned-channels-2.5ms+qat"
    assert {"speedup", "target_latency_ms", "max_top1_drop", "keep"} <= set(_VARIANT_KEYS)
