"""Shared fixtures: TensorFlow is imported once per session, expensive artefacts are built once."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
os.environ.pop("EDGEKIT_HISTORY", None)  # a developer's history gets no records from the test suite
SAMPLES = ROOT / "edgekit" / "sample_images"

# A site-customisation that makes the named packages unimportable in a child process: with
# TensorFlow, Keras, click, edgekit and converters blocked it proves the device side runs where only
# numpy and a TFLite runtime are installed; with TensorFlow and Keras alone, that `edgekit quantize` does.
BLOCKER = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {names!r}:
            raise ImportError(f'{{name}} is blocked in this test')
sys.meta_path.insert(0, _Block())
"""


def _blocking_env(folder, names):
    folder.joinpath("sitecustomize.py").write_text(BLOCKER.format(names=tuple(names)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)])
    return env


@pytest.fixture(scope="session")
def runner():
    return CliRunner()


@pytest.fixture(scope="session")
def cli():
    from edgekit.cli import cli as group
    return group


@pytest.fixture(scope="session")
def invoke(runner, cli):
    """Run an edgekit command in-process; returns click's Result."""
    def run(*args, input=None):
        return runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
    return run


@pytest.fixture(scope="session")
def blocked_env(tmp_path_factory):
    """Environment for a child python where tensorflow/keras/click/edgekit cannot be imported."""
    return _blocking_env(tmp_path_factory.mktemp("blocker"), ("tensorflow", "keras", "click", "edgekit", "converters"))


@pytest.fixture(scope="session")
def no_tf_env(tmp_path_factory):
    """Environment for a child python where tensorflow and keras cannot be imported (edgekit can)."""
    return _blocking_env(tmp_path_factory.mktemp("no_tf"), ("tensorflow", "keras"))


def run_device(args, env, cwd=None, timeout=300):
    """Run ``python -m device_bench ARGS`` in a child with TF/Keras/click blocked."""
    return subprocess.run([sys.executable, "-m", "device_bench", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


TINY_ZOO = [("squeezenet1_1", None, 64), ("mobilenet_v1", 0.25, 64), ("mobilenet_v2", 0.35, 64)]
from device_bench.options import PRECISIONS  # noqa: E402


@pytest.fixture(scope="session")
def board():
    """The emulated aarch64 board (tests/board/board.sh) at EDGEKIT_BOARD_DIR (`make test`: .board), or a skip
    that says why there is none. A board set up (ssh_config written) that does not answer is a failure: it said
    it was up."""
    d = Path(os.environ.get("EDGEKIT_BOARD_DIR", ROOT / ".board"))
    if (d / "unavailable").exists():
        pytest.skip(f"emulated board unavailable: {(d / 'unavailable').read_text().strip()}")
    if not (d / "ssh_config").exists():
        pytest.skip("emulated board not set up: `make test` sets it up (needs root), or set EDGEKIT_BOARD_DIR")
    found = {"config": str(d / "ssh_config"), "target": "board"}
    try:
        up = board_ssh(found, "true", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"emulated board in {d} is set up but does not answer over ssh (timed out)")
    if up.returncode != 0:
        pytest.fail(f"emulated board in {d} is set up but does not answer over ssh: {up.stderr.strip()[:200]}")
    return found


def board_ssh(board, command, timeout=120):
    """Run a shell command line on the board."""
    return subprocess.run(["ssh", "-F", board["config"], "-o", "BatchMode=yes", "board", command],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_labels(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("".join(f"class {i}\n" for i in range(10)))
    return path


@pytest.fixture(scope="session")
def tiny_bundles(runner, cli, tmp_path_factory, tiny_labels):
    """Every precision of small SqueezeNet 1.1 / MobileNet V1 / V2, converted once through the CLI."""
    out = tmp_path_factory.mktemp("bundles")
    made = {}
    for name, alpha, size in TINY_ZOO:
        args = ["convert", name, "--size", size, "--classes", 10, "--labels", tiny_labels, "-o", out, "--json"]
        if alpha:
            args += ["--alpha", alpha]
        for p in PRECISIONS:
            args += ["-p", p]
        result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        import json
        summary = json.loads(result.stdout)
        for b in summary["bundles"]:
            made[(name, b["precision"])] = Path(b["bundle"])
    return made


# name, alpha, epochs, learning rate, preprocessing (SqueezeNet: torch's per-channel normalization)
DIGIT_MODELS = [("squeezenet1_1", None, 20, 1e-3, "torch"), ("mobilenet_v2", 0.35, 15, 2e-3, "tf"),
                ("mobilenet_v1", 0.5, 20, 2e-3, "tf")]
OTHER_IO_MODEL = "squeezenet1_1"  # also converted with int8 and float32 I/O


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """Real labelled images: train/ and test/ class folders of 32x32 PNG digits."""
    import digits as d
    root = tmp_path_factory.mktemp("digits")
    train_dir, test_dir = d.write_digits(root)
    labels = root / "labels.txt"
    labels.write_text("".join(f"{c}\n" for c in d.CLASSES))
    return {"root": root, "train": train_dir, "test": test_dir, "labels": labels}


@pytest.fixture(scope="session")
def digit_models(digits, runner, cli):
    """Small SqueezeNet 1.1, MobileNetV2 and MobileNet V1 trained on the digits, converted through the CLI
    with their normalization folded in, at every precision (int8 with uint8 I/O, the default; for SqueezeNet,
    whose per-channel normalization the I/O types must all carry, also int8 and float32 I/O as "int8-int8",
    "int8-float32"), calibrated on training images."""
    import json
    import digits as d
    from device_bench.images import make_preprocessing
    out = {}
    for name, alpha, epochs, lr, mode in DIGIT_MODELS:
        model = d.train(name, alpha, digits["train"], make_preprocessing(mode), epochs, lr)
        path = digits["root"] / f"{name}.keras"
        model.save(path)
        base = ["convert", path, "--preprocessing", mode, "--fold-preprocessing", "--labels", digits["labels"],
                "--calibration", digits["train"], "--calibration-count", 200, "--eval", digits["test"], "--json"]
        bundles = {}
        ios = [("uint8", PRECISIONS, "bundles")]
        if name == OTHER_IO_MODEL:
            ios += [("int8", ["int8"], "int8io"), ("float32", ["int8"], "float32io")]
        for io, precisions, folder in ios:
            args = base + ["--io", io, "-o", digits["root"] / folder]
            for p in precisions:
                args += ["-p", p]
            result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            for b in json.loads(result.stdout)["bundles"]:
                bundles[b["precision"] if io == "uint8" else f"int8-{io}"] = Path(b["bundle"])
        out[name] = {"keras": model, "path": path, "bundles": bundles, "preprocessing": mode}
    return out


# The fast tier (`pytest -m "not slow"`): pure functions, the layout, and the CLI on small files built in the
# test. Whatever trains, converts whole zoo models, benchmarks in fresh processes, or stands up another venv or
# a board is "slow": modules whose tests all do, and any test that asks for a fixture that does.
SLOW_MODULES = {"test_api", "test_bench", "test_classify", "test_convert", "test_fuzz",
                "test_phone", "test_quantize", "test_reliability", "test_remote", "test_runtimes", "test_study",
                "test_tflite_runtime", "test_train_compress", "test_wheel"}
SLOW_FIXTURES = {"board", "digit_models", "tiny_bundles", "trained", "pruned"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
