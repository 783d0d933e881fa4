"""Studies on a Dask cluster (`edgekit run --cluster`): the same study as without one, on a LocalCluster and on a
real `dask scheduler` with `dask worker` processes, one of them holding the emulated board's lease."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, _blocking_env
from edgekit.study.rows import table_rows

pytest.importorskip("distributed")

DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]


def study_toml(digits, digit_models, targets=("local",), ssh_config=None, names=None):
    text = f"""
precisions = ["fp32", "int8"]
runs = 3
min_secs = 0.0
repeat = 1
calibration = "{digits['train']}"
calibration_count = 20
evaluate = "{digits['test']}"
targets = {json.dumps(list(targets))}
"""
    if ssh_config:
        text += f'ssh_config = "{ssh_config}"\n'
    for name in names or digit_models:
        m = digit_models[name]
        text += f'[[models]]\nsource = "{m["path"]}"\npreprocessing = "{m["preprocessing"]}"\nlabels = "{digits["labels"]}"\n'
    return text


@pytest.fixture(scope="module")
def serial(invoke, digits, digit_models, tmp_path_factory):
    """The study of the three digit models at fp32 and int8, run without a cluster."""
    d = tmp_path_factory.mktemp("serial")
    (d / "study.toml").write_text(study_toml(digits, digit_models))
    r = invoke("run", d / "study.toml", "-o", d / "out")
    assert r.exit_code == 0, r.output
    return d / "out"


def results(out):
    return json.loads((Path(out) / "results.json").read_text())


def accuracy(out):
    return [(r["model"], r["precision"], r["top1"], r["top5"], r.get("agreement_fp32"), r["file_size"], r["macs"])
            for r in results(out)["rows"]]


WHEN = ("created", "conversion_seconds", "model_sha256")  # when and how fast it was made (model.tflite embeds it)


def assert_same_bundles(a, b):
    """The same files and graphs; manifests equal but for when the bundle was made."""
    names = sorted(p.name for p in (Path(a) / "bundles").iterdir())
    assert names == sorted(p.name for p in (Path(b) / "bundles").iterdir()) and len(names) == 6
    for n in names:
        x, y = Path(a) / "bundles" / n, Path(b) / "bundles" / n
        assert sorted(os.listdir(x)) == sorted(os.listdir(y))
        assert (x / "labels.txt").read_bytes() == (y / "labels.txt").read_bytes()
        mx, my = (json.loads((d / "edgekit.json").read_text()) for d in (x, y))
        assert mx["graph_sha256"] == my["graph_sha256"] and mx["settings_hash"] == my["settings_hash"], n
        assert {k: v for k, v in mx.items() if k not in WHEN} == {k: v for k, v in my.items() if k not in WHEN}, n


def assert_no_overlap(out, devices):
    processes = results(out)["meta"]["bench_processes"]
    for device in devices:
        mine = sorted((p["start"], p["end"]) for p in processes if p["device"] == device)
        assert mine, device
        for (_, end), (start, _) in zip(mine, mine[1:]):
            assert end <= start, (device, mine)


def test_local_cluster_is_the_same_study(serial, invoke, digits, digit_models, tmp_path):
    (tmp_path / "study.toml").write_text(study_toml(digits, digit_models))
    r = invoke("run", tmp_path / "study.toml", "-o", tmp_path / "out", "--cluster", "local:2")
    assert r.exit_code == 0, r.output
    assert "[1/" in r.output and "done: build" in r.output and "done: evaluate" in r.output
    assert accuracy(tmp_path / "out") == accuracy(serial)
    assert_same_bundles(serial, tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(serial))
    assert [(t["model"], t["precision"], t["runtime"]) for t in table_rows(results(tmp_path / "out"))] == \
        [(t["model"], t["precision"], t["runtime"]) for t in table_rows(results(serial))]
    assert_no_overlap(tmp_path / "out", ["local"])
    assert results(tmp_path / "out")["meta"]["cluster"] == "local:2"
    again = invoke("run", tmp_path / "study.toml", "-o", tmp_path / "out", "--cluster", "local:1")
    assert again.exit_code == 0, again.output
    assert all(r["reused_bundle"] for r in results(tmp_path / "out")["rows"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A real `dask scheduler` and `dask worker` processes on this machine."""

    def __init__(self, folder):
        self.folder, self.workers = folder, {}
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), DASK_DISTRIBUTED__WORKER__DAEMON="False")
        self.scheduler = self.start("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                    "--port", self.address.rsplit(":", 1)[1], "--dashboard-address", ":0")

    def start(self, name, module, *args):
        log = open(self.folder / f"{name}.log", "wb")
        return subprocess.Popen([sys.executable, "-m", module, *args], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=self.folder)

    def worker(self, name, resources, nthreads=1, preload=None):
        extra = ["--preload", str(preload)] if preload else []
        self.workers[name] = self.start(name, "distributed.cli.dask_worker", self.address, "--name", name,
                                        "--nthreads", str(nthreads), "--no-nanny", "--resources", resources,
                                        "--no-dashboard", *extra)

    def wait_for(self, count):
        from distributed import Client
        with Client(self.address, timeout=60) as c:
            c.wait_for_workers(count, timeout=120)

    def stop(self):
        for p in [*self.workers.values(), self.scheduler]:
            if p.poll() is None:
                p.terminate()
        for p in [*self.workers.values(), self.scheduler]:
            try:
                p.wait(timeout=5)  # a worker whose scheduler is gone would wait for it: killed
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


def kill_the_builder(cluster, out):
    """Kill -9 the build worker running a build (mid-task), as soon as one runs; record which."""
    from distributed import Client
    with Client(cluster.address, timeout=30) as c:
        for _ in range(600):
            busy = {w: keys for w, keys in c.processing().items() if any("build_task-build_" in k and
                                                                            "mobilenet_v1" in k for k in keys)}
            if busy:
                time.sleep(2)  # inside the task: past its start, well before a conversion ends
                name = c.scheduler_info()["workers"][next(iter(busy))]["name"]
                os.kill(cluster.workers[name].pid, signal.SIGKILL)
                out.append(name)
                return
            time.sleep(0.2)


def test_real_cluster_with_the_board(serial, cluster, invoke, board, digits, digit_models, tmp_path):
    cluster.worker("build-a", "convert=1")
    cluster.worker("build-b", "convert=1")
    cluster.worker("devices", "board=1,local=1", nthreads=2)  # owns this machine, reaches the board over SSH
    cluster.wait_for(3)
    out = tmp_path / "out"
    shutil.copytree(serial, out)  # built already: not built again ...
    for p in (out / "bundles").glob("mobilenet_v1*"):
        shutil.rmtree(p)  # ... but this one, during which a build worker dies
    (out / "results.json").unlink()
    (tmp_path / "study.toml").write_text(study_toml(digits, digit_models, ("local", "board"), board["config"]))
    killed = []
    killer = threading.Thread(target=kill_the_builder, args=(cluster, killed))
    killer.start()
    r = invoke("run", tmp_path / "study.toml", "-o", out, "--cluster", cluster.address)
    killer.join()
    assert r.exit_code == 0, r.output
    assert len(killed) == 1 and "retried" in r.output
    saved = results(out)
    assert any("ran 1 more time(s) on another worker" in n for n in saved["meta"]["notes"])
    assert accuracy(out) == accuracy(serial)
    assert_same_bundles(serial, out)
    rows = saved["rows"]
    assert [r["reused_bundle"] for r in rows] == [True, True, True, True, False, False]
    targets = [b.get("target", "local") for r in rows for b in r["bench"]]
    assert targets == ["local", "board"] * 6 and all(b.get("latency_ms") for r in rows for b in r["bench"])
    assert all(b["environment"]["arch"] == "aarch64" for r in rows for b in r["bench"] if b.get("target"))
    assert_no_overlap(out, ["local", "board"])
    assert "board" in (out / "report.md").read_text()


def test_cluster_bad_input_is_one_line(invoke, digits, digit_models, tmp_path, cluster):
    (tmp_path / "study.toml").write_text(study_toml(digits, digit_models, ("local", "pi5-a"), names=["squeezenet1_1"]))
    r = invoke("run", tmp_path / "study.toml", "--cluster", "local:1", "-o", tmp_path / "a")
    assert r.exit_code == 1 and "holds the resource 'pi5-a' that benchmarks on device pi5-a needs" in r.output
    assert 'dask worker' in r.output and '--resources "pi5-a=1"' in r.output
    (tmp_path / "study.toml").write_text(study_toml(digits, digit_models, names=["squeezenet1_1"]))
    (tmp_path / "other.py").write_text("import device_bench\ndevice_bench.__version__ = '0.0.9'\n")
    cluster.worker("old", "convert=1,local=1", preload=tmp_path / "other.py")
    cluster.wait_for(1)
    r = invoke("run", tmp_path / "study.toml", "--cluster", cluster.address, "-o", tmp_path / "b")
    from device_bench import __version__
    assert r.exit_code == 1 and f"runs edgekit 0.0.9, this machine {__version__}" in r.output
    assert r.output.count("\n") <= 3


def test_scheduler_going_away_keeps_finished_rows(invoke, digits, digit_models, tmp_path, cluster, monkeypatch):
    import edgekit.cli
    cluster.worker("all", "convert=1,local=1")
    cluster.wait_for(1)
    said = edgekit.cli.progress

    def progress(message):
        said(message)
        if message.startswith("[1/") and "done: build" in message:
            cluster.scheduler.kill()  # the first build is in: the scheduler goes away
    monkeypatch.setattr(edgekit.cli, "progress", progress)
    (tmp_path / "study.toml").write_text(study_toml(digits, digit_models, names=["squeezenet1_1", "mobilenet_v2"]))
    r = invoke("run", tmp_path / "study.toml", "--cluster", cluster.address, "-o", tmp_path / "out")
    assert r.exit_code == 1 and "Traceback" not in r.output
    saved = results(tmp_path / "out")
    assert any("went away mid-study" in n for n in saved["meta"]["notes"])
    built = [r for r in saved["rows"] if r.get("file_size")]
    assert len(built) == 2 and all("went away" in (r.get("error") or "") for r in saved["rows"])


def test_cluster_address_errors_are_one_line(invoke, tmp_path):
    (tmp_path / "s.toml").write_text('[[models]]\nname = "squeezenet1_1"\nsize = 32\n')
    r = invoke("run", tmp_path / "s.toml", "--cluster", "mars:9", "-o", tmp_path / "o")
    assert r.exit_code == 1 and "a cluster is local[:N] or tcp://host:port" in r.output
    (tmp_path / "c.toml").write_text('cluster = "local:0"\n[[models]]\nname = "squeezenet1_1"\n')
    r = invoke("run", tmp_path / "c.toml", "-o", tmp_path / "o")
    assert r.exit_code == 1 and "c.toml: local:N needs N of 1 or more" in r.output
    r = invoke("run", tmp_path / "s.toml", "--cluster", f"tcp://127.0.0.1:{free_port()}", "-o", tmp_path / "o")
    assert r.exit_code == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:" in r.output
    assert "within 10 s" in r.output and "Traceback" not in r.output


def test_cluster_without_dask_names_the_extra(tmp_path):
    (tmp_path / "s.toml").write_text('[[models]]\nname = "squeezenet1_1"\nsize = 32\n')
    env = _blocking_env(tmp_path, ("dask", "distributed"))
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "run", str(tmp_path / "s.toml"), "--cluster", "local",
                        "-o", str(tmp_path / "o")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "pip install 'edgekit-tflite[cluster]'" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr
