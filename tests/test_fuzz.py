"""A seeded, deterministic fuzz campaign over the device-side entry points (edgekit's CLI, python -m
device_bench and the zipapp): mutated model files, manifests, labels and images, special files (FIFOs,
/dev/zero, unreadable files) and huge declared shapes. Every run must end with a correct result or
one clean `Error:` line: no traceback, no hang, no signal. A mutated bundle model either fails the
checksum or gives the original's output."""

import json
import os
import random
import resource
import subprocess
import sys
from collections import Counter

import pytest

from conftest import ROOT, SAMPLES

SEED = 20261128
TIMEOUT = 60
IMAGE = SAMPLES / "cat.jpg"


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # a runaway allocation fails instead of the OOM killer


@pytest.fixture(scope="module")
def entry_points(invoke, tmp_path_factory):
    """The three device-side faces, each as a command prefix."""
    pyz = tmp_path_factory.mktemp("pyz") / "device_bench.pyz"
    assert invoke("pack-runner", "-o", pyz).exit_code == 0
    return {"edgekit": [sys.executable, "-m", "edgekit.cli"], "device_bench": [sys.executable, "-m", "device_bench"],
            "zipapp": [sys.executable, str(pyz)]}


def run(prefix, *args):
    """(outcome, returncode, stdout, stderr); outcome 'hang', 'signal', 'traceback', 'error' or 'ok'."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        p = subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT, env=env,
                           cwd=ROOT, preexec_fn=_limits)
    except subprocess.TimeoutExpired:
        return "hang", None, "", ""
    if p.returncode < 0:
        return "signal", p.returncode, p.stdout, p.stderr
    if "Traceback" in p.stderr or "Traceback" in p.stdout:
        return "traceback", p.returncode, p.stdout, p.stderr
    if p.returncode != 0:
        errors = [l for l in p.stderr.splitlines() if l.startswith("Error: ")]
        clean = len(errors) == 1 or (not errors and _error_rows(p.stdout))  # a batch's per-item errors
        return ("error" if clean else "messy"), p.returncode, p.stdout, p.stderr
    return "ok", 0, p.stdout, p.stderr


def _error_rows(stdout):
    try:
        return any("error" in r for r in json.loads(stdout))
    except (ValueError, TypeError):
        return False


def top(stdout):
    """(index, rounded score) of each image's predictions in classify --json output."""
    return [[(p["index"], round(p["score"], 5)) for p in r.get("predictions") or []] for r in json.loads(stdout)]


def check(tally, outcome, rc, out, err, reference=None, what=""):
    """One run ended cleanly (and, with a reference, exit 0 means the original's result); counted in tally."""
    tally[outcome] += 1
    assert outcome in ("ok", "error"), f"{what}: {outcome} (exit {rc})\n{err[-2000:]}"
    if outcome == "ok" and reference is not None:
        assert top(out) == reference, f"{what}: exit 0 with a different result"
        tally["correct result"] += 1


def both_paths_taken(tally, what):
    """The campaign reached both the accepting and the refusing code: were every run refused (a base
    bundle that broke, say), the campaign would prove nothing. The seed is fixed, so the counts are too."""
    print(f"\n{what} tally: {dict(tally)}")
    assert tally["ok"] > 0 and tally["error"] > 0, tally


@pytest.fixture(scope="module")
def base(tiny_bundles, entry_points, tmp_path_factory):
    """A bundle to mutate, and its reference classification."""
    import shutil
    root = tmp_path_factory.mktemp("fuzz")
    bundle = root / "base"
    shutil.copytree(tiny_bundles[("squeezenet1_1", "int8")], bundle)
    outcome, rc, out, err = run(entry_points["device_bench"], "classify", bundle, IMAGE, "--json")
    assert outcome == "ok", err
    return root, bundle, top(out)


def _copy(base_bundle, dest):
    import shutil
    shutil.copytree(base_bundle, dest)
    return dest


