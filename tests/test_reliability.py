"""Faults a user meets: Ctrl-C and SIGTERM mid-work, a full disk, unreadable folders, a device without
TensorFlow or Pillow, a dead remote target. Nothing good is lost, nothing temporary is left behind,
and each ends in one `Error:` line."""

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SAMPLES


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _edgekit(args, tmpdir, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmpdir))
    return subprocess.Popen([sys.executable, "-m", "edgekit.cli", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _signal_after(proc, needle, sig, timeout=240):
    """Send ``sig`` as soon as a progress line containing ``needle`` reaches stderr, so the signal lands
    while that step is under way (a fixed delay may land after the work is done, proving nothing).
    Returns (stdout, stderr); fails when the line never came."""
    seen, deadline = [], time.monotonic() + timeout
    for line in proc.stderr:  # the progress lines, one by one, as they come
        seen.append(line)
        if needle in line:
            proc.send_signal(sig)
            break
        if time.monotonic() > deadline:
            break
    else:
        proc.wait(timeout=60)
    if not seen or needle not in seen[-1]:
        proc.kill()
        proc.communicate()
        pytest.fail(f"no progress line with {needle!r} before the command ended:\n{''.join(seen)[-2000:]}")
    stdout, rest = proc.communicate(timeout=120)
    return stdout, "".join(seen) + rest


# Each signal lands during a named step: the SavedModel export (nothing written yet), the fp32 conversion
# (SIGTERM this time), the int8 conversion (the fp32 bundle already replaced).
@pytest.mark.parametrize("sig,step", [(signal.SIGINT, "exporting SavedModel"), (signal.SIGTERM, "fp32: converting"),
                                      (signal.SIGINT, "int8: converting")])
def test_interrupted_convert_keeps_the_old_bundle_and_leaves_nothing(invoke, tmp_path, sig, step):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    args = ["convert", "mobilenet_v2", "--alpha", "0.35", "--size", "48", "--classes", "3", "-p", "fp32", "-p", "int8",
            "-o", out, "--calibration-count", "20"]
    assert invoke(*args).exit_code == 0
    before = {b.name: _digest(b) for b in out.iterdir()}
    proc = _edgekit(args + ["--force"], tmp)
    _, stderr = _signal_after(proc, step, sig)
    assert "Traceback" not in stderr
    # the signal was sent while the step ran: the command must have stopped on it, not finished
    assert proc.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "Error: interrupted"
    after = {b.name: _digest(b) for b in out.iterdir()}
    assert sorted(after) == sorted(before)  # no half-written bundle folder beside them
    if step == "int8: converting":  # the fp32 bundle, finished before the signal, may have been replaced whole
        assert after["mobilenet_v2_035_48_int8"] == before["mobilenet_v2_035_48_int8"]
        assert sorted(after["mobilenet_v2_035_48_fp32"]) == sorted(before["mobilenet_v2_035_48_fp32"])
    else:  # stopped before any bundle was finished: every old one untouched
        assert after == before
    assert list(tmp.iterdir()) == []  # no edgekit-convert-* left


def test_interrupted_run_keeps_the_old_report(invoke, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('precisions = ["fp32", "int8"]\nthreads = [1, 2]\nruns = 50\nmin_secs = 1.0\n'
                   '[[models]]\nname = "squeezenet1_1"\nsize = 48\nclasses = 3\n')
    out = tmp_path / "out"
    assert invoke("run", cfg, "-o", out).exit_code == 0
    before = _digest(out)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _edgekit(["run", cfg, "-o", out], tmp)
    # converting is skipped (bundles reused): the signal lands in the benchmarks (4 configurations x
    # 3 processes of >= 1 s each)
    _, stderr = _signal_after(proc, "== benchmarking", signal.SIGINT)
    assert "Traceback" not in stderr and proc.returncode == 130, stderr[-2000:]
    assert _digest(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")] and list(tmp.iterdir()) == []


def _fsize(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_disk_full_report_keeps_the_old_set(invoke, tiny_bundles, tmp_path):
    bench = tmp_path / "b.json"
    r = invoke("bench", tiny_bundles[("squeezenet1_1", "fp32")], "--runs", "2", "--min-secs", "0", "--json")
    bench.write_text(r.stdout)
    out = tmp_path / "report"
    assert invoke("report", bench, "-o", out).exit_code == 0
    before = _digest(out)
    proc = _edgekit(["report", bench, "-o", out, "--force"], tmp_path, preexec_fn=_fsize(8000))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith("Error: cannot write")
    assert _digest(out) == before and not [p for p in out.iterdir() if p.name.startswith(".")]


def test_disk_full_convert_keeps_the_old_bundle(invoke, tmp_path):
    out = tmp_path / "out"
    args = ["convert", "squeezenet1_1", "--size", "48", "--classes", "3", "-p", "fp32", "-o", out]
    assert invoke(*args).exit_code == 0
    before = _digest(out / "squeezenet1_1_48_fp32")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _edgekit(args + ["--force"], tmp, preexec_fn=_fsize(200_000))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith("Error: ")
    assert _digest(out / "squeezenet1_1_48_fp32") == before
    assert [p.name for p in out.iterdir()] == ["squeezenet1_1_48_fp32"] and list(tmp.iterdir()) == []


def _runnable_by_nobody(path):
    """Whether user nobody can run this interpreter (every folder on its real path open to others)."""
    path = os.path.realpath(path)
    parents = [os.path.dirname(path)]
    while parents[-1] != "/":
        parents.append(os.path.dirname(parents[-1]))
    return all(os.stat(p).st_mode & 0o001 for p in parents) and os.stat(path).st_mode & 0o001


def test_unreadable_class_folders_are_errors(digits, digit_models, tmp_path):
    """A class folder that cannot be read (mode 000 for a plain user; a looping link even for root)
    is an error row and a non-zero exit, never a silent gap."""
    data = tmp_path / "data"
    for c in ("3", "7"):
        (data / c).mkdir(parents=True)
        for p in sorted((digits["test"] / c).iterdir())[:3]:
            shutil.copy(p, data / c)
    os.symlink(data / "5", data / "5")  # a link to itself: no one can read it
    bundle = tmp_path / "bundle"
    shutil.copytree(digit_models["squeezenet1_1"]["bundles"]["int8"], bundle)
    for p in [tmp_path, data, bundle, *(q for q in data.rglob("*") if not q.is_symlink()), *bundle.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    unreadable, as_user = 1, {}
    if os.geteuid() != 0 or _runnable_by_nobody(sys.executable):
        (data / "7").chmod(0)
        unreadable = 2
        if os.geteuid() == 0:  # root reads everything: drop to nobody, for whom mode 000 means unreadable
            as_user = {"preexec_fn": lambda: (os.setgid(65534), os.setuid(65534))}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "device_bench", "evaluate", bundle, data, "--json"], env=env,
                          capture_output=True, text=True, cwd="/", **as_user)
    (data / "7").chmod(0o755)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    r = json.loads(proc.stdout)
    assert r["count"] == 6 - 3 * (unreadable - 1) and len(r["errors"]) == unreadable
    assert any(str(data / "5") in e["error"] for e in r["errors"])


def test_device_without_tensorflow_or_pillow_is_told_what_to_install(tiny_bundles, tmp_path):
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nclass B:\n    def find_spec(self, name, path=None, target=None):\n"
                       "        if name.split('.')[0] in ('tensorflow', 'keras', 'PIL'):\n"
                       "            raise ImportError(f'No module named {name!r}')\nsys.meta_path.insert(0, B())\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    for args, needle in ((["edgekit.cli", "models"], "pip install 'edgekit-tflite[convert]'"),
                         (["edgekit.cli", "build", "squeezenet1_1", "-o", tmp_path / "m.keras"], "[convert]"),
                         (["device_bench", "classify", tiny_bundles[("squeezenet1_1", "fp32")], SAMPLES / "cat.jpg"],
                          "pip install pillow")):
        proc = subprocess.run([sys.executable, "-m", *map(str, args)], env=env, capture_output=True, text=True)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        assert needle in proc.stderr + proc.stdout


def test_dead_remote_target_is_an_error_row(invoke, tiny_bundles):
    bundle = tiny_bundles[("squeezenet1_1", "int8")]
    r = invoke("classify", bundle, SAMPLES / "cat.jpg", "--target", "ssh://127.0.0.1:1")
    assert r.exit_code == 1 and "[ssh://127.0.0.1:1] error:" in r.stdout and "Traceback" not in r.output
    zero = invoke("classify", bundle, SAMPLES / "cat.jpg", "--target", "ssh://127.0.0.1:1", "--top-k", "0")
    assert zero.exit_code == 1 and "--top-k must be at least 1, got 0" in zero.output
    assert invoke("classify", bundle, SAMPLES / "cat.jpg", "--top-k", "0").exit_code == 1


def test_nan_and_zero_preprocessing_are_refused(invoke, tmp_path):
    import keras
    inp = keras.Input((16, 16, 3))
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp))).save(tmp_path / "m.keras")
    for mean, std, needle in (("nan", "127.5", "--mean takes finite numbers"), ("0", "inf", "--std takes finite"),
                              ("0", "0", "--std must not be zero"), ("1,2", "1", "--mean takes one value or three")):
        r = invoke("convert", tmp_path / "m.keras", "--mean", mean, "--std", std, "-p", "fp32", "-o", tmp_path / "o")
        assert r.exit_code == 1 and needle in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o").exists()
