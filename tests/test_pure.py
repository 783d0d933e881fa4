"""Pure functions of training, conversion and the study, tested directly with values worked out by hand:
the pruning schedule and mask, the QAT plan and BatchNorm folding, the dataset split, the calibration
anchor, compress's stage labels and checks, the study's command lines and the training settings.

Fast tier: the only models are a few layers on 8x8 inputs, nothing trains or converts.
"""

import re
import shlex
from types import SimpleNamespace

import numpy as np
import pytest

from converters.bundle_run import calibration_anchor
from device_bench.errors import EdgekitError
from device_bench.images import make_preprocessing
from edgekit.zoo import get_spec
from edgekit.zoo.spec import ModelSpec
from edgekit.study.rows import bench_command, evaluate_command, runtime_args
from edgekit.study.steps import _convert_command, _trained_name
from edgekit.training.compress import check_methods, stage_label
from edgekit.training.data import list_dataset
from edgekit.training.fit import Data, TrainSettings, steps_per_epoch, train_settings
from edgekit.training.prune import (MIN_PRUNED_WEIGHTS, check_sparsity, magnitude_mask, polynomial_sparsity,
                                    prunable)


@pytest.fixture(scope="module")
def keras():
    from edgekit.tf_import import import_tf
    return import_tf()[1]


# --- pruning: schedule, mask, which layers, sparsity bounds ---------------------------------------------

def test_polynomial_sparsity_start_end_and_hold():
    assert polynomial_sparsity(0, 100, 0.8) == 0.0
    assert polynomial_sparsity(100, 100, 0.8) == 0.8
    assert polynomial_sparsity(250, 100, 0.8) == 0.8  # held after the ramp


@pytest.mark.parametrize("step, expected", [
    (50, 0.8 * (1 - 0.5 ** 3)),    # 0.8 * 0.875 = 0.7
    (25, 0.8 * (1 - 0.75 ** 3)),   # 0.8 * (1 - 0.421875) = 0.4625
    (90, 0.8 * (1 - 0.1 ** 3)),    # 0.8 * 0.999 = 0.7992
])
def test_polynomial_sparsity_is_cubic(step, expected):
    assert polynomial_sparsity(step, 100, 0.8) == pytest.approx(expected, abs=1e-12)


def test_polynomial_sparsity_mid_values():
    assert polynomial_sparsity(50, 100, 0.8) == pytest.approx(0.7, abs=1e-12)
    assert polynomial_sparsity(25, 100, 0.8) == pytest.approx(0.4625, abs=1e-12)


def test_polynomial_sparsity_rises_monotonically_and_front_loaded():
    values = [polynomial_sparsity(t, 70, 0.75) for t in range(0, 90)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert all(b > a for a, b in zip(values[:70], values[1:71]))  # strictly rising until the end step
    # a cubic ramp prunes fastest at first: the first tenth of the ramp adds more than the last tenth
    assert values[7] - values[0] > values[70] - values[63]


def test_magnitude_mask_zeroes_the_smallest_magnitudes():
    w = np.array([[0.5, -0.1, 3.0], [-2.0, 0.05, 1.0]], np.float32)
    # |w| sorted: 0.05, 0.1, 0.5, 1.0, 2.0, 3.0; half of 6 = 3 zeroed: 0.05, -0.1, 0.5
    mask = magnitude_mask(w, 0.5)
    assert mask.shape == w.shape and mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[0, 0, 1], [1, 0, 1]])
    # a third of 6 = 2: only -0.1 and 0.05
    np.testing.assert_array_equal(magnitude_mask(w, 1 / 3), [[1, 0, 1], [1, 0, 1]])
    np.testing.assert_array_equal(magnitude_mask(w, 0.0), np.ones((2, 3)))


def test_magnitude_mask_exact_fraction_on_a_large_kernel():
    rng = np.random.default_rng(3)
    magnitudes = rng.permutation(np.arange(1, 1001)).astype(np.float32)  # 1..1000, each once
    w = (magnitudes * rng.choice([-1, 1], 1000)).reshape(10, 10, 10)
    mask = magnitude_mask(w, 0.7)
    assert int((mask == 0).sum()) == 700
    np.testing.assert_array_equal(mask, (np.abs(w) > 700).astype(np.float32))  # 1..700 zeroed, 701..1000 kept