def _mutate_bytes(rng, data):
    data = bytearray(data)
    kind = rng.choice(["flip", "truncate", "append", "zero-run"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "append":
        data += rng.randbytes(rng.randint(1, 4096))
    else:
        start = rng.randrange(len(data))
        data[start:start + rng.randint(1, 256)] = bytes(min(256, len(data) - start))
    return bytes(data)


_ODD_VALUES = [None, "", "x" * 5000, -1, 0, 1e308, float("nan"), float("inf"), [], {}, [None], True, "NaN",
               [1, 2], [0.0, 0.0, 0.0], "lanczos", 2 ** 63]


def _mutate_manifest(rng, m):
    """Replace one random field (at any depth) with an odd value."""
    node = m
    while True:
        key = rng.choice(list(node))
        if isinstance(node[key], dict) and node[key] and rng.random() < 0.6:
            node = node[key]
            continue
        node[key] = rng.choice(_ODD_VALUES)
        return m


def test_fuzz_bundles_models_manifests_labels(base, entry_points):
    rng = random.Random(SEED)
    root, bundle, reference = base
    faces = list(entry_points.values())
    tally = Counter()
    for i in range(60):  # model bytes inside a bundle: the checksum catches every change
        b = _copy(bundle, root / f"model{i}")
        (b / "model.tflite").write_bytes(_mutate_bytes(rng, (bundle / "model.tflite").read_bytes()))
        outcome, rc, out, err = run(faces[i % 3], "classify", b, IMAGE, "--json")
        check(tally, outcome, rc, out, err, reference, f"model mutation {i}")
        assert outcome == "ok" or "sha256" in err or "bytes, but the manifest says" in err, err
    for i in range(40):  # a lone .tflite has no checksum: a clean error or a run, never a crash
        lone = root / f"lone{i}.tflite"
        lone.write_bytes(_mutate_bytes(rng, (bundle / "model.tflite").read_bytes()))
        check(tally, *run(faces[i % 3], "classify", lone, IMAGE, "--json"), what=f"lone model mutation {i}")
    for i in range(45):  # manifests
        b = _copy(bundle, root / f"manifest{i}")
        m = _mutate_manifest(rng, json.loads((b / "edgekit.json").read_text()))
        (b / "edgekit.json").write_text(json.dumps(m))
        check(tally, *run(faces[i % 3], "classify", b, IMAGE, "--json"), reference, f"manifest mutation {i}")
    for i in range(30):  # labels: any change may rename classes, never crash
        b = _copy(bundle, root / f"labels{i}")
        (b / "labels.txt").write_bytes(_mutate_bytes(rng, (b / "labels.txt").read_bytes()))
        check(tally, *run(faces[i % 3], "classify", b, IMAGE, "--json"), what=f"labels mutation {i}")
    assert tally["correct result"] > 0, tally  # some mutations were harmless and gave the original's result
    both_paths_taken(tally, "bundle")


def test_fuzz_images(base, entry_points):
    rng = random.Random(SEED + 1)
    root, bundle, _ = base
    faces = list(entry_points.values())
    sources = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".jpg", ".png"))
    tally = Counter()
    for i in range(30):
        src = sources[i % len(sources)]
        img = root / f"img{i}{src.suffix}"
        img.write_bytes(_mutate_bytes(rng, src.read_bytes()))
        check(tally, *run(faces[i % 3], "classify", bundle, img, "--json"), what=f"image mutation {i}")
    both_paths_taken(tally, "image")


def test_special_files_and_huge_shapes(base, entry_points, tmp_path):
    root, bundle, _ = base
    tally = Counter()
    cases = []
    for name in ("edgekit.json", "model.tflite", "labels.txt"):
        for kind in ("fifo", "devzero", "procmem", "folder"):
            b = _copy(bundle, tmp_path / f"{name}-{kind}")
            (b / name).unlink()
            if kind == "fifo":
                os.mkfifo(b / name)
            elif kind == "devzero":
                os.symlink("/dev/zero", b / name)
            elif kind == "procmem":
                os.symlink("/proc/self/mem", b / name)  # a file whose every read fails
            else:
                (b / name).mkdir()
            cases.append((b, f"{name} as {kind}"))
    cases.append((_huge_input_model(bundle / "model.tflite", tmp_path / "huge.tflite"), "30000x30000 input"))
    for i, (target, what) in enumerate(cases):
        for face in entry_points.values():
            outcome, rc, out, err = run(face, "classify", target, IMAGE, "--json")
            check(tally, outcome, rc, out, err, what=what)
            assert outcome == "error", f"{what}: accepted"
    for face in entry_points.values():  # refused before the runtime allocates a byte
        outcome, rc, out, err = run(face, "bench", cases[-1][0], "--runs", "1", "--max-memory", "1000", "--json")
        check(tally, outcome, rc, out, err, what="declared tensors above --max-memory")
        assert "more than the 1,000 MB allowed (--max-memory changes the limit)" in json.loads(out)[0]["error"]


def _huge_input_model(src, dest):
    """The model with its input declared 30000x30000: refused before any allocation. A foreign file: its
    embedded manifest is dropped (rewritten, its file_size would be stale and refused first)."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu
    from device_bench.manifest import META_MANIFEST
    from device_bench.tflite_metadata import without_entries
    model = fbu.convert_bytearray_to_object(bytearray(without_entries(src.read_bytes(), [META_MANIFEST])))
    sg = model.subgraphs[0]
    sg.tensors[sg.inputs[0]].shape = [1, 30000, 30000, 3]
    fbu.write_model(model, str(dest))
    return dest


def test_fuzz_study_configs(tmp_path):
    """Mutated study TOML: a checked Study or one EdgekitError, before any work starts."""
    from device_bench.errors import EdgekitError
    from edgekit.study.config import Study
    rng = random.Random(SEED + 2)
    text = 'precisions = ["fp32", "int8"]\nthreads = [1, 2]\nruns = 5\n[[models]]\nname = "squeezenet1_1"\nsize = 48\n'
    tally = Counter()
    tokens = ['"fifty"', "2", "[]", '"x"', "-1", "[[1]]", "{}", "true", "1e400", '"\\u0000"', "[" * 20 + "]" * 20]
    for i in range(60):
        lines = text.splitlines()
        j = rng.randrange(len(lines))
        if "=" in lines[j] and rng.random() < 0.8:
            key = lines[j].split("=")[0]
            lines[j] = f"{key}= {rng.choice(tokens)}"
        else:
            lines.insert(j, rng.choice(["colour = 1", "[[model]]", "\x00\xff", "precision = []"]))
        path = tmp_path / f"s{i}.toml"
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
        try:
            Study.from_toml(path)
            tally["ok"] += 1
        except EdgekitError as e:
            assert str(e).startswith(str(path)), e
            tally["error"] += 1
    both_paths_taken(tally, "study config")
