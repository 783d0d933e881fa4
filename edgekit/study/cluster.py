"""A study on a Dask cluster (`edgekit run --cluster`): the serial path's own steps, submitted as tasks.

Three stages, each a set of tasks, one after the other (a conversion must not share a machine with a benchmark
it would slow down):
- builds: one task per model entry (its train, compress and convert steps: `StudyRun.model_rows`), on workers
  holding the resource ``convert``. They write into the study's output folder, which build workers share with
  this machine (the same machine, or the same path over NFS); each bundle's sha256 is checked here on arrival.
- benchmarks: one task per bundle x configuration x device x process (`--repeat`), holding the device's lease,
  a worker resource named after the target (`dask worker --resources "pi5-a=1"`): one benchmark process at a
  time per device. Priorities keep the serial path's interleaved order per device. Bundles travel to these
  workers as bytes with their sha256, checked on arrival: a Pi shares no folder with the workstation.
- evaluation: one task per trained bundle, on the ``convert`` workers (they have the runtime and the study's
  data folders).
A worker that dies mid-task has its task run again on another holder of the resource (Dask's retries); the
report notes it.
"""

import hashlib
from concurrent.futures import CancelledError
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import replace

from device_bench.errors import EdgekitError
from edgekit.study.config import parse_address

BUILD = "convert"  # the resource of a worker with the [convert] stack
RETRIES = 2
CONNECT_SECONDS = 10
STALL_SECONDS = 30  # how long a task may wait for a resource no worker holds any more
INSTALL = "--cluster needs Dask: pip install 'edgekit-tflite[cluster]'"


def run_on_cluster(run, address):
    """The rows of ``run`` (a StudyRun), its steps run on the Dask cluster at ``address``."""
    client, cluster = _connect(address, run.progress)
    try:
        with client.as_current():
            return _Stages(run, client, address).rows()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _connect(address, progress):
    try:
        import distributed
    except ImportError:
        raise EdgekitError(INSTALL) from None
    import logging
    kind, n = parse_address(address)
    cluster = None
    if kind == "local":
        workers = {f"edgekit-{i}": {"cls": distributed.Nanny, "options": {
            "nthreads": 1, "resources": {BUILD: 1, **({"local": 1} if i == 0 else {})}, "dashboard": False,
            "silence_logs": logging.ERROR}} for i in range(n)}
        cluster = distributed.SpecCluster(workers=workers, silence_logs=logging.ERROR, scheduler={
            "cls": distributed.Scheduler, "options": {"dashboard_address": ":0" if _has_bokeh() else None}})
        kind = cluster
    try:
        client = distributed.Client(kind, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        raise EdgekitError(f"cannot reach the Dask scheduler at {address} within {CONNECT_SECONDS} s "
                           f"({str(e).splitlines()[0][:160]})") from None
    info = client.scheduler_info()
    if "dashboard" in info.get("services", {}):
        progress(f"== Dask dashboard: {client.dashboard_link}")
    _check_versions(client, address)
    return client, cluster


def _has_bokeh():
    import importlib.util
    return importlib.util.find_spec("bokeh") is not None


def worker_version():
    """This worker's edgekit version (run on every worker before any task)."""
    from device_bench import __version__
    return __version__


def _check_versions(client, address):
    from device_bench import __version__
    try:
        versions = client.run(worker_version)
    except Exception as e:  # a worker without edgekit cannot even unpickle the question
        raise EdgekitError(f"a worker of {address} cannot run edgekit ({str(e).splitlines()[0][:200]})") from None
    for worker, version in sorted(versions.items()):
        if version != __version__:
            raise EdgekitError(f"worker {worker} runs edgekit {version}, this machine {__version__}: "
                               f"install the same version on every worker")


def bundle_payload(path):
    """A bundle as it travels to a device's worker: its files' bytes and sha256, its name and local path."""
    files = {}
    for root, _, names in os.walk(path):
        for name in sorted(names):
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                files[os.path.relpath(full, path)] = f.read()
    return {"name": os.path.basename(os.path.normpath(path)), "path": path, "files": files,
            "sha256": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}


def materialize(bundle):
    """The bundle on this worker's disk (a cache by content), each file's sha256 checked on arrival."""
    for rel, data in bundle["files"].items():
        if hashlib.sha256(data).hexdigest() != bundle["sha256"][rel]:
            raise EdgekitError(f"{bundle['name']}/{rel}: arrived damaged (sha256 differs)")
    key = hashlib.sha256("".join(sorted(bundle["sha256"].values())).encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), "edgekit-cluster", key, bundle["name"])
    if not os.path.isdir(folder):
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=os.path.dirname(folder))
        for rel, data in bundle["files"].items():
            os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
            with open(os.path.join(tmp, rel), "wb") as f:
                f.write(data)
        try:
            os.rename(tmp, folder)
        except OSError:  # another task of this worker's machine put it there first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def build_task(study, outdir, force, model):
    """Train, compress and convert one model entry on a build worker: the serial path's own model_rows."""
    from edgekit.study.steps import StudyRun
    lines = []
    run = StudyRun(study, outdir, force, lines.append)
    rows = run.model_rows(model)
    sha = {r["bundle"]: bundle_sha256(r["bundle"]) for r in rows if r.get("bundle") and "bench" in r}
    return {"rows": rows, "stages": run.stages, "notes": run.notes, "log": lines, "sha256": sha}