def _prune_model(keras):
    L = keras.layers
    x = inp = keras.Input((8, 8, 3))
    x = L.Conv2D(64, 3, padding="same", name="first")(x)           # 3*3*3*64 = 1728: large, but first
    x = L.BatchNormalization(name="bn")(x)                          # no kernel: not a weight layer
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)  # 3*3*64*2 = 1152: not Conv2D/Dense
    x = L.Conv2D(7, 1, name="small_conv")(x)                        # 1*1*128*7 = 896 < 1024
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(32, name="d32")(x)                                  # 7*32 = 224
    x = L.Dense(32, name="at_limit")(x)                             # 32*32 = 1024: pruned
    x = L.Dense(31, name="d31")(x)                                  # 32*31 = 992
    x = L.Dense(33, name="below_limit")(x)                          # 31*33 = 1023: dense
    x = L.Dense(64, name="big")(x)                                  # 33*64 = 2112: pruned
    x = L.Dense(40, name="last")(x)                                 # 64*40 = 2560: large, but last
    return keras.Model(inp, x)


def test_prunable_keeps_first_last_small_and_other_kinds_dense(keras):
    assert MIN_PRUNED_WEIGHTS == 1024
    model = _prune_model(keras)
    found = prunable(model)
    assert [layer.name for layer, _ in found] == ["at_limit", "big"]
    for layer, kernel in found:
        assert kernel is layer.kernel
    assert [tuple(k.shape) for _, k in found] == [(32, 32), (33, 64)]


def test_prunable_empty_when_only_first_and_last_are_large(keras):
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(64, 3, name="first")(inp)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(64, name="last")(x)
    assert prunable(keras.Model(inp, out)) == []


@pytest.mark.parametrize("value", [0.5, 0.01, 0.99])
def test_check_sparsity_accepts_open_interval(value):
    out = check_sparsity(value)
    assert out == value and type(out) is float


@pytest.mark.parametrize("value", [0, 1, 0.0, 1.0, -0.2, 1.5, True, "0.5", None, float("nan")])
def test_check_sparsity_refuses(value):
    with pytest.raises(EdgekitError, match="--sparsity must be between 0 and 1"):
        check_sparsity(value)


# --- QAT: the plan and the folded weights ---------------------------------------------------------------

def test_qat_plan_folds_batchnorm_and_places_quantizers(keras):
    from edgekit.training.qat import plan
    L = keras.layers
    inp = keras.Input((8, 8, 3), name="image")
    x = L.Conv2D(4, 3, name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, activation="softmax", name="dense")(x)
    folds, quantize_after = plan(keras.Model(inp, out))
    assert folds == {"conv": "bn"}
    # conv: folded (its range is the ReLU's); bn: TFLite fuses the ReLU after it; dense: softmax output
    assert quantize_after == {"relu", "gap"}


def test_qat_plan_without_batchnorm(keras):
    from edgekit.training.qat import plan
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="c1")(inp)
    x = L.Activation("relu6", name="r1")(x)          # fused into c1: c1 gets no quantizer of its own
    x = L.Conv2D(4, 1, name="c2")(x)                 # feeds an Add: its own range
    y = L.Conv2D(4, 1, name="c3")(x)
    x = L.Add(name="add")([x, y])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(3, name="logits")(x)                 # linear, then a Softmax layer: quantized
    out = L.Softmax(name="probs")(x)                 # passes its input's range: no quantizer
    folds, quantize_after = plan(keras.Model(inp, out))
    assert folds == {}
    assert quantize_after == {"r1", "c2", "c3", "add", "gap", "logits"}


