"""Running device_bench on many targets at once: probe, upload the runner and files, run, fetch the
JSON records, clean up. A failing target becomes an error row; the others go on."""

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from device_bench.errors import EdgekitError
from dataclasses import replace

from device_bench.options import PREDICT_OPTIONS, BenchParams, params_to_argv


def runner_file(workdir):
    """device_bench.pyz, packed fresh into ``workdir`` for upload."""
    from edgekit.targets.runner_pack import pack_runner
    return pack_runner(os.path.join(workdir, "device_bench.pyz"), force=True)


def for_each_target(targets, job, progress):
    """Run job(target, say, cancel) on every target at once; a failing target becomes {"target", "error"}.
    Python sees Ctrl-C in the main thread only, so there it sets ``cancel`` (a threading.Event): each job stops
    before its next step and cleans up at once, and this waits for them to finish doing so."""
    lock = threading.Lock()
    cancel = threading.Event()

    def say(target, message):
        with lock:
            progress(f"[{target}] {message}")

    def one(target):
        try:
            return job(target, lambda m: say(target, m), cancel)
        except EdgekitError as e:
            say(target, f"error: {e}")
            return [{"target": target.spec, "error": str(e)}]

    with ThreadPoolExecutor(max(1, len(targets))) as pool:
        futures = [pool.submit(one, t) for t in targets]
        try:
            while wait(futures, timeout=0.05).not_done:
                pass  # awake now and then: a signal the OS gave another thread is handled only when this one runs
            return [row for f in futures for row in f.result()]
        except KeyboardInterrupt:  # here, or a job's own (adb killed by the same Ctrl-C)
            cancel.set()
            raise  # leaving `with` waits for the jobs' clean-up


def _items(paths):
    """(local path, name on the device) for each bundle or file, in numbered folders (names may clash)."""
    items = []
    for i, p in enumerate(paths):
        p = os.fspath(p)
        if not os.path.exists(p):
            raise EdgekitError(f"{p}: no such bundle or file")
        items.append((p, f"models/{i}/{os.path.basename(os.path.normpath(p))}"))
    return items


def _describe(info):
    return (f"{info['arch']}, Python {info['python']}, {info['runtime']['name']} {info['runtime']['version']}"
            + (f", {info['board']}" if info.get("board") else ""))


def run_on_targets(targets, items, verb, tail, install_runtime=False, progress=print, finish=None, native=None):
    """`device_bench VERB --json TAIL(folder)` on every target; each record gets the target and probe. A target
    with a ``native_runner`` of its own (a phone's benchmark_model) runs ``native(target, say, cancel)`` instead."""
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
        pyz = runner_file(tmp)

        def job(target, say, cancel):
            if getattr(target, "native_runner", None):
                if native is None:
                    raise EdgekitError(f"{target}: only `edgekit bench` runs on this device ({target.native_runner})")
                return native(target, say, cancel)
            say("probing")
            info = target.probe(install_runtime)
            say(f"{_describe(info)}; uploading")
            folder = target.upload([(pyz, "device_bench.pyz")] + items)
            try:
                say(f"running {verb}")
                records = target.fetch(target.run(["python3", f"{folder}/device_bench.pyz", verb, "--json",
                                                   *tail(folder)]))
            finally:
                target.cleanup(folder)
            for r in records:
                r["target"], r["device"] = target.spec, info
            if finish:
                finish(records)
            say("done")
            return records

        return for_each_target(targets, job, progress)


def bench_on_targets(targets, models, params, sweep, install_runtime=False, progress=print):
    """device_bench bench with ``params`` and ``sweep`` (SweepSettings) on each target; one row per model x
    configuration x target."""
    from edgekit.targets.adb_bench import bench_on_phone
    items = _items(models)
    argv = params_to_argv(params, sweep)
    return run_on_targets(targets, items, "bench", lambda d: [*argv, "--", *[f"{d}/{n}" for _, n in items]],
                          install_runtime, progress,
                          native=lambda target, say, cancel: bench_on_phone(target, [p for p, _ in items], params, sweep,
                                                                            say, cancel))


