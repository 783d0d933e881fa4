"""The steps of a study, shared by the serial path (edgekit.study.run) and the cluster (edgekit.study.cluster):
build a model entry's bundles, benchmark one process on a device, classify and evaluate a bundle."""

import gzip
import os
import resource
import shlex
import time
from dataclasses import replace

from device_bench.errors import EdgekitError, WeightsUnavailable
from device_bench.options import BenchParams, SweepSettings

class StudyRun:
    """The state one study run shares across its models: settings, notes and stage timings."""

    def __init__(self, study, outdir, force, progress):
        self.study, self.outdir, self.force, self.progress = study, outdir, force, progress
        self.bundles = os.path.join(outdir, "bundles")
        self.params = BenchParams(num_runs=study.runs, min_secs=float(study.min_secs)).validate()
        self.sweep = SweepSettings(tuple(study.threads), study.repeat, float(study.cooldown)).validate()
        self.notes, self.stages, self.processes = [], [], []

    def note(self, text):
        """A note for the report (a weights fallback, say), also shown as progress."""
        self.notes.append(text)
        self.progress(f"   {text}")

    def stage(self, model, name, t0, process_peak_rss_mb=None):
        """Record how long a stage took and the memory it reached, for the report's cost table."""
        self.stages.append({"model": model, "stage": name, "seconds": round(time.time() - t0, 2),
                            "host_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                            "process_peak_rss_mb": process_peak_rss_mb})

    def convert(self, m):
        """Bundles for one model entry, falling back to random weights when ImageNet's cannot be had."""
        from edgekit.conversion import convert
        label = m.get("source") or m["name"]
        weights = m.get("weights", self.study.weights) if "name" in m else "none"
        if weights == "imagenet" and not _has_imagenet_weights(m["name"]):
            self.note(f"{label}: Keras publishes no ImageNet weights for it; random weights")
            weights = "none"
        kwargs = dict(alpha=m.get("alpha"), size=m.get("size"), classes=m.get("classes"),
                      preprocessing=m.get("preprocessing"), mean=m.get("mean"), std=m.get("std"),
                      labels=m.get("labels"), calibration=self.study.calibration,
                      calibration_count=self.study.calibration_count, force=self.force, reuse=not self.force,
                      progress=lambda s: self.progress(f"   {s}"))
        try:
            return convert(label, self.study.precisions, self.bundles, weights=weights, **kwargs)
        except WeightsUnavailable as e:
            self.note(f"{label}: ImageNet weights could not be fetched ({e.reason[:120]}); random weights")
            return convert(label, self.study.precisions, self.bundles, weights="none", **kwargs)

    def trained_rows(self, m):
        """A model entry with train/compress steps: train it on the study's dataset, then one set of rows for
        the trained model and one per compressed variant (its name, e.g. 'pruned-75%', after the model's)."""
        from edgekit.training.compress import stage_label
        from edgekit.training.fit import train_model, train_settings
        label, folder = m.get("source") or m["name"], os.path.join(self.outdir, "models")
        os.makedirs(folder, exist_ok=True)
        quiet = lambda s: self.progress(f"   {s}")  # noqa: E731
        path = m.get("source")
        try:
            if "train" in m:
                self.progress(f"== {label}: training on {self.study.dataset}")
                t0 = time.time()
                r = train_model(label, self.study.dataset, os.path.join(folder, f"{_trained_name(m)}.keras"),
                                train_settings(m["train"]), alpha=m.get("alpha"), size=m.get("size"),
                                weights=m.get("weights", self.study.weights), mean=m.get("mean"), std=m.get("std"),
                                preprocessing=m.get("preprocessing"), force=True, progress=quiet)
                self.stage(label, "train", t0)
                path = r.path
                if r.note:
                    self.note(r.note)
        except EdgekitError as e:
            self.progress(f"   error: {e}")
            return [{"model": label, "precision": p, "error": str(e)} for p in self.study.precisions]
        rows = self.model_rows({"source": path})
        for variant in m.get("compress", []):
            rows += self.variant_rows(path, dict(variant), stage_label, quiet)
        return rows

    def variant_rows(self, path, options, stage_label, quiet):
        """Rows of one compressed variant of the model file ``path``."""
        from edgekit.training.compress import COMPRESS_OPTIONS, compress_model
        methods = options.pop("method")
        methods = [methods] if isinstance(methods, str) else list(methods)
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            name = stage_label(methods, options.get("sparsity", 0.75 if "prune" in methods else None),
                               options.get("speedup"), options.get("target_latency_ms"))
        except KeyError:
            name = "+".join(map(str, methods))  # an unknown method: compress names it in the error row
        self.progress(f"== {stem}: compressing ({name})")
        t0 = time.time()
        try:
            named = {k: options.pop(k) for k in COMPRESS_OPTIONS if k in options}
            out = compress_model(path, self.study.dataset,
                                 os.path.join(os.path.dirname(path), f"{stem}-{name.replace('%', '')}.keras"),
                                 methods, options, force=True, progress=quiet, measure_stages=False,
                                 **named).path
        except EdgekitError as e:
            self.progress(f"   error: {e}")
            return [{"model": f"{stem} {name}", "variant": name, "precision": p, "error": str(e)}
                    for p in self.study.precisions]
        self.stage(f"{stem} {name}", "compress", t0)
        rows = self.model_rows({"source": out})
        for row in rows:
            row.update(model=f"{stem} {name}", variant=name)
        return rows

    def model_rows(self, m):
        """The rows of one model entry: one per precision, with its bundle's facts or its error."""
        if "train" in m or "compress" in m:
            return self.trained_rows(m)
        label = m.get("source") or m["name"]
        self.progress(f"== {label}: converting to {', '.join(self.study.precisions)}")
        t0 = time.time()
        try:
            summary = self.convert(m)
        except EdgekitError as e:
            self.progress(f"   error: {e}")
            return [{"model": label, "precision": p, "error": str(e)} for p in self.study.precisions]
        self.stage(label, "build and convert", t0)
        trained = summary.source.get("trained", True)
        command = _convert_command(summary.source, self.study, m, self.bundles)
        rows = []
        for i, b in enumerate(summary.bundles):
            row = {"model": summary.model, "family": summary.source.get("family") or "user model",
                   "precision": b.precision, "bundle": b.path, "trained_weights": trained, "reused_bundle": b.reused,
                   "convert_command": command if i == 0 else None}
            if b.error:
                row["error"] = b.error
            else:
                try:
                    row.update(_bundle_facts(b.path, trained), bench=[])
                except EdgekitError as e:
                    row["error"] = str(e)
            rows.append(row)
        return rows

    def runtime_specs(self):
        """(runtime, api, accelerator) of every runtime the study names ('all': every one installed)."""
        from device_bench.sweep import runtime_specs
        from edgekit.study.config import runtime_entry
        specs = []
        for entry in self.study.runtimes:
            name, api = runtime_entry(entry)
            specs += runtime_specs(replace(self.params, runtime=name, api=api))
        return list(dict.fromkeys(specs))

    def configurations(self, rows):
        """Every bundle x runtime x thread count to benchmark, and the row each belongs to."""
        configs, owners = [], []
        for row in (r for r in rows if "bench" in r):
            for runtime, api, accelerator in self.specs:
                for t in self.sweep.threads:
                    configs.append((row["bundle"], replace(self.params, runtime=runtime, api=api,
                                                           accelerator=accelerator, threads=t)))
                    owners.append(row)
        return configs, owners

    def bench(self, rows):
        """One sweep per device over every bundle x runtime x thread count, interleaved across all of them."""
        from device_bench.sweep import run_configurations
        configs, owners = self.configurations(rows)
        for target in self.study.targets:
            self.progress(f"== benchmarking {len(configs)} configurations x {self.sweep.repeat} process(es)"
                          f"{'' if target == 'local' else ' on ' + target}, interleaved")
            t0 = time.time()

            def one(model, params, target=target):
                started = time.time()
                result = bench_process(target, self.study.ssh_config, model, params)
                self.processes.append(process_record(target, model, params, started))
                return result
            results = run_configurations(configs, self.sweep, progress=lambda s: self.progress(f"   {s}"), run_one=one)
            self.add_bench(target, owners, results, t0)

    def add_bench(self, target, owners, results, t0):
        """Put one device's combined results in their rows (with the target, when not this machine)."""
        peak = max((r.peak_rss_mb or 0 for r in results), default=None)
        self.stage("all models", f"bench ({len(results)} configurations x {self.sweep.repeat})"
                   + ("" if target == "local" else f" on {target}"), t0, peak)
        for row, result in zip(owners, results):
            row["bench"].append(result.summary() if target == "local" else  # a board's own CPU, Python, runtime
                                dict(result.summary(), target=target, environment=result.environment))

    def accuracy(self, row):
        """Predictions on the classify folder (in the first runtime) and top-1/top-5 on the evaluate folder in
        every runtime the bundle was measured in, when given."""
        from device_bench import api
        name = f"{row['model']} {row['precision']}"
        measured = [b["runtime"] for b in row["bench"] if b.get("latency_ms")]
        runtimes = list({(r["name"], r["api"], r["accelerator"]): r for r in measured}.values())
        if self.study.classify and runtimes:
            self.progress(f"   {name}: classifying {self.study.classify}")
            t0 = time.time()
            preds = api.classify(row["bundle"], [self.study.classify], **_runtime_kwargs(runtimes[0]))
            self.stage(name, "classify", t0)
            row["predictions"] = [{"image": os.path.basename(p.image), "top": (p.predictions or [])[:3],
                                   "error": p.error} for p in preds]
        if self.study.evaluate and runtimes:
            row["accuracy"] = []
            for runtime in runtimes:
                self.progress(f"   {name}: evaluating on {self.study.evaluate} in {runtime['name']} {runtime['api']}")
                t0 = time.time()
                ev = api.evaluate(row["bundle"], self.study.evaluate, **_runtime_kwargs(runtime))
                self.stage(name, f"evaluate ({runtime['name']} {runtime['api']})", t0)
                row["accuracy"].append({"runtime": runtime, "top1": ev.top1, "top5": ev.top5, "count": ev.count})
            row.update(top1=row["accuracy"][0]["top1"], top5=row["accuracy"][0]["top5"], eval_count=ev.count)


def bench_process(target, ssh_config, model, params):
    """One benchmark process of ``model`` on the device ``target``: a fresh process here ('local') or
    device_bench on a board over SSH; a failure is an error row."""
    from device_bench.sweep import error_row, run_isolated
    if target == "local":
        return run_isolated(model, params)
    from edgekit.targets import open_target
    from edgekit.targets.jobs import bench_process_on
    try:
        return bench_process_on(open_target(target, ssh_config), model, params)
    except EdgekitError as e:
        return error_row(model, params, str(e))


def process_record(target, model, params, started):
    """When one benchmark process ran on which device: the proof that a device ran one at a time."""
    return {"device": target, "bundle": os.path.basename(os.path.normpath(str(model))), "runtime": params.runtime,
            "threads": params.threads, "start": started, "end": time.time()}


def _runtime_kwargs(runtime):
    return {"runtime": runtime["name"], "api": runtime["api"], "accelerator": runtime["accelerator"]}


def needs_accuracy(row):
    """A row with a bundle of trained weights (a random network's predictions would measure nothing)."""
    return "bench" in row and row["trained_weights"]


def add_agreement(rows):
    """Each model's builds' top-1 agreement with its fp32 build."""
    for model in dict.fromkeys(r["model"] for r in rows):
        _add_fp32_agreement([r for r in rows if r["model"] == model])


def _bundle_facts(bundle, trained):
    """What a bundle's manifest says of it (parameters, MACs, size, fidelity), and its gzip size."""
    from device_bench.manifest import read_bundle
    ref = read_bundle(bundle)
    with open(ref.tflite_path, "rb") as f:
        gzip_size = len(gzip.compress(f.read(), 9))
    manifest = ref.manifest
    return {"params": manifest.get("params"), "macs": manifest.get("macs"), "file_size": manifest["file_size"],
            "gzip_size": gzip_size, "fidelity": manifest.get("fidelity") if trained else None}


def _add_fp32_agreement(rows):
    """Top-1 agreement of each build's predictions with the fp32 build's, whatever the precision order."""
    def top1(row):
        return {p["image"]: p["top"][0]["index"] for p in row.get("predictions") or [] if p["top"]}
    base = next((top1(r) for r in rows if r["precision"] == "fp32" and r.get("predictions")), None)
    for r in rows:
        if base and r["precision"] != "fp32" and r.get("predictions"):
            mine = top1(r)
            r["agreement_fp32"] = sum(mine.get(k) == v for k, v in base.items()) / len(base)


def _trained_name(m):
    """The file name of a study's trained model: the zoo name with width and size, or the file's stem."""
    if "source" in m:
        return os.path.splitext(os.path.basename(m["source"]))[0] + "_trained"
    from edgekit.zoo import resolve_args
    spec, alpha, size, _, _ = resolve_args(m["name"], m.get("alpha"), m.get("size"), None, "none")
    return spec.variant_name(alpha, size)


def _has_imagenet_weights(name):
    from edgekit.zoo import get_spec
    try:
        return get_spec(name).has_imagenet_weights
    except EdgekitError:
        return True  # an unknown name fails, with its own message, in the conversion


def _convert_command(source, study, m, outdir):
    """The `edgekit convert` line that makes these bundles again."""
    if source["kind"] == "zoo":
        args = [source["model"], "--alpha", f"{source['alpha']:g}", "--size", str(source["size"]),
                "--classes", str(source["classes"]), "--weights", source["weights"]]
    elif m.get("preprocessing") or m.get("mean"):
        args = [source["path"]] + (["--preprocessing", m["preprocessing"]] if m.get("preprocessing") else
                                   ["--mean", ",".join(map(str, m.get("mean", []))), "--std",
                                    ",".join(map(str, m.get("std", [])))])
    else:  # a model file that carries its own preprocessing (from edgekit train or compress)
        args = [source["path"]]
    for p in study.precisions:
        args += ["-p", p]
    if study.calibration:
        args += ["--calibration", study.calibration]
    if m.get("labels"):
        args += ["--labels", m["labels"]]
    return shlex.join(["edgekit", "convert", *args, "-o", outdir])