def test_qat_plan_refuses_an_unsupported_layer_by_name(keras):
    from edgekit.training.qat import plan
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="conv")(inp)
    x = L.LayerNormalization(name="odd_norm")(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(2)(x)
    with pytest.raises(EdgekitError, match=r"qat cannot wrap layer 'odd_norm' \(LayerNormalization\)"):
        plan(keras.Model(inp, out))


def test_qat_plan_refuses_batchnorm_after_an_activated_conv(keras):
    from edgekit.training.qat import plan
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = L.BatchNormalization(name="bn_after_relu")(x)
    out = L.Dense(2)(L.GlobalAveragePooling2D()(x))
    with pytest.raises(EdgekitError, match="cannot fold BatchNormalization 'bn_after_relu'"):
        plan(keras.Model(inp, out))


def _conv_bn(keras, use_bias):
    L = keras.layers
    inp = keras.Input((8, 8, 2))
    conv = L.Conv2D(2, 1, use_bias=use_bias, name="conv")
    bn = L.BatchNormalization(epsilon=0.001, name="bn")
    model = keras.Model(inp, bn(conv(inp)))
    kernel = np.array([[[[1, 2], [3, 4]]]], np.float32)  # [1, 1, in 2, out 2]: out 0 = (1, 3), out 1 = (2, 4)
    conv.set_weights([kernel, np.array([0.5, -1.0], np.float32)] if use_bias else [kernel])
    # gamma, beta, moving mean, moving variance: sqrt(var + eps) = (2, 0.5), so gamma / sqrt = (1.5, 0.5)
    bn.set_weights([np.array(v, np.float32) for v in ([3.0, 0.25], [0.1, 0.2], [1.0, -2.0], [3.999, 0.249])])
    return model, conv, bn


def test_folded_weights_match_the_hand_formula(keras):
    from edgekit.training.qat import folded_weights
    model, conv, bn = _conv_bn(keras, use_bias=True)
    kernel, bias = folded_weights(conv, bn)
    assert kernel.dtype == np.float32 and bias.dtype == np.float32
    # w * gamma / sqrt(var + eps), per output channel: (1, 3) * 1.5, (2, 4) * 0.5
    np.testing.assert_allclose(kernel, [[[[1.5, 1.0], [4.5, 2.0]]]], rtol=1e-5)
    # beta + (b - mean) * scale: 0.1 + (0.5 - 1) * 1.5 = -0.65; 0.2 + (-1 + 2) * 0.5 = 0.7
    np.testing.assert_allclose(bias, [-0.65, 0.7], rtol=1e-5)
    # and the folded convolution computes what conv + BN (inference) computed
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype(np.float32)
    folded = np.einsum("nhwc,cd->nhwd", x, kernel[0, 0]) + bias
    np.testing.assert_allclose(folded, np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-5)


def test_folded_weights_without_conv_bias(keras):
    from edgekit.training.qat import folded_weights
    _, conv, bn = _conv_bn(keras, use_bias=False)
    kernel, bias = folded_weights(conv, bn)
    np.testing.assert_allclose(kernel, [[[[1.5, 1.0], [4.5, 2.0]]]], rtol=1e-5)
    # b = 0: 0.1 - 1 * 1.5 = -1.4; 0.2 + 2 * 0.5 = 1.2
    np.testing.assert_allclose(bias, [-1.4, 1.2], rtol=1e-5)


# --- the dataset split ----------------------------------------------------------------------------------

def _png(path):
    from PIL import Image
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path)


def _dataset(root, counts):
    for name, n in counts.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            _png(folder / f"{i:02d}.png")
    return root


@pytest.fixture
def dataset(tmp_path):
    root = _dataset(tmp_path / "ds", {"cat": 5, "ant": 3, "dog": 20, "bee": 2})
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _png(root / ".hidden" / "x.png")
    _png(root / "loose.png")  # a file at the top is no class
    return root


def _by_class(items, labels):
    return {labels[i]: sorted(p for p, j in items if j == i) for i in range(len(labels))}


def test_list_dataset_is_stratified(dataset):
    listing = list_dataset(dataset, val_split=0.2, seed=0)
    assert listing.root == str(dataset) and listing.labels == ["ant", "bee", "cat", "dog"]
    val, train = _by_class(listing.val, listing.labels), _by_class(listing.train, listing.labels)
    # held out per class = max(1, round(n * 0.2)): ant 3 -> 1 (0.6), bee 2 -> 1 (0.4, at least one),
    # cat 5 -> 1, dog 20 -> 4
    assert {k: len(v) for k, v in val.items()} == {"ant": 1, "bee": 1, "cat": 1, "dog": 4}
    assert {k: len(v) for k, v in train.items()} == {"ant": 2, "bee": 1, "cat": 4, "dog": 16}
    for name in listing.labels:
        everything = sorted(str(p) for p in (dataset / name).glob("*.png"))
        assert sorted(val[name] + train[name]) == everything  # every image once, in its own class
        assert not set(val[name]) & set(train[name])
    assert listing.counts() == {"train": 23, "val": 7, "classes": 4}
    assert (listing.seed, listing.val_split) == (0, 0.2)


