"""Remote devices over SSH: probe, upload the runner and bundles, run, fetch JSON, clean up.

OpenSSH is the engine (the user's config, agent and known_hosts apply); edgekit builds no agent of
its own. Every remote command is a list of arguments joined with shlex.quote, so paths and names
with spaces, quotes or $() arrive intact and run nothing. Files travel as a tar stream on ssh's
stdin, unpacked by the device's own python3, so the device needs nothing beyond python3.
"""

import io
import json
import os
import re
import shlex
import subprocess
import tarfile
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from device_bench.errors import EdgekitError

CONNECT_TIMEOUT = 10
RUN_TIMEOUT = 1800

PROBE = r"""
import json, os, platform, sys
out = {"python": platform.python_version(), "arch": platform.machine(), "runtime": None, "numpy": None,
       "board": None, "libc": " ".join(platform.libc_ver()).strip() or None}
try:
    out["board"] = open("/proc/device-tree/model").read().strip("\x00\n ") or None
except OSError:
    pass
try:
    import numpy
    out["numpy"] = numpy.__version__
except Exception as e:
    out["numpy_error"] = str(e)[:200]
for name, mod in (("litert", "ai_edge_litert"), ("tflite-runtime", "tflite_runtime")):
    try:
        m = __import__(mod + ".interpreter", fromlist=["Interpreter"])
        out["runtime"] = {"name": name, "version": getattr(sys.modules[mod], "__version__", "unknown")}
        break
    except Exception as e:
        out.setdefault("runtime_errors", {})[name] = str(e)[:200]
print(json.dumps(out))
"""

UNPACK = "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|').extractall(sys.argv[1])"
MKTEMP = "import tempfile; print(tempfile.mkdtemp(prefix='edgekit-'))"
MKDIR = "import os, sys; os.makedirs(sys.argv[1], exist_ok=True); print(os.path.abspath(sys.argv[1]))"
REMOVE = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"


