"""Real models and small devices (issue 25) and the device-side items of issue 19: models the tests build
themselves (a tiny Keras classifier converted by the real TFLiteConverter, bare files with only the standard
TFLite Metadata, a segmentation-shaped output, hand-made graphs that fail at run time or declare impossible
shapes), driven as a user would, through `edgekit` and `python -m device_bench`, partly under a 1 GiB
address-space limit like a small board's."""

import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SAMPLES, run_device

SIZE = 224  # the input size at which a crop of 1.0 used to round below zero (short sides 116, 123, ...)
LABELS = ["cat", "dog", "teapot"]
IMAGE = SAMPLES / "cat.jpg"
ONE_GIB = 1 << 30


def _keras(output="classifier"):
    import keras
    keras.utils.set_random_seed(7)
    x = inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x)
    if output == "segmentation":  # a per-pixel map [1, 56, 56, 3], not a classifier's [1, classes]
        return keras.Model(inp, keras.layers.Conv2D(3, 1)(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(len(LABELS), activation="softmax")(x))


def _tflite(model):
    import tensorflow as tf
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="session")
def models(invoke, tmp_path_factory):
    """A tiny classifier as .keras, as an fp32 bundle (`edgekit convert`), as a bare .tflite carrying only the
    standard TFLite Metadata (written by device_bench's own writer), and a segmentation-shaped .tflite."""
    from device_bench.tflite_metadata import write_classifier_metadata
    root = tmp_path_factory.mktemp("real")
    model = _keras()
    model.save(root / "tiny.keras")
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    r = invoke("convert", root / "tiny.keras", "--preprocessing", "tf", "--labels", root / "labels.txt",
               "-p", "fp32", "-o", root / "bundles", "--json")
    assert r.exit_code == 0, r.output
    bundle = json.loads(r.stdout)["bundles"][0]["bundle"]
    standard = root / "standard.tflite"  # like a model hub's file: normalization and labels, no edgekit manifest
    standard.write_bytes(write_classifier_metadata(_tflite(model), name="tiny", description="a tiny classifier",
                                                   version="1", author="tests", mean=[127.5], std=[127.5],
                                                   labels=LABELS))
    segmentation = root / "segmentation.tflite"
    segmentation.write_bytes(_tflite(_keras("segmentation")))
    return {"root": root, "keras": root / "tiny.keras", "bundle": bundle, "standard": standard,
            "segmentation": segmentation}


def _graph(huge_tensor=False):
    """A hand-made graph: image [1,2,2,3] -> RESHAPE [1,12] -> GATHER(axis 1, indices [0, 99]) -> [1,2]. Index 99
    is out of bounds, which the runtime finds only when it runs the model; ``huge_tensor`` adds a tensor whose
    declared shape (40 dims of 2^31-1) no machine could hold."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    def buffer(data=None):
        b = s.BufferT()
        if data is not None:
            b.data = np.frombuffer(np.asarray(data, np.int32).tobytes(), np.uint8)
        return b

    def tensor(name, shape, ttype, buf):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, ttype, buf
        return t

    def operator(code, inputs, outputs, options=None):
        c = s.OperatorCodeT()
        c.builtinCode = c.deprecatedBuiltinCode = code
        c.version = 1
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(m.operatorCodes), inputs, outputs
        m.operatorCodes.append(c)
        if options is not None:
            op.builtinOptionsType, op.builtinOptions = options
        return op

    m = s.ModelT()
    m.version, m.operatorCodes = 3, []
    m.buffers = [buffer(), buffer(), buffer([1, 12]), buffer(), buffer([0, 99]), buffer()]
    f32, i32 = s.TensorType.FLOAT32, s.TensorType.INT32
    sg = s.SubGraphT()
    sg.tensors = [tensor("image", [1, 2, 2, 3], f32, 1), tensor("shape", [2], i32, 2), tensor("flat", [1, 12], f32, 3),
                  tensor("indices", [2], i32, 4), tensor("scores", [1, 2], f32, 5)]
    if huge_tensor:
        sg.tensors.append(tensor("damaged", [2 ** 31 - 1] * 40, f32, 0))
    sg.inputs, sg.outputs = [0], [4]
    gather = s.GatherOptionsT()
    gather.axis = 1
    sg.operators = [operator(s.BuiltinOperator.RESHAPE, [0, 1], [2]),
                    operator(s.BuiltinOperator.GATHER, [2, 3], [4], (s.BuiltinOptions.GatherOptions, gather))]
    m.subgraphs = [sg]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def _one_error_line(stderr, *parts):
    """stderr is exactly one `Error: ...` line (the runtime may log other lines) holding every part."""
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    for part in parts:
        assert part in errors[0], errors[0]
    return errors[0]


def _limited(args, env):
    """python -m device_bench ARGS under a 1 GiB address-space limit (a small board's memory)."""
    return subprocess.run(["prlimit", f"--as={ONE_GIB}", sys.executable, "-m", "device_bench", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=300)


needs_prlimit = pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed")


# --- small devices: a 1 GiB address space -------------------------------------------------------------------

@needs_prlimit
def test_classify_bench_inspect_fit_in_one_gib(models, blocked_env):
    """The model file used to be read with read(4 GiB + 1), which reserves 4 GiB: MemoryError under the limit."""
    for model in (models["bundle"], models["standard"]):
        p = _limited(["classify", model, IMAGE, "--json"], blocked_env)
        assert p.returncode == 0, p.stderr[-2000:]
        assert json.loads(p.stdout)[0]["predictions"][0]["label"] in LABELS
        p = _limited(["inspect", model, "--json"], blocked_env)
        assert p.returncode == 0 and json.loads(p.stdout)["outputs"][0]["shape"] == [1, 3], p.stderr[-2000:]
    p = _limited(["bench", models["bundle"], "--runs", 3, "--min-secs", 0, "--warmup-runs", 1, "--no-ceiling",
                  "--repeat", 1, "--json"], blocked_env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)[0]["latency_ms"]["count"] >= 3


@needs_prlimit
def test_device_side_fuzz_under_one_gib(models, blocked_env, tmp_path):
    """A seeded handful of damaged bundles and bare files under the limit: each gives the right answer or one
    clean `Error:` line; no traceback, no MemoryError, no signal."""
    rng = random.Random(25)
    bundle = models["bundle"]
    data = (models["root"] / "bundles").joinpath(os.path.basename(bundle), "model.tflite").read_bytes()
    for i in range(8):
        b = bytearray(data)
        if i % 2:
            del b[rng.randrange(len(b)):]
        else:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        target = tmp_path / f"m{i}"
        shutil.copytree(bundle, target)
        (target / "model.tflite").write_bytes(bytes(b))
        lone = tmp_path / f"lone{i}.tflite"
        lone.write_bytes(bytes(b))
        for model in (target, lone):
            p = _limited(["classify", model, IMAGE, "--json"], blocked_env)
            assert p.returncode >= 0 and "Traceback" not in p.stderr and "MemoryError" not in p.stderr, p.stderr
            if p.returncode == 0:  # a lone file has no checksum: a flipped weight may pass, a bundle's may not
                assert model == lone and json.loads(p.stdout)[0]["predictions"]
            elif not p.stdout.strip():
                _one_error_line(p.stderr)
            else:  # the model loaded but could not run: a per-image error row
                assert "error" in json.loads(p.stdout)[0]


# --- centre crop -----------------------------------------------------------------------------------------------

def test_centre_crop_every_short_side_from_100_to_400():
    """At crop 1.0 the box's offset used to round to -1e-14 and Pillow refused it (short sides 116, 123, ...)."""
    from PIL import Image
    from device_bench.images import make_preprocessing, preprocess
    prep = make_preprocessing("tf")
    for short in range(100, 401):
        for size in ((short, short + 37), (short + 37, short), (short, short)):
            out = preprocess(Image.new("RGB", size, (255, 0, 0)), SIZE, SIZE, prep)
            assert out.shape == (SIZE, SIZE, 3) and np.isfinite(out).all(), size
            assert np.allclose(out[..., 0], 1.0) and np.allclose(out[..., 1], -1.0), size  # no edge from outside


def test_classify_an_image_whose_crop_used_to_fail(models, invoke, tmp_path):
    image = tmp_path / "short116.png"
    from PIL import Image
    Image.open(IMAGE).convert("RGB").resize((150, 116)).save(image)
    r = invoke("classify", models["bundle"], image, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["predictions"][0]["label"] in LABELS


# --- what is not a classifier, or not a TFLite model -----------------------------------------------------------

def test_a_segmentation_output_is_refused_in_one_line(models, invoke, blocked_env, tmp_path):
    """[1, 56, 56, 3] used to be read as 9,408 classes."""
    (tmp_path / "cat").mkdir()
    shutil.copy(IMAGE, tmp_path / "cat" / "cat.jpg")
    r = invoke("classify", models["segmentation"], IMAGE, "--mean", 127.5, "--std", 127.5)
    assert r.exit_code == 1
    _one_error_line(r.stderr, "segmentation.tflite", "[1, 56, 56, 3]", "not an image classifier")
    p = run_device(["evaluate", models["segmentation"], tmp_path, "--mean", 127.5, "--std", 127.5], blocked_env)
    assert p.returncode == 1 and not p.stdout.strip()
    _one_error_line(p.stderr, "[1, 56, 56, 3]", "not an image classifier")


def test_the_classifier_check_is_one_function(models):
    """What converters' quantize calls too: [1, N] and [1, 1, 1, N] are N classes, anything else is refused."""
    from device_bench.errors import EdgekitError
    from device_bench.predict import check_classifier_output
    assert check_classifier_output([1, 10], "m") == 10 and check_classifier_output([1, 1, 1, 7], "m") == 7
    for shape in ([1, 257, 257, 21], [10], [2, 10], [1, 2, 2, 10], [1, 10, 4]):
        with pytest.raises(EdgekitError, match=r"^m: not an image classifier"):
            check_classifier_output(shape, "m")


def test_keras_models_are_told_to_convert_first(models, invoke, blocked_env, tmp_path):
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    for model in (models["keras"], h5, saved):
        for args in (["classify", model, IMAGE], ["inspect", model]):
            p = run_device(args, blocked_env)
            assert p.returncode == 1
            _one_error_line(p.stderr, str(model), "convert it first with `edgekit convert`")
        p = run_device(["bench", model, "--runs", 1, "--min-secs", 0, "--no-ceiling", "--repeat", 1, "--json"],
                       blocked_env)
        assert p.returncode == 1 and "convert it first with `edgekit convert`" in json.loads(p.stdout)[0]["error"]
    r = invoke("bench", models["keras"], "--runs", 1, "--min-secs", 0, "--no-ceiling", "--repeat", 1, "--json")
    assert r.exit_code == 1 and "is a Keras model" in json.loads(r.stdout)[0]["error"]


# --- a bare .tflite with the standard metadata only ------------------------------------------------------------

def test_bare_tflite_uses_standard_metadata(models, invoke, blocked_env):
    """Normalization and packed labels from the standard metadata, with no manifest and no flags: the same
    answer as the bundle converted from the same Keras model."""
    ours = invoke("classify", models["bundle"], SAMPLES, "--json")
    assert ours.exit_code == 0, ours.output
    theirs = invoke("classify", models["standard"], SAMPLES, "--json")
    assert theirs.exit_code == 0, theirs.output
    assert "no labels" not in theirs.stderr and "edgekit convert" not in theirs.stderr
    a, b = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert [i["predictions"][0]["label"] for i in a] == [i["predictions"][0]["label"] for i in b]
    assert np.allclose([i["predictions"][0]["score"] for i in a], [i["predictions"][0]["score"] for i in b],
                       atol=1e-4)
    p = run_device(["classify", models["standard"], IMAGE, "--json"], blocked_env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["predictions"][0]["label"] == b[0]["predictions"][0]["label"]


def test_bare_tflite_without_any_metadata_still_asks_for_mean_and_std(models, blocked_env, tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(_tflite(_keras()))
    p = run_device(["classify", bare, IMAGE, "--json"], blocked_env)
    assert p.returncode == 1
    assert "give --mean and --std" in json.loads(p.stdout)[0]["error"]
    p = run_device(["classify", bare, IMAGE, "--json", "--mean", 127.5, "--std", 127.5], blocked_env)
    assert p.returncode == 0 and json.loads(p.stdout)[0]["predictions"][0]["label"] is None  # no labels: None


# --- one line instead of a traceback ---------------------------------------------------------------------------

def test_a_model_that_fails_when_run_is_one_line(blocked_env, tmp_path):
    """"gather index out of bounds" (like "Input tensor 71 lacks data") surfaces from Invoke()."""
    model = tmp_path / "gather.tflite"
    model.write_bytes(_graph())
    p = run_device(["classify", model, IMAGE, "--mean", 0, "--std", 1, "--json"], blocked_env)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "the runtime failed running the model" in json.loads(p.stdout)[0]["error"]
    p = run_device(["bench", model, "--runs", 1, "--min-secs", 0, "--no-ceiling", "--repeat", 1, "--json"],
                   blocked_env)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "gather.tflite: the runtime failed running the model" in json.loads(p.stdout)[0]["error"]


def test_a_damaged_shape_is_one_line(blocked_env, tmp_path):
    """The memory pre-check used to raise OverflowError (int too large for a float) on such a shape."""
    model = tmp_path / "huge.tflite"
    model.write_bytes(_graph(huge_tensor=True))
    for args in (["classify", model, IMAGE, "--mean", 0, "--std", 1], ["inspect", model]):
        p = run_device(args, blocked_env)
        assert p.returncode == 1
        _one_error_line(p.stderr, "huge.tflite", "a damaged shape?")


def test_a_closed_pipe_ends_quietly(models, blocked_env, tmp_path):
    """`python -m device_bench classify ... --json | head -1` (and the zipapp, which runs the same main): the
    reader is gone before anything is written."""
    from edgekit.targets.runner_pack import pack_runner
    pyz = pack_runner(tmp_path / "device_bench.pyz")
    for prefix in ([sys.executable, "-m", "device_bench"], [sys.executable, pyz]):
        child = subprocess.Popen([*prefix, "classify", models["bundle"], SAMPLES, "--json"], env=blocked_env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        child.stdout.close()  # like head -1 that has read its line and left
        err = child.stderr.read()
        assert child.wait(timeout=120) == 1
        assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_a_signal_during_shutdown_keeps_the_results(models, blocked_env, tmp_path):
    """SIGINT after the work is printed, while the interpreter shuts down (here from an atexit hook): the
    command used to end with status -2 or a KeyboardInterrupt traceback."""
    folder = tmp_path / "site"
    folder.mkdir()
    blocker = blocked_env["PYTHONPATH"].split(os.pathsep)[0]
    (folder / "sitecustomize.py").write_text(
        open(os.path.join(blocker, "sitecustomize.py")).read() +
        "\nimport atexit, os, signal, time\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n")
    env = dict(blocked_env, PYTHONPATH=os.pathsep.join([str(folder)] + blocked_env["PYTHONPATH"].split(os.pathsep)[1:]))
    p = run_device(["classify", models["bundle"], IMAGE, "--json"], env)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and json.loads(p.stdout)[0]["predictions"]


# --- accepted with exit 0 that should not be -------------------------------------------------------------------

def test_nan_and_inf_images_are_per_item_errors(models, blocked_env, tmp_path):
    from PIL import Image
    folder = tmp_path / "float"
    folder.mkdir()
    for name, value in (("nan", np.nan), ("inf", np.inf), ("half_nan", None)):
        arr = np.full((40, 40), value if value is not None else 0.5, np.float32)
        if value is None:
            arr[:20] = np.nan
        Image.fromarray(arr).save(folder / f"{name}.tif")
    shutil.copy(IMAGE, folder / "ok.jpg")
    p = run_device(["classify", models["bundle"], folder, "--json"], blocked_env)
    assert p.returncode == 1 and "RuntimeWarning" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    rows = {os.path.basename(r["image"]): r for r in json.loads(p.stdout)}
    for name in ("nan.tif", "inf.tif", "half_nan.tif"):
        assert "NaN or infinite pixels" in rows[name]["error"] and name in rows[name]["error"]
    assert rows["ok.jpg"]["predictions"]


def test_a_folder_without_images_is_an_error(models, invoke, blocked_env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    p = run_device(["classify", models["bundle"], empty], blocked_env)
    assert p.returncode == 1 and not p.stdout.strip()
    _one_error_line(p.stderr, str(empty), "no images found")
    r = invoke("classify", models["bundle"], empty)
    assert r.exit_code == 1 and "no images found" in r.stderr


def test_a_cut_off_bare_file_is_refused(models, blocked_env, tmp_path):
    """Its packed labels cut off, the file still loads; its embedded manifest's file_size tells."""
    whole = (models["root"] / "bundles").joinpath(os.path.basename(models["bundle"]), "model.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(whole[:-20])
    p = run_device(["classify", cut, IMAGE], blocked_env)
    assert p.returncode == 1
    _one_error_line(p.stderr, "cut.tflite", f"{len(whole) - 20:,} bytes", "cut off")
    p = run_device(["classify", cut, IMAGE, "--no-verify", "--json"], blocked_env)
    assert p.returncode == 0, p.stderr  # the user's explicit choice


def test_a_manifest_whose_precision_contradicts_the_tensors_is_refused(models, invoke, blocked_env, tmp_path):
    lying = tmp_path / "lying"
    shutil.copytree(models["bundle"], lying)
    manifest = json.loads((lying / "edgekit.json").read_text())
    (lying / "edgekit.json").write_text(json.dumps(dict(manifest, precision="int8")))
    p = run_device(["classify", lying, IMAGE], blocked_env)
    assert p.returncode == 1
    _one_error_line(p.stderr, "precision int8", "float32")
    r = invoke("bench", lying, "--runs", 1, "--min-secs", 0, "--no-ceiling", "--repeat", 1, "--json")
    assert r.exit_code == 1 and "precision int8" in json.loads(r.stdout)[0]["error"]


# --- issue 19, device side: API shapes, no cycles, temporary models ---------------------------------------------

def test_benchmark_returns_bench_results(models):
    import device_bench
    from device_bench.records import BenchResults
    results = device_bench.benchmark(models["bundle"], isolate=False, num_runs=2, min_secs=0, ceiling=False)
    assert isinstance(results, BenchResults) and len(results) == 1 and results.ok
    assert results[0].latency_ms["count"] >= 2 and list(results) == results.items
    d = results.to_dict()
    assert d["schema"] == 1 and d["items"][0]["model"] == results[0].model
    assert BenchResults.from_dict(json.loads(json.dumps(d))).to_dict() == json.loads(json.dumps(d))


def test_temporary_predictor_closes_and_deletes(models, tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a folder of its own: others' files come and go
    from device_bench.errors import EdgekitError
    from device_bench.predict import temporary_predictor
    data = (models["root"] / "bundles").joinpath(os.path.basename(models["bundle"]), "model.tflite").read_bytes()
    with temporary_predictor(data, labels=LABELS) as predictor:
        path = predictor.ref.tflite_path
        assert os.path.exists(path) and predictor.label(0) == "cat" and predictor.num_outputs == 3
    assert not os.path.exists(path) and not hasattr(predictor.engine, "interpreter")  # closed, deleted
    with pytest.raises(EdgekitError, match="not an image classifier"):
        with temporary_predictor(models["segmentation"].read_bytes()):
            pass
    assert os.listdir(tmp_path) == []


def test_no_import_cycles_in_device_bench():
    """Counting imports inside functions (bench and ceiling used to import each other for make_input)."""
    import ast
    root = ROOT / "device_bench"
    names = {p.stem for p in root.glob("*.py")} - {"__init__"}
    graph = {}
    for name in names:
        deps = set()
        for node in ast.walk(ast.parse((root / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("device_bench."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.ImportFrom) and node.module == "device_bench":
                deps |= {a.name for a in node.names}
        graph[name] = deps & names - {name}

    def reaches(start, goal, seen):
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d})) for d in graph[start])

    assert [n for n in sorted(names) if reaches(n, n, {n})] == []


def test_device_api_and_records_type_check():
    mypy = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install mypy)")
    out, err, status = mypy.run(["--ignore-missing-imports", "--follow-imports=silent", "--no-incremental",
                                 str(ROOT / "device_bench" / "api.py"),
                                 str(ROOT / "device_bench" / "records.py")])
    assert status == 0, out + err