def test_list_dataset_val_split_changes_the_held_out_count(dataset):
    listing = list_dataset(dataset, val_split=0.3, seed=0)
    # ant 0.9 -> 1, bee 0.6 -> 1, cat 1.5 -> 2, dog 6
    assert {k: len(v) for k, v in _by_class(listing.val, listing.labels).items()} == \
        {"ant": 1, "bee": 1, "cat": 2, "dog": 6}


def test_list_dataset_seed_decides_the_split(dataset):
    a, b = list_dataset(dataset, 0.2, seed=0), list_dataset(dataset, 0.2, seed=0)
    assert a.train == b.train and a.val == b.val
    # 20 dog images, 4 held out: C(20, 4) = 4845 possible choices, so another seed gives another split
    c = list_dataset(dataset, 0.2, seed=1)
    assert c.val != a.val
    assert sorted(c.val + c.train) == sorted(a.val + a.train)


def test_list_dataset_refuses_bad_folders(tmp_path):
    with pytest.raises(EdgekitError, match="no such dataset folder"):
        list_dataset(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(EdgekitError, match="not a folder"):
        list_dataset(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdgekitError, match="no class folders"):
        list_dataset(empty)
    one = _dataset(tmp_path / "one", {"only": 3})
    with pytest.raises(EdgekitError, match=r"only one class folder \(only\)"):
        list_dataset(one)
    hollow = _dataset(tmp_path / "hollow", {"a": 3, "b": 0})
    (hollow / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(EdgekitError, match="class folder with no images"):
        list_dataset(hollow)
    single = _dataset(tmp_path / "single", {"a": 3, "b": 1})
    with pytest.raises(EdgekitError, match="one image; each class needs at least 2"):
        list_dataset(single)
    good = _dataset(tmp_path / "good", {"a": 3, "b": 3})
    for split in (0, 1, -0.1, 1.5):
        with pytest.raises(EdgekitError, match="--val-split must be between 0 and 1"):
            list_dataset(good, val_split=split)


# --- the calibration anchor -----------------------------------------------------------------------------

# (0 - mean) / std and (255 - mean) / std per channel, by hand. torch: 58.395 = 0.255 * 229,
# 123.675 = 0.255 * 485, 131.325 = 0.255 * 515; 57.12 = 2.04 * 28, 116.28 = 2.04 * 57, 138.72 = 2.04 * 68;
# 57.375 = 0.255 * 225, 103.53 = 0.255 * 406, 151.47 = 0.255 * 594.
ANCHORS = {
    "tf": ([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]),
    "torch": ([-485 / 229, -57 / 28, -406 / 225], [515 / 229, 68 / 28, 594 / 225]),
    "caffe": ([-103.939, -116.779, -123.68], [151.061, 138.221, 131.32]),
}


@pytest.mark.parametrize("mode", sorted(ANCHORS))
def test_calibration_anchor_holds_pixels_0_and_255(mode):
    prep = make_preprocessing(mode)
    low, high = ANCHORS[mode]
    np.testing.assert_allclose((0 - np.array(prep["mean"])) / prep["std"], low, rtol=1e-12)  # the hand values
    np.testing.assert_allclose((255 - np.array(prep["mean"])) / prep["std"], high, rtol=1e-12)
    batch = np.random.default_rng(0).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    before = batch.copy()
    anchor = calibration_anchor(batch, prep)
    assert anchor.dtype == np.float32 and anchor.shape == batch.shape
    np.testing.assert_allclose(anchor[0, 0, 0], low, rtol=1e-6)
    np.testing.assert_allclose(anchor[0, 0, -1], high, rtol=1e-6)
    changed = np.ones(batch.shape, bool)
    changed[0, 0, 0] = changed[0, 0, -1] = False
    np.testing.assert_array_equal(anchor[changed], batch[changed])  # every other pixel kept
    np.testing.assert_array_equal(batch, before)  # the input is not modified


def test_calibration_anchor_single_channel_uses_the_first_mean():
    batch = np.zeros((1, 8, 8, 1), np.float32)
    anchor = calibration_anchor(batch, make_preprocessing("torch"))
    assert anchor[0, 0, 0, 0] == pytest.approx(-485 / 229, rel=1e-6)
    assert anchor[0, 0, -1, 0] == pytest.approx(515 / 229, rel=1e-6)


# --- compress: stage labels and method checks -----------------------------------------------------------

@pytest.mark.parametrize("methods, sparsity, label", [
    (["prune"], 0.75, "pruned-75%"),
    (["prune"], 0.3, "pruned-30%"),          # 0.3 * 100 = 30.000000000000004 in floats: a whole number shown
    (["prune"], 0.29, "pruned-29%"),         # 0.29 * 100 = 28.999999999999996: rounded, not cut to 28
    (["prune"], None, "pruned"),
    (["distill"], None, "distilled"),
    (["qat"], None, "qat"),
    (["prune", "distill", "qat"], 0.5, "pruned-50%+distilled+qat"),
    (["distill", "prune"], 0.9, "distilled+pruned-90%"),
])
def test_stage_label(methods, sparsity, label):
    assert stage_label(methods, sparsity) == label


def _check(methods, sparsity=None, student=None, temperature=4.0, label_weight=0.1):
    return check_methods(methods, sparsity, student, temperature, label_weight)


def test_check_methods_accepts_valid_chains():
    assert _check("prune") == (["prune"], 0.75)  # a single name, default sparsity
    assert _check(["prune", "qat"], 0.5) == (["prune", "qat"], 0.5)
    assert _check(("distill", "qat"), student="squeezenet1_1") == (["distill", "qat"], None)
    assert _check(["qat"], label_weight=0) == (["qat"], None)
    assert _check(["qat"], label_weight=1) == (["qat"], None)


@pytest.mark.parametrize("kwargs, message", [
    (dict(methods=[]), "give at least one --method"),
    (dict(methods=None), "give at least one --method"),
    (dict(methods=["prune", "shrink"]), "unknown method 'shrink'"),
    (dict(methods=["qat", "prune"]), "qat must be the last --method"),
    (dict(methods=["prune", "qat", "distill"], student="s"), "qat must be the last --method"),
    (dict(methods=["qat"], sparsity=0.5), "--sparsity applies to --method prune"),
    (dict(methods=["qat"], sparsity=1.5), "--sparsity must be between 0 and 1"),
    (dict(methods=["prune"], sparsity=1.0), "--sparsity must be between 0 and 1"),
    (dict(methods=["distill"]), "--method distill needs --student"),
    (dict(methods=["prune"], student="squeezenet1_1"), "--student applies to --method distill"),
    (dict(methods=["qat"], temperature=0), "--temperature must be positive"),
    (dict(methods=["qat"], label_weight=1.5), "--label-weight must be between 0 and 1"),
    (dict(methods=["qat"], label_weight=-0.1), "--label-weight must be between 0 and 1"),
])
def test_check_methods_refuses(kwargs, message):
    with pytest.raises(EdgekitError, match=re.escape(message)):
        _check(**kwargs)


# --- the study's command lines --------------------------------------------------------------------------

def test_runtime_args():
    assert runtime_args(None) == []
    assert runtime_args({}) == []
    assert runtime_args({"name": "litert", "api": "python", "accelerator": "cpu"}) == \
        ["--runtime", "litert", "--api", "python"]  # cpu is the default accelerator
    assert runtime_args({"name": "tflite_runtime", "api": None, "accelerator": "gpu"}) == \
        ["--runtime", "tflite_runtime", "--accelerator", "gpu"]


def test_bench_command_quotes_paths():
    line = bench_command("/tmp/my bundles/m int8", {"name": "litert", "accelerator": "cpu"}, [1, 4], runs=50, repeat=3)
    assert line == "edgekit bench '/tmp/my bundles/m int8' --runtime litert --threads 1,4 --runs 50 --repeat 3"
    assert shlex.split(line)[2] == "/tmp/my bundles/m int8"
    assert bench_command("b", None, [2]) == "edgekit bench b --threads 2"  # no runs, no repeat


def test_evaluate_command_quotes_paths():
    line = evaluate_command("/r/it's here", "/data/my set", {"accelerator": "gpu"})
    assert line == "edgekit evaluate '/r/it'\"'\"'s here' '/data/my set' --accelerator gpu"
    assert shlex.split(line) == ["edgekit", "evaluate", "/r/it's here", "/data/my set", "--accelerator", "gpu"]


def test_phone_flags_only_in_the_bench_command():
    """`edgekit evaluate` runs here: a phone's record gives it no --target or --benchmark-binary."""
    phone = {"name": "LiteRT benchmark_model", "api": "interpreter", "accelerator": "gpu", "target": "adb://P1",
             "binary": "/b/benchmark_model"}
    assert bench_command("m", phone, [4]) == \
        "edgekit bench m --target adb://P1 --benchmark-binary /b/benchmark_model --accelerator gpu --threads 4"
    assert evaluate_command("m", "data", phone) == "edgekit evaluate m data"


def test_convert_command_zoo_model():
    source = {"kind": "zoo", "model": "mobilenet_v2", "alpha": 0.35, "size": 96, "classes": 10, "weights": "none"}
    study = SimpleNamespace(precisions=["fp32", "int8"], calibration="/data/calib dir")
    line = _convert_command(source, study, {"labels": "labels.txt"}, "/out/my bundles")
    assert line == ("edgekit convert mobilenet_v2 --alpha 0.35 --size 96 --classes 10 --weights none "
                    "-p fp32 -p int8 --calibration '/data/calib dir' --labels labels.txt -o '/out/my bundles'")
    source["alpha"] = 1.0  # written as 1, not 1.0
    assert "--alpha 1 --size" in _convert_command(source, study, {}, "o")


def test_convert_command_model_file():
    source = {"kind": "file", "path": "/m/my model.keras"}
    study = SimpleNamespace(precisions=["int8"], calibration=None)
    assert _convert_command(source, study, {"preprocessing": "torch"}, "out") == \
        "edgekit convert '/m/my model.keras' --preprocessing torch -p int8 -o out"
    m = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}
    assert _convert_command(source, study, m, "out") == (
        "edgekit convert '/m/my model.keras' --mean 123.675,116.28,103.53 --std 58.395,57.12,57.375 -p int8 -o out")
    # a file that carries its own preprocessing (from edgekit train or compress)
    assert _convert_command(source, study, {}, "out") == "edgekit convert '/m/my model.keras' -p int8 -o out"


def test_trained_name():
    assert _trained_name({"source": "/x/dir/my.model.keras"}) == "my.model_trained"
    assert _trained_name({"name": "mobilenet_v2", "alpha": 0.35, "size": 96}) == "mobilenet_v2_035_96"
    assert _trained_name({"name": "mobilenet_v2"}) == "mobilenet_v2_100_224"  # zoo defaults
    assert _trained_name({"name": "squeezenet1_1"}) == "squeezenet1_1_224"
    assert _trained_name({"name": "mobilenet_v1", "alpha": 0.5, "size": 128}) == "mobilenet_v1_050_128"


def test_variant_name():
    assert get_spec("mobilenet_v2").variant_name(0.35, 96) == "mobilenet_v2_035_96"
    assert get_spec("mobilenet_v2").variant_name(1.4, 224) == "mobilenet_v2_140_224"
    assert get_spec("squeezenet1_1").variant_name(1.0, 224) == "squeezenet1_1_224"  # one width: no alpha
    toy = ModelSpec(name="toy", family="Toy", default_size=8, min_size=8, imagenet_sizes=(), alphas=(0.29, 1.0),
                    default_alpha=1.0, preprocessing="tf")
    assert toy.variant_name(0.29, 8) == "toy_029_8"  # 0.29 * 100 = 28.999999999999996: rounded, not cut


# --- training settings ----------------------------------------------------------------------------------

def test_train_settings_defaults_and_overrides():
    assert train_settings({}) == TrainSettings()
    s = train_settings({"epochs": 3, "lr": None, "batch_size": 8})
    assert (s.epochs, s.batch_size, s.lr) == (3, 8, None)
    assert s.patience == TrainSettings().patience and s.val_split == 0.2


def test_train_settings_none_keeps_the_base():
    base = TrainSettings(seed=7, val_split=0.3, lr=0.01)
    s = train_settings({"seed": None, "val_split": None, "lr": None, "epochs": 2}, base)
    assert (s.seed, s.val_split, s.lr, s.epochs) == (7, 0.3, 0.01, 2)
    assert base.epochs == 20  # the base itself is left alone


@pytest.mark.parametrize("options, message", [
    ({"epoch": 3}, "unknown training option 'epoch'"),
    ({"bogus": None}, "unknown training option 'bogus'"),
    ({"epochs": 0}, "--epochs must be at least 1"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"val_split": 1.0}, "--val-split must be between 0 and 1"),
    ({"augment": "heavy"}, "--augment takes"),
    ({"lr": -1.0}, "--lr must be positive"),
])
def test_train_settings_refuses(options, message):
    with pytest.raises(EdgekitError, match=re.escape(message)):
        train_settings(options)


@pytest.mark.parametrize("n, batch, steps", [(100, 32, 4), (96, 32, 3), (97, 32, 4), (32, 32, 1), (1, 32, 1),
                                             (33, 32, 2), (10, 1, 10)])
def test_steps_per_epoch_counts_the_short_last_batch(n, batch, steps):
    data = Data(x=np.zeros((n, 1), np.float32), y=np.zeros(n, np.int64), xv=None, yv=None)
    assert steps_per_epoch(data, TrainSettings(batch_size=batch)) == steps


# --- folding the normalization: into the first convolution, into the input's quantization ----------------

def _first_conv_model(keras, size, padding, first="conv"):
    L = keras.layers
    x = inp = keras.Input((size, size, 3))
    x = L.Conv2D(6, 3, strides=2, padding=padding, use_bias=False)(x) if first == "conv" else L.Dense(4)(x)
    x = L.BatchNormalization(beta_initializer="random_normal", moving_mean_initializer="random_normal")(x)
    return keras.Model(inp, L.Dense(5)(L.Flatten()(x)))


@pytest.mark.parametrize("size,padding,mode", [(9, "same", "tf"), (10, "same", "tf"), (10, "valid", "torch"),
                                               (9, "same", "caffe")])
def test_first_conv_folding_is_exact(keras, size, padding, mode):
    """The folded model on raw pixels computes what the model computes on normalized ones, borders included
    (SAME: an explicit pad whose value is the mean; odd and even sizes pad differently)."""
    from converters.folding import fold_preprocessing
    model = _first_conv_model(keras, size, padding)
    prep = make_preprocessing(mode)
    if prep["color_order"] != "RGB":
        with pytest.raises(EdgekitError, match="cannot fold BGR"):
            fold_preprocessing(model, prep)
        return
    folding, raw = fold_preprocessing(model, prep)
    assert folding.method == "first_conv" and folding.reason is None
    assert raw["mean"] == [0.0] * 3 and raw["std"] == [1.0] * 3 and raw["folded"]["mode"] == mode
    assert not any(type(layer).__name__ == "Rescaling" for layer in folding.model.layers)
    pixels = np.random.default_rng(0).integers(0, 256, (3, size, size, 3)).astype(np.float32)
    normalized = (pixels - np.float32(prep["mean"])) / np.float32(prep["std"])
    want, got = model.predict(normalized, verbose=0), folding.model.predict(pixels, verbose=0)
    assert np.abs(want - got).max() <= 1e-5 * max(1.0, np.abs(want).max()), np.abs(want - got).max()


