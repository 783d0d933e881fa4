"""The main job: convert, benchmark, classify and evaluate a set of models, then write the report.

`edgekit demo` is `edgekit run` on the built-in config below. Each model and precision that fails
becomes a row with its error; the rest of the run goes on.
"""

import os
import sys
import time
from dataclasses import replace

from device_bench.errors import EdgekitError
from edgekit.convert_cmd import SAMPLE_IMAGES

DEMO_CONFIG = {
    "models": [
        {"name": "squeezenet1_1", "size": 224},
        {"name": "mobilenet_v1", "alpha": 1.0, "size": 224},
        {"name": "mobilenet_v2", "alpha": 1.0, "size": 224},
    ],
    "precisions": ["fp32", "fp16", "dynamic", "int8"],
    "weights": "imagenet",
    "threads": [1],
    "runs": 50,
    "calibration": str(SAMPLE_IMAGES),
    "classify": str(SAMPLE_IMAGES),
}

_KEYS = {"models", "precisions", "weights", "threads", "runs", "min_secs", "calibration", "calibration_count",
         "classify", "evaluate", "output"}
_MODEL_KEYS = {"name", "source", "alpha", "size", "classes", "weights", "preprocessing", "mean", "std", "labels"}


def load_config(path):
    """Read and check a TOML config; paths in it are relative to the file."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            cfg = tomllib.load(f)
    except OSError as e:
        raise EdgekitError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise EdgekitError(f"{path}: not valid TOML ({e})") from None
    unknown = set(cfg) - _KEYS
    if unknown:
        raise EdgekitError(f"{path}: unknown setting {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
    if not cfg.get("models"):
        raise EdgekitError(f"{path}: no [[models]] given")
    base = os.path.dirname(os.path.abspath(path))
    for i, m in enumerate(cfg["models"]):
        bad = set(m) - _MODEL_KEYS
        if bad or not ("name" in m or "source" in m):
            raise EdgekitError(f"{path}: models[{i}] needs 'name' (zoo) or 'source' (a model file)"
                               + (f"; unknown keys {', '.join(sorted(bad))}" if bad else ""))
        for key in ("source", "labels"):
            if key in m:
                m[key] = os.path.join(base, m[key])
    for key in ("calibration", "classify", "evaluate", "output"):
        if key in cfg:
            cfg[key] = os.path.join(base, cfg[key])
    return cfg


def _has_imagenet_weights(name):
    from edgekit.models import get_spec
    try:
        return get_spec(name).has_imagenet_weights
    except EdgekitError:
        return True  # an unknown name fails, with its own message, in the conversion


def _model_label(m):
    return m.get("source") or m["name"]


def run_study(cfg, outdir, force=False, progress=print):
    """Run everything the config asks for; write report.md, results.json/csv and tradeoff.png."""
    from device_bench.bench import BenchParams, run_isolated
    from device_bench.environment import collect
    from device_bench.runtime import resolve_runtime
    from edgekit.convert_cmd import run_convert
    from edgekit.report import write_report

    outdir = os.path.abspath(outdir)
    os.makedirs(os.path.join(outdir, "bundles"), exist_ok=True)
    precisions = cfg.get("precisions", ["fp32", "fp16", "dynamic", "int8"])
    threads = cfg.get("threads", [1])
    params = BenchParams(num_runs=int(cfg.get("runs", 50)), min_secs=float(cfg.get("min_secs", 1.0))).validate()
    env = collect(resolve_runtime())
    rows, notes, started = [], [], time.time()
    stages = []

    def stage(model, name, t0, process_peak_rss_mb=None):
        import resource
        stages.append({"model": model, "stage": name, "seconds": round(time.time() - t0, 2),
                       "host_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                       "process_peak_rss_mb": process_peak_rss_mb})
    for m in cfg["models"]:
        label = _model_label(m)
        progress(f"== {label}: converting to {', '.join(precisions)}")
        summary, weights_used = None, m.get("weights", cfg.get("weights", "none"))
        kwargs = dict(alpha=m.get("alpha"), size=m.get("size"), classes=m.get("classes"),
                      preprocessing=m.get("preprocessing"), mean=m.get("mean"), std=m.get("std"),
                      labels=m.get("labels"), calibration=cfg.get("calibration"),
                      calibration_count=int(cfg.get("calibration_count", 200)),
                      force=force, reuse=not force, progress=lambda s: progress(f"   {s}"))
        if "name" not in m:
            weights_used = "none"
        elif weights_used == "imagenet" and not _has_imagenet_weights(m["name"]):
            notes.append(f"{label}: Keras publishes no ImageNet weights for it; random weights")
            progress(f"   {notes[-1]}")
            weights_used = "none"
        t0 = time.time()
        try:
            try:
                summary = run_convert(label, precisions, os.path.join(outdir, "bundles"), weights=weights_used,
                                      **kwargs)
            except EdgekitError as e:
                if weights_used != "imagenet" or "could not fetch ImageNet weights" not in str(e):
                    raise
                reason = str(e).split("through Keras: ", 1)[-1].split("; download them")[0].split(" -- ")[-1]
                notes.append(f"{label}: ImageNet weights could not be fetched ({reason[:120]}); random weights")
                progress(f"   {notes[-1]}")
                summary = run_convert(label, precisions, os.path.join(outdir, "bundles"), weights="none", **kwargs)
        except EdgekitError as e:
            progress(f"   error: {e}")
            rows += [{"model": label, "precision": p, "error": str(e)} for p in precisions]
            continue
        stage(label, "build and convert", t0)
        trained = summary["source"].get("trained", True)
        command = _convert_command(summary["source"], precisions, os.path.join(outdir, "bundles"), cfg, m)
        fp32_top1 = {}
        for b in summary["bundles"]:
            row = {"model": summary["model"], "family": summary["source"].get("family") or "user model",
                   "precision": b["precision"], "bundle": b["bundle"], "trained_weights": trained,
                   "reused_bundle": b.get("reused", False), "convert_command": command if b is summary["bundles"][0]
                   else None}
            if "error" in b:
                rows.append(dict(row, error=b["error"]))
                continue
            try:
                row.update(_measure(b["bundle"], row, params, threads, cfg, trained, fp32_top1, progress,
                                    run_isolated, stage))
            except EdgekitError as e:
                row["error"] = str(e)
                progress(f"   error: {e}")
            rows.append(row)
    meta = {"config": cfg, "seconds": round(time.time() - started, 1), "notes": notes, "stages": stages,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))}
    results = {"format": 1, "environment": env, "meta": meta, "rows": rows}
    write_report(results, outdir, progress=progress)
    return results


def _convert_command(source, precisions, outdir, cfg, m):
    """The `edgekit convert` line that makes these bundles again."""
    import shlex
    if source["kind"] == "zoo":
        args = [source["model"], "--alpha", f"{source['alpha']:g}", "--size", str(source["size"]),
                "--classes", str(source["classes"]), "--weights", source["weights"]]
    else:
        args = [source["path"]] + (["--preprocessing", m["preprocessing"]] if m.get("preprocessing") else
                                   ["--mean", ",".join(map(str, m.get("mean", []))), "--std",
                                    ",".join(map(str, m.get("std", [])))])
    for p in precisions:
        args += ["-p", p]
    if cfg.get("calibration"):
        args += ["--calibration", cfg["calibration"]]
    if m.get("labels"):
        args += ["--labels", m["labels"]]
    return shlex.join(["edgekit", "convert", *args, "-o", outdir])


def _measure(bundle, row, params, threads, cfg, trained, fp32_top1, progress, run_isolated, stage):
    """Manifest facts, a benchmark per thread count, classification and accuracy for one bundle."""
    import json
    from device_bench.classify import classify, evaluate, open_predictor

    with open(os.path.join(bundle, "edgekit.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    out = {"params": manifest.get("params"), "macs": manifest.get("macs"), "file_size": manifest["file_size"],
           "fidelity": manifest.get("fidelity") if trained else None}
    bench = []
    name = f"{row['model']} {row['precision']}"
    for t in threads:
        progress(f"   {name}: benchmarking, {t} thread(s)")
        t0 = time.time()
        r = run_isolated(bundle, replace(params, threads=t))
        stage(name, f"bench, {t} thread(s)", t0, r.get("peak_rss_mb"))
        if "error" in r:
            raise EdgekitError(r["error"])
        bench.append(r)
    out["bench"] = [{k: r[k] for k in ("threads", "init_ms", "first_ms", "latency_ms", "peak_rss_mb", "memory_mb",
                                       "delegated_nodes", "total_nodes", "throughput_per_s", "warnings")}
                    for r in bench]
    if not trained:
        return out  # predictions and agreement of a random network would measure nothing
    predictor = open_predictor(bundle)
    if cfg.get("classify"):
        progress(f"   {row['model']} {row['precision']}: classifying {cfg['classify']}")
        t0 = time.time()
        preds = classify(predictor, [cfg["classify"]])
        stage(name, "classify", t0)
        out["predictions"] = [{"image": os.path.basename(p["image"]), "top": p.get("predictions", [])[:3],
                               "error": p.get("error")} for p in preds]
        top1 = {p["image"]: p["top"][0]["index"] for p in out["predictions"] if p["top"]}
        if row["precision"] == "fp32":
            fp32_top1.update(top1)
        elif fp32_top1:
            same = [top1.get(k) == v for k, v in fp32_top1.items()]
            out["agreement_fp32"] = sum(same) / len(same)
    if cfg.get("evaluate"):
        progress(f"   {row['model']} {row['precision']}: evaluating on {cfg['evaluate']}")
        t0 = time.time()
        ev = evaluate(predictor, cfg["evaluate"])
        stage(name, "evaluate", t0)
        out.update(top1=ev["top1"], top5=ev["top5"], eval_count=ev["count"])
    return out
