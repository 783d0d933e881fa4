"""Classify and evaluate, on real labelled digits and on every kind of awkward image file."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import DIGIT_MODELS, PRECISIONS, SAMPLES, run_device

MODELS = [m[0] for m in DIGIT_MODELS]


def _evaluate(invoke, bundle, dataset, *extra):
    result = invoke("evaluate", bundle, dataset, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", MODELS)
def test_accuracy_per_precision_on_digits(invoke, digits, digit_models, name):
    bundles = digit_models[name]["bundles"]
    acc = {p: _evaluate(invoke, bundles[p], digits["test"]) for p in bundles}
    for p, r in acc.items():
        assert r["count"] == 360 and set(r["per_class"]) == {str(i) for i in range(10)}
        size = (bundles[p] / "model.tflite").stat().st_size
        print(f"{name:14s} {p:13s} top-1 {r['top1']:.2%} top-5 {r['top5']:.2%} {size / 1e6:.2f} MB")
    # How close each precision stays to fp32 is benchmarks/bench_accuracy.py's table (int8 within about a
    # point); here the margins no seed crosses and a real bug does: chance is 10%, a lost normalization,
    # a wrong scale or zero point, or labels out of order leave a bundle near it.
    fp32 = acc["fp32"]["top1"]
    assert fp32 >= 0.6
    assert abs(acc["fp16"]["top1"] - fp32) <= 0.02  # fp16 weights move probabilities by ~1e-3: ties only
    assert set(PRECISIONS) <= set(acc)
    for p in (p for p in acc if p.startswith("int8")):
        assert abs(acc[p]["top1"] - fp32) <= 0.05, p
    assert acc["fp32"]["top5"] >= acc["fp32"]["top1"]


@pytest.mark.parametrize("name", MODELS)
def test_fp32_agrees_with_keras(invoke, digits, digit_models, name):
    import digits as d
    from device_bench.images import make_preprocessing
    x, _ = d.load_split(digits["test"], make_preprocessing(digit_models[name]["preprocessing"]))
    keras_probs = digit_models[name]["keras"].predict(x, verbose=0)
    result = invoke("classify", digit_models[name]["bundles"]["fp32"], digits["test"], "--top-k", "10", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    tflite_probs = np.zeros_like(keras_probs)
    for i, r in enumerate(rows):
        for p in r["predictions"]:
            tflite_probs[i, p["index"]] = p["score"]
    # every probability, not top-1 agreement (which a near tie may flip): the same float arithmetic, with
    # the normalization folded in, differs by float error (~1e-6); another preprocessing moves it by tenths
    assert len(rows) == 360 and np.abs(keras_probs - tflite_probs).max() <= 1e-3


def test_compare_reports_agreement(invoke, digits, digit_models):
    b = digit_models["mobilenet_v2"]["bundles"]
    r = _evaluate(invoke, b["int8"], digits["test"], "--compare", b["fp32"])
    # int8 against fp32 agrees on ~99% (a seed moves it a point); a broken int8 build agrees on ~10%
    assert r["compare"]["top1_agreement"] >= 0.9 and r["images_per_s"] > 0


def test_device_side_evaluate_and_classify_without_tensorflow(digits, digit_models, blocked_env, invoke):
    bundle = digit_models["squeezenet1_1"]["bundles"]["int8-int8"]
    proc = run_device(["evaluate", bundle, digits["test"], "--json"], blocked_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["top1"] == _evaluate(invoke, bundle, digits["test"])["top1"]
    one = next((digits["test"] / "7").iterdir())
    proc = run_device(["classify", bundle, one, "--top-k", "3", "--json"], blocked_env)
    preds = json.loads(proc.stdout)[0]["predictions"]
    assert len(preds) == 3 and preds[0]["label"] == "7" and 0 <= preds[2]["score"] <= preds[0]["score"] <= 1


def test_lone_tflite_uses_embedded_preprocessing_and_labels(digits, digit_models, tmp_path, invoke):
    lone = tmp_path / "digits.tflite"
    shutil.copy(digit_models["mobilenet_v2"]["bundles"]["int8"] / "model.tflite", lone)
    one = next((digits["test"] / "3").iterdir())
    r = json.loads(invoke("classify", lone, one, "--json").stdout)[0]
    assert r["predictions"][0]["label"] == "3"


def test_bare_tflite_with_mean_std_and_labels(digits, digit_models, tmp_path, invoke):
    """A .tflite with no metadata at all: classify with --mean, --std and --labels."""
    from converters.keras_to_tflite import convert, export_saved_model
    bare = tmp_path / "bare.tflite"
    export_saved_model(digit_models["mobilenet_v2"]["keras"], tmp_path / "sm")
    bare.write_bytes(convert(tmp_path / "sm", "fp32"))
    one = next((digits["test"] / "5").iterdir())
    missing = invoke("classify", bare, one)
    assert missing.exit_code == 1 and "--mean and --std" in missing.output
    r = invoke("classify", bare, one, "--mean", "127.5", "--std", "127.5", "--labels", digits["labels"], "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["predictions"][0]["label"] == "5"


@pytest.fixture(scope="module")
def awkward_images(tmp_path_factory):
    """Every kind of image a user's folder holds, made with Pillow; name -> (path, ok)."""
    d = tmp_path_factory.mktemp("awkward")
    cat = Image.open(SAMPLES / "cat.jpg")
    made = {}
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    cat.save(d / "a_exif_rotated.jpg", exif=exif)
    cat.convert("L").save(d / "b_grey.png")
    rgba = cat.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(d / "c_rgba.png")
    cat.convert("P", palette=Image.ADAPTIVE).save(d / "d_palette.gif")
    cat.convert("CMYK").save(d / "e_cmyk.jpg")
    Image.fromarray((np.asarray(cat.convert("L"), np.uint16) * 257)).save(d / "f_16bit.png")
    frames = [cat.convert("P"), cat.rotate(90).convert("P")]
    frames[0].save(d / "g_animated.gif", save_all=True, append_images=frames[1:])
    (d / "h_truncated.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes()[:2000])
    (d / "i_text.png").write_text("this is not a picture")
    (d / "j_empty.jpg").write_bytes(b"")
    Image.new("1", (10000, 10000)).save(d / "k_bomb.png")
    ok = {"a_exif_rotated.jpg", "b_grey.png", "c_rgba.png", "d_palette.gif", "e_cmyk.jpg", "f_16bit.png",
          "g_animated.gif"}
    for p in sorted(d.iterdir()):
        made[p.name] = (p, p.name in ok)
    return d, made


def test_image_loading_kinds(awkward_images):
    from device_bench.errors import EdgekitError
    from device_bench.images import load_image
    _, made = awkward_images
    rotated = load_image(str(made["a_exif_rotated.jpg"][0]))
    assert rotated.size == (300, 451) and rotated.mode == "RGB"  # 451x300 shown upright
    sixteen = np.asarray(load_image(str(made["f_16bit.png"][0])))
    grey = np.asarray(load_image(str(made["b_grey.png"][0])))
    assert np.abs(sixteen.astype(int) - grey.astype(int)).max() <= 1  # 16-bit scaled, not clipped
    rgba = np.asarray(load_image(str(made["c_rgba.png"][0])))
    assert rgba.mean() > grey.mean()  # half-transparent pixels over white come out lighter
    for name, needle in (("h_truncated.jpg", "truncated"), ("i_text.png", "not an image"),
                         ("j_empty.jpg", "empty file"), ("k_bomb.png", "decompression bomb")):
        with pytest.raises(EdgekitError, match=needle) as e:
            load_image(str(made[name][0]))
        assert name in str(e.value)


def test_classify_folder_reports_each_bad_file_and_goes_on(awkward_images, digit_models, blocked_env, invoke):
    folder, made = awkward_images
    bundle = digit_models["squeezenet1_1"]["bundles"]["int8"]
    for rows, code in ((json.loads(r.stdout), r.exit_code) for r in [invoke("classify", bundle, folder, "--json")]):
        assert code == 1
        assert [r["image"].rsplit("/", 1)[1] for r in rows] == sorted(made)
        for r in rows:
            ok = made[r["image"].rsplit("/", 1)[1]][1]
            assert ("predictions" in r) == ok and ("error" in r) != ok
    proc = run_device(["classify", bundle, folder], blocked_env)
    assert proc.returncode == 1 and proc.stdout.count("error:") == 4 and "Traceback" not in proc.stderr


def test_evaluate_bad_inputs(invoke, digits, digit_models, tmp_path):
    bundle = digit_models["squeezenet1_1"]["bundles"]["fp32"]
    (tmp_path / "flat").mkdir()
    shutil.copy(SAMPLES / "cat.jpg", tmp_path / "flat" / "cat.jpg")
    r = invoke("evaluate", bundle, tmp_path / "flat")
    assert r.exit_code == 1 and "no class folders" in r.output
    (tmp_path / "named" / "cats").mkdir(parents=True)
    shutil.copy(SAMPLES / "cat.jpg", tmp_path / "named" / "cats" / "cat.jpg")
    r = invoke("evaluate", bundle, tmp_path / "named")
    assert r.exit_code == 1 and "cats match no label" in r.output
    wrong = tmp_path / "wrong_labels"
    shutil.copytree(bundle, wrong)
    (wrong / "labels.txt").write_text("a\nb\nc\n")
    r = invoke("evaluate", wrong, digits["test"])
    assert r.exit_code == 1 and "3 labels but the model has 10 outputs" in r.output
    for k in ("0", "11"):
        r = invoke("classify", bundle, SAMPLES / "cat.jpg", "--top-k", k)
        assert r.exit_code == 1 and "--top-k must be between 1 and the number of classes (10)" in r.output


def test_evaluate_accepts_a_labels_csv(invoke, digits, digit_models, tmp_path):
    rows = ["image,label"] + [f"{p.relative_to(digits['test'])},{p.parent.name}"
                              for p in sorted(digits["test"].glob("*/*.png"))[:50]]
    csv_path = digits["test"] / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    try:
        r = _evaluate(invoke, digit_models["squeezenet1_1"]["bundles"]["fp32"], csv_path)
    finally:
        csv_path.unlink()
    assert r["count"] == 50 and r["top1"] >= 0.6  # far above chance: the CSV's labels were read, and in order