@pytest.mark.parametrize("first,padding,needle", [("conv", "same", "per-channel mean is not one pad value"),
                                                  ("dense", "same", "the first layer is Dense")])
def test_rescaling_where_the_first_conv_cannot_take_it(keras, first, padding, needle):
    from converters.folding import fold_preprocessing
    model = _first_conv_model(keras, 8, padding, first)
    folding, _ = fold_preprocessing(model, make_preprocessing("torch"))
    assert folding.method == "rescaling" and needle in folding.reason and not folding.scalar
    assert [type(layer).__name__ for layer in folding.model.layers][:2] == ["InputLayer", "Rescaling"]


@pytest.mark.parametrize("scale,zero,mean,std,io,want", [
    (np.float32(1 / 127.5), 127, 127.5, 127.5, "uint8", (127, 0.5)), (np.float32(1 / 127.5), -1, 127.5, 127.5,
                                                                      "int8", (127, 0.5)),
    (np.float32(1 / 128), 128, 128.0, 128.0, "uint8", (128, 0.0)), (np.float32(1 / 255), -128, 0.0, 255.0, "int8",
                                                                    (0, 0.0))])
def test_input_quantization_holds_the_normalization(scale, zero, mean, std, io, want):
    """A raw pixel q means (q - zero point) * scale: the zero point in pixels and its distance from the mean."""
    from converters.folding import input_quantization
    record = input_quantization(scale, zero, mean, std, io)
    assert (record["pixel_zero_point"], record["zero_point_error_pixels"]) == want
    with pytest.raises(EdgekitError, match="its scale is 0.01, not 1/std"):
        input_quantization(0.01, zero, mean, std, io)