def bundle_sha256(path):
    """sha256 of each file of a bundle folder."""
    return bundle_payload(path)["sha256"]


def bench_task(bundle, target, ssh_config, params, cooldown, previous=None, after=None):
    """One benchmark process of one configuration on one device, run by the worker holding its lease.
    ``previous``: the same configuration's last process; ``after``: the device's last process (so a device runs
    its processes in the serial path's interleaved order)."""
    from edgekit.study.steps import bench_process, process_record
    if previous is not None and (previous[0].error or previous[0].unavailable):
        return previous[0], None  # a failed or absent configuration fails again: do not repeat it
    path = materialize(bundle)
    if cooldown:
        time.sleep(cooldown)
    started = time.time()
    result = bench_process(target, ssh_config, path, params)
    record = dict(process_record(target, path, params, started), worker=_worker_address())
    return replace(result, path=bundle["path"]), record


def accuracy_task(study, row, bundle):
    """Classify and evaluate one bundle on a worker with the runtime: the serial path's own accuracy step."""
    from edgekit.study.steps import StudyRun
    lines = []
    run = StudyRun(study, "", False, lines.append)
    row = dict(row, bundle=materialize(bundle))
    try:
        run.accuracy(row)
    except EdgekitError as e:
        row["error"] = str(e)
    return dict(row, bundle=bundle["path"]), run.stages


def _worker_address():
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return None


def _attempts(dask_scheduler, key):
    """How often a task ran again: after its worker died (suspicious) or after an error (retries used)."""
    ts = dask_scheduler.tasks.get(key)
    return {"died": ts.suspicious, "retries": RETRIES - ts.retries} if ts is not None else {}


class SchedulerGone(Exception):
    pass