class Target:
    """ssh://[user@]host[:port] or a Host alias from ~/.ssh/config."""

    def __init__(self, spec, ssh_config=None):
        self.spec = spec.strip()
        self.ssh_config = ssh_config
        m = re.fullmatch(r"ssh://(?:([^@/]+)@)?([^:/]+)(?::(\d+))?/?", self.spec)
        if self.spec.startswith("ssh://") and not m:
            raise EdgekitError(f"target {spec!r} is not ssh://[user@]host[:port]")
        if m:
            self.user, self.host, self.port = m.group(1), m.group(2), m.group(3)
        else:
            if not re.fullmatch(r"[\w.@-]+", self.spec) or self.spec.startswith("-"):
                raise EdgekitError(f"target {spec!r} is neither ssh://[user@]host[:port] nor a Host alias")
            self.user, self.host, self.port = None, self.spec, None

    def ssh_args(self):
        args = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-T"]
        if self.ssh_config:
            args += ["-F", self.ssh_config]
        if self.port:
            args += ["-p", self.port]
        return args + ["--", f"{self.user}@{self.host}" if self.user else self.host]

    def run(self, argv, stdin=None, timeout=RUN_TIMEOUT):
        """Run argv on the device (each argument quoted); returns CompletedProcess (bytes)."""
        command = " ".join(shlex.quote(str(a)) for a in argv)
        try:
            return subprocess.run(self.ssh_args() + [command], input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EdgekitError(f"{self.spec}: no answer within {timeout} s") from None
        except FileNotFoundError:
            raise EdgekitError("the OpenSSH client (ssh) is not installed") from None

    def check(self, argv, what, stdin=None, timeout=RUN_TIMEOUT):
        proc = self.run(argv, stdin, timeout)
        if proc.returncode != 0:
            raise EdgekitError(f"{self.spec}: {what} failed: {describe_ssh_failure(proc)}")
        return proc.stdout.decode("utf-8", "replace")

    def __str__(self):
        return self.spec


def describe_ssh_failure(proc):
    err = proc.stderr.decode("utf-8", "replace").strip()
    lines = [l for l in err.splitlines() if l.strip() and "Warning: Permanently added" not in l]
    last = lines[-1] if lines else f"exit status {proc.returncode}"
    if proc.returncode == 255:
        if "Permission denied" in err or "Too many authentication failures" in err:
            return f"authentication refused ({last})"
        if "Could not resolve" in err or "Connection refused" in err or "timed out" in err or "No route" in err:
            return f"unreachable ({last})"
        return f"connection failed or lost ({last})"
    if proc.returncode == 127 and "python3" in err:
        return "no python3 on the device"
    if "No space left on device" in err:
        return "the device's disk is full"
    return last[:400]


def read_targets(targets, targets_file, ssh_config=None):
    specs = list(targets or [])
    if targets_file:
        try:
            with open(targets_file, encoding="utf-8") as f:
                specs += [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
        except OSError as e:
            raise EdgekitError(f"{targets_file}: cannot read targets ({e.strerror})") from None
    if not specs:
        raise EdgekitError("no targets given")
    return [Target(s, ssh_config) for s in specs]


def install_hint(info):
    py = info.get("python", "?")
    minor = tuple(int(v) for v in py.split(".")[:2]) if py != "?" else (0, 0)
    if info.get("arch") in ("aarch64", "x86_64"):
        return "pip install ai-edge-litert"
    if minor <= (3, 11):
        return "pip install tflite-runtime 'numpy<2'"
    return f"no TFLite runtime publishes wheels for Python {py} on {info.get('arch')}: use Python 3.11 or older " \
           f"with pip install tflite-runtime 'numpy<2'"


def probe(target, install_runtime=False):
    """What the device has: python3, its version, arch, a TFLite runtime, the board model."""
    out = target.check(["python3", "-c", PROBE], "probe", timeout=120)
    try:
        info = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise EdgekitError(f"{target}: probe printed no JSON: {out[:200]!r}") from None
    if info["runtime"] is None:
        hint = install_hint(info)
        if install_runtime and hint.startswith("pip install"):
            pkgs = shlex.split(hint)[2:]
            target.check(["python3", "-m", "pip", "install", "--user", *pkgs], f"`{hint} --user`", timeout=1800)
            return probe(target, install_runtime=False)
        raise EdgekitError(f"{target}: no TFLite runtime for Python {info['python']} on {info['arch']}: {hint} "
                           f"(or pass --install-runtime)")
    return info


def _tar(items):
    """A tar stream holding each (local path, name in archive)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, name in items:
            tar.add(path, arcname=name)
    return buf.getvalue()


class Session:
    """A private temporary folder on the device holding the runner and the files; removed on exit."""

    def __init__(self, target, items, keep_dir=None):
        self.target, self.items, self.keep_dir, self.dir = target, items, keep_dir, None

    def __enter__(self):
        if self.keep_dir:
            self.dir = self.target.check(["python3", "-c", MKDIR, self.keep_dir], "creating the folder").strip()
        else:
            self.dir = self.target.check(["python3", "-c", MKTEMP], "creating a temporary folder").strip()
        try:
            self.target.check(["python3", "-c", UNPACK, self.dir], "upload", stdin=_tar(self.items))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def path(self, name):
        return f"{self.dir}/{name}"

    def __exit__(self, *exc):
        if self.dir and not self.keep_dir:
            try:
                self.target.run(["python3", "-c", REMOVE, self.dir], timeout=120)
            except EdgekitError:
                pass


def runner_file(workdir):
    from edgekit.runner_pack import pack_runner
    return pack_runner(os.path.join(workdir, "device_bench.pyz"), force=True)


def _json_rows(target, proc):
    out = proc.stdout.decode("utf-8", "replace")
    try:
        return json.loads(out)
    except ValueError:
        raise EdgekitError(f"{target}: the runner failed: {describe_ssh_failure(proc)}") from None


def for_each_target(targets, job, progress):
    """Run job(target, say) on every target at once; a failing target becomes {"target", "error"}."""
    lock = threading.Lock()

    def say(target, message):
        with lock:
            progress(f"[{target}] {message}")

    def one(target):
        try:
            return job(target, lambda m: say(target, m))
        except EdgekitError as e:
            say(target, f"error: {e}")
            return [{"target": target.spec, "error": str(e)}]

    with ThreadPoolExecutor(max(1, len(targets))) as pool:
        return [row for rows in pool.map(one, targets) for row in rows]


def _bundle_items(paths):
    items, remote = [], []
    for i, p in enumerate(paths):
        if not os.path.exists(p):
            raise EdgekitError(f"{p}: no such bundle or file")
        name = os.path.basename(os.path.normpath(p))
        arc = f"models/{i}/{name}"
        items.append((p, arc))
        remote.append(arc)
    return items, remote


def _describe(info):
    return (f"{info['arch']}, Python {info['python']}, {info['runtime']['name']} {info['runtime']['version']}"
            + (f", {info['board']}" if info.get("board") else ""))


def run_remote(targets, items, verb, tail, install_runtime=False, progress=print, finish=None):
    """On every target at once: probe, upload the runner and ``items`` to a private folder, run
    `device_bench VERB --json TAIL(session)`, fetch the JSON, remove the folder. Each record gets the
    target and the device's probe; ``finish(records)`` may adjust one target's records."""
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
        pyz = runner_file(tmp)

        def job(target, say):
            say("probing")
            info = probe(target, install_runtime)
            say(f"{_describe(info)}; uploading")
            with Session(target, [(pyz, "device_bench.pyz")] + items) as s:
                say(f"running {verb}")
                out = _json_rows(target, target.run(["python3", s.path("device_bench.pyz"), verb, "--json",
                                                     *tail(s)]))
            records = out if isinstance(out, list) else [out]
            for r in records:
                r["target"], r["device"] = target.spec, info
            if finish:
                finish(records)
            say("done")
            return records

        return for_each_target(targets, job, progress)


def remote_bench(targets, models, bench_args, install_runtime=False, progress=print):
    """device_bench bench on each target; one row per model x configuration x target."""
    items, remote = _bundle_items(models)
    return run_remote(targets, items, "bench", lambda s: [*bench_args, "--", *[s.path(r) for r in remote]],
                      install_runtime, progress)


def remote_classify(targets, model, images, extra_args, install_runtime=False, progress=print):
    """device_bench classify on each target; image paths in the output are the local ones."""
    from device_bench.images import list_images
    items, remote = _bundle_items([model])
    local_images = list_images(images)
    names = [f"images/{i:05d}{os.path.splitext(p)[1]}" for i, p in enumerate(local_images)]
    items += list(zip(local_images, names))

    def local_paths(records):
        for r, local in zip(records, local_images):
            r["image"] = local

    return run_remote(targets, items, "classify",
                      lambda s: [*extra_args, s.path(remote[0]), *[s.path(n) for n in names]],
                      install_runtime, progress, finish=local_paths)


def remote_evaluate(targets, model, dataset, extra_args, compare=None, install_runtime=False, progress=print):
    if not os.path.isdir(dataset):
        raise EdgekitError(f"{dataset}: on a remote target the dataset must be a folder of class folders")
    items, remote = _bundle_items([model] + ([compare] if compare else []))
    items.append((dataset, "dataset"))
    return run_remote(targets, items, "evaluate",
                      lambda s: [*extra_args, s.path(remote[0]), s.path("dataset")]
                      + (["--compare", s.path(remote[1])] if compare else []),
                      install_runtime, progress)


def deploy(targets, bundles, folder, install_runtime=False, progress=print):
    """Leave the runner and the bundles in FOLDER on each target, on purpose."""
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
        pyz = runner_file(tmp)
        items = [(pyz, "device_bench.pyz")]
        for b in bundles:
            if not os.path.exists(b):
                raise EdgekitError(f"{b}: no such bundle or file")
            items.append((b, os.path.basename(os.path.normpath(b))))

        def job(target, say):
            say("probing")
            info = probe(target, install_runtime)
            with Session(target, items, keep_dir=folder) as s:
                say(f"deployed to {s.dir}")
                return [{"target": target.spec, "folder": s.dir, "device": info,
                         "files": [name for _, name in items]}]

        return for_each_target(targets, job, progress)
