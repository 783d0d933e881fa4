"""The test suite's trained digits models (tests/conftest.py's DIGIT_MODELS), made again for the benchmark
scripts that measure what the tests no longer assert: how close each build stays to fp32, how many
answers folded and unfolded builds share. One set per seed, so the spread a seed gives is seen.

Everything after training goes through the edgekit CLI, as in the tests."""

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, edgekit  # noqa: E402,F401  (edgekit: the scripts import it from here too)

sys.path.insert(0, str(ROOT / "tests"))


def digits_data(work):
    """train/ and test/ class folders of the digits, and labels.txt (written once)."""
    import digits
    root = Path(work) / "digits"
    if not (root / "train").exists():
        digits.write_digits(root)
    labels = root / "labels.txt"
    labels.write_text("".join(f"{c}\n" for c in digits.CLASSES))
    return {"train": root / "train", "test": root / "test", "labels": labels}


def trained_models(work, seed, data):
    """{name: (.keras path, preprocessing mode)}: conftest.DIGIT_MODELS trained with ``seed`` (reused if there)."""
    import digits
    from conftest import DIGIT_MODELS
    made = {}
    for name, alpha, epochs, lr, mode in DIGIT_MODELS:
        path = Path(work) / f"seed{seed}" / f"{name}.keras"
        if not path.exists():
            from device_bench.images import make_preprocessing
            path.parent.mkdir(parents=True, exist_ok=True)
            digits.train(name, alpha, data["train"], make_preprocessing(mode), epochs, lr, seed=seed).save(path)
        made[name] = (path, mode)
    return made


def convert(path, mode, data, out, precisions, fold=True, io="uint8"):
    """{precision: bundle folder} from `edgekit convert`, calibrated on 200 training images as in the tests."""
    args = ["convert", path, "--preprocessing", mode, "--fold-preprocessing" if fold else "--no-fold-preprocessing",
            "--labels", data["labels"], "--calibration", data["train"], "--calibration-count", 200, "--io", io,
            "-o", out, "--force", "--json"]
    for p in precisions:
        args += ["-p", p]
    return {b["precision"]: Path(b["bundle"]) for b in edgekit(*args)["bundles"]}


def evaluate(bundle, data, compare=None):
    """`edgekit evaluate --json` on the 360 held-out digits (with --compare when given)."""
    return edgekit("evaluate", bundle, data["test"], "--json", *(["--compare", compare] if compare else []))


def seeds_option(ap, default="0"):
    ap.add_argument("--seeds", default=default, help="Comma-separated training seeds (one model set each).")


def parse_seeds(text):
    return [int(s) for s in text.split(",") if s.strip()]