class _Stages:
    """The three stages on one client; finished work is kept if the scheduler goes away."""

    def __init__(self, run, client, address):
        self.run, self.client, self.address = run, client, address
        self.done, self.total = 0, 0

    def submit(self, fn, *args, resource, priority=0, label, **kwargs):
        self.total += 1
        key = "-".join([fn.__name__, re.sub(r"[^\w.-]+", "_", label), uuid.uuid4().hex[:8]])  # readable on the dashboard
        future = self.client.submit(fn, *args, resources={resource: 1}, retries=RETRIES, priority=priority,
                                    key=key, **kwargs)
        future.edgekit = (label, resource)
        return future

    def require(self, resource, what):
        """Refuse to start tasks no worker could take: name the device and the resource."""
        held = {r for w in self.client.scheduler_info(n_workers=-1)["workers"].values() for r in w.get("resources", {})}
        if resource not in held:
            raise EdgekitError(f"no worker of {self.address} holds the resource {resource!r} that {what} needs: "
                               f"start one with `dask worker {self.address} --nthreads 1 --resources \"{resource}=1\"`")

    def wait(self, futures):
        """Yield (future, result or exception) as each finishes, one progress line each; raises SchedulerGone."""
        pending, stalled = set(futures), {}
        import distributed
        while pending:
            try:
                done, pending = distributed.wait(pending, timeout=2, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            except (OSError, CancelledError) as e:
                raise SchedulerGone(str(e)) from None
            if self.client.status not in ("running", "connecting", "newly-created"):
                raise SchedulerGone(self.client.status)
            for f in done:
                yield f, self.finish(f)
            if not done:
                self.check_stalled(pending, stalled)

    def finish(self, f):
        label, resource = f.edgekit
        self.done += 1
        try:
            value = f.result()
        except Exception as e:  # noqa: BLE001 - a task's error (KilledWorker after the retries) becomes its row's
            if self.client.status != "running" or isinstance(e, CancelledError):
                raise SchedulerGone(str(e)) from None
            value = EdgekitError(f"{label}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
        try:
            attempts = self.client.run_on_scheduler(_attempts, key=f.key)
        except Exception:  # noqa: BLE001 - the count is a note; the result is what matters
            attempts = {}
        f.again = again = attempts.get("died", 0) + attempts.get("retries", 0)
        if again:
            self.run.note(f"{label}: ran {again} more time(s) on another worker after its worker died or failed")
        status = "error" if isinstance(value, Exception) else "done"
        self.run.progress(f"[{self.done}/{self.total}] {status}: {label}" + (f" (retried {again}x)" if again else ""))
        return value

    def check_stalled(self, pending, stalled):
        """A task whose resource no worker holds any more (its only holder died) would wait forever: fail it."""
        try:
            held = {r for w in self.client.scheduler_info(n_workers=-1)["workers"].values()
                    for r in w.get("resources", {})}
        except (OSError, TimeoutError, CancelledError) as e:
            raise SchedulerGone(str(e)) from None
        now = time.time()
        for f in list(pending):
            resource = f.edgekit[1]
            if resource in held:
                stalled.pop(f.key, None)
            elif now - stalled.setdefault(f.key, now) > STALL_SECONDS:
                raise EdgekitError(f"no worker of {self.address} holds the resource {resource!r} any more "
                                   f"({f.edgekit[0]} waits for it)")

    def rows(self):
        run = self.run
        rows_of = {}
        try:
            self.require(BUILD, "the builds (train, compress, convert)")
            for target in run.study.targets:
                self.require(target, f"benchmarks on device {target}")
            self.build(rows_of)
            rows = [r for i in range(len(run.study.models)) for r in rows_of[i]]
            self.bench(rows)
            self.accuracy(rows)
        except SchedulerGone as e:
            run.note(f"the Dask scheduler at {self.address} went away mid-study ({str(e)[:120]}); "
                     f"the rows finished before are kept")
            rows = self.unfinished(rows_of)
        except KeyboardInterrupt:
            self.client.cancel(list(self.futures))
            raise
        from edgekit.study.steps import add_agreement
        add_agreement(rows)
        return rows

    futures = ()

    def unfinished(self, rows_of):
        """The rows so far; models not built and measurements not made become error rows."""
        rows = []
        gone = f"the Dask scheduler at {self.address} went away before this was done"
        for i, m in enumerate(self.run.study.models):
            rows += rows_of.get(i) or [{"model": m.get("source") or m["name"], "precision": p, "error": gone}
                                        for p in self.run.study.precisions]
        for r in rows:
            if "bench" in r and not r["bench"] and not r.get("error"):
                r["error"] = gone
        return rows

    def build(self, rows_of):
        run = self.run
        t0 = time.time()
        futures = {}
        for i, m in enumerate(run.study.models):
            label = f"build {m.get('source') or m['name']}"
            futures[self.submit(build_task, run.study, run.outdir, run.force, m, resource=BUILD, label=label)] = i
        self.futures = list(futures)
        for f, value in self.wait(futures):
            i, m = futures[f], run.study.models[futures[f]]
            if isinstance(value, Exception):
                rows_of[i] = [{"model": m.get("source") or m["name"], "precision": p, "error": str(value)}
                              for p in run.study.precisions]
                continue
            run.stages += value["stages"]
            for note in value["notes"]:
                run.note(note)
            for line in value["log"]:
                if "error:" in line:
                    run.progress(line)
            rows_of[i] = value["rows"]
            for r in value["rows"] if f.again else ():
                r["retried"] = f.again  # its build ran again after a worker died
            for r in value["rows"]:  # the bundle the worker wrote, as it arrived here
                if r.get("bundle") in value["sha256"] and bundle_sha256(r["bundle"]) != value["sha256"][r["bundle"]]:
                    r.pop("bench", None)
                    r["error"] = (f"{r['bundle']}: the build worker's bundle differs here (sha256): build workers "
                                  f"must share the output folder {run.outdir}")
        run.stage("all models", f"builds on the cluster ({len(futures)} tasks)", t0)

    def bench(self, rows):
        from device_bench.sweep import combine_runs, interleaved_order
        run = self.run
        run.specs = run.runtime_specs()
        configs, owners = run.configurations(rows)
        payloads = {}
        for bundle, _ in configs:
            if bundle not in payloads:
                payloads[bundle] = self.client.scatter([bundle_payload(bundle)], hash=False)[0]
        t0, futures = time.time(), {}
        order = interleaved_order(len(configs), run.sweep)
        for target in run.study.targets:
            previous, last = {}, None
            for n, (round_, i) in enumerate(order):
                bundle, params = configs[i]
                label = (f"bench {os.path.basename(bundle)} on {target}, {params.runtime or 'default'} "
                         f"{params.threads} thread(s), process {round_ + 1} of {run.sweep.repeat}")
                f = self.submit(bench_task, payloads[bundle], target, run.study.ssh_config, params,
                                run.sweep.cooldown if n else 0.0, previous.get(i), last, resource=target,
                                priority=len(order) - n, label=label)
                previous[i] = last = f
                futures[f] = (target, i)
        self.futures = list(futures) + list(payloads.values())
        runs = {(t, i): [] for t in run.study.targets for i in range(len(configs))}
        for f, value in self.wait(futures):
            target, i = futures[f]
            if isinstance(value, Exception):
                from device_bench.sweep import error_row
                runs[(target, i)].append(error_row(*configs[i], str(value)))
                continue
            result, record = value
            if record is not None and f.again:
                record["retried"] = f.again
            if record is not None:
                run.processes.append(record)
                runs[(target, i)].append(result)
        run.processes.sort(key=lambda p: p["start"])
        for target in run.study.targets:  # a configuration's processes finish in order: each waits for the last
            run.add_bench(target, owners, combine_runs([runs[(target, i)] for i in range(len(configs))], run.sweep), t0)

    def accuracy(self, rows):
        from edgekit.study.steps import needs_accuracy
        run = self.run
        futures = {}
        for n, row in enumerate(rows):
            if needs_accuracy(row):
                payload = self.client.scatter([bundle_payload(row["bundle"])], hash=False)[0]
                futures[self.submit(accuracy_task, run.study, row, payload, resource=BUILD,
                                    label=f"evaluate {row['model']} {row['precision']}")] = n
        self.futures = list(futures)
        for f, value in self.wait(futures):
            n = futures[f]
            if isinstance(value, Exception):
                rows[n]["error"] = str(value)
                continue
            row, stages = value
            rows[n].update(row)
            run.stages += stages