def _model_argv(labels=None, mean=None, std=None, **open_options):
    """device_bench's flags for how to read the model (labels must travel inside the bundle)."""
    if labels:
        raise EdgekitError("--labels with --target: put the labels in the bundle (edgekit convert --labels)")
    argv = params_to_argv(replace(BenchParams(), **open_options), only=PREDICT_OPTIONS)
    for flag, value in (("--mean", mean), ("--std", std)):
        if value is not None:
            argv += [flag, ",".join(map(str, value))]
    return argv


def classify_on_targets(targets, model, images, top_k=None, install_runtime=False, progress=print, **model_opts):
    """device_bench classify on each target; image paths in the records are the local ones."""
    from device_bench.images import list_images
    items = _items([model])
    local_images = list_images(images)
    names = [f"images/{i:05d}{os.path.splitext(p)[1]}" for i, p in enumerate(local_images)]
    argv = _model_argv(**model_opts) + (["--top-k", str(top_k)] if top_k is not None else [])

    def local_paths(records):
        for r, local in zip(records, local_images):
            r["image"] = local

    return run_on_targets(targets, items + list(zip(local_images, names)), "classify",
                          lambda d: [*argv, f"{d}/{items[0][1]}", *[f"{d}/{n}" for n in names]],
                          install_runtime, progress, finish=local_paths)


def evaluate_on_targets(targets, model, dataset, compare=None, install_runtime=False, progress=print, **model_opts):
    """device_bench evaluate on each target, with the class folders uploaded beside the bundles."""
    if not os.path.isdir(dataset):
        raise EdgekitError(f"{dataset}: on a remote target the dataset must be a folder of class folders")
    items = _items([model] + ([compare] if compare is not None else []))
    argv = _model_argv(**model_opts)
    return run_on_targets(targets, items + [(os.fspath(dataset), "dataset")], "evaluate",
                          lambda d: [*argv, f"{d}/{items[0][1]}", f"{d}/dataset"]
                          + (["--compare", f"{d}/{items[1][1]}"] if compare is not None else []),
                          install_runtime, progress)


def deploy(targets, bundles, folder, install_runtime=False, progress=print):
    """Leave the runner and the bundles in FOLDER on each target, on purpose."""
    with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
        items = [(runner_file(tmp), "device_bench.pyz")]
        for b in bundles:
            if not os.path.exists(b):
                raise EdgekitError(f"{b}: no such bundle or file")
            items.append((b, os.path.basename(os.path.normpath(b))))

        def job(target, say, cancel):
            say("probing")
            info = target.probe(install_runtime)
            where = target.upload(items, keep_dir=folder)
            say(f"deployed to {where}")
            return [{"target": target.spec, "folder": where, "device": info, "files": [name for _, name in items]}]

        return for_each_target(targets, job, progress)


_RUNNER = {}


def bench_process_on(target, model, params):
    """One benchmark process of the bundle ``model`` on an SSH ``target`` (a study's device): upload the runner
    and the bundle, run device_bench once, fetch its record, clean up. Returns a BenchResult with the local path."""
    from device_bench.records import BenchResult
    if "pyz" not in _RUNNER:  # packed once per process: every benchmark process uploads the same file
        _RUNNER["pyz"] = runner_file(tempfile.mkdtemp(prefix="edgekit-runner-"))
    (path, name), = _items([model])
    folder = target.upload([(_RUNNER["pyz"], "device_bench.pyz"), (path, name)])
    try:
        records = target.fetch(target.run(["python3", f"{folder}/device_bench.pyz", "bench", "--in-process", "--json",
                                           *params_to_argv(params), "--", f"{folder}/{name}"]))
    finally:
        target.cleanup(folder)
    record = dict(records[0], path=os.path.abspath(path))
    if "error" in record:
        record["error"] = f"{target.spec}: {record['error']}"
    return BenchResult.from_dict(record)
