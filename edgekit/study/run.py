"""The main job: convert, benchmark, classify and evaluate a set of models, then write the report.

`edgekit demo` is `edgekit run` on the built-in study. Each model and precision that fails becomes a
row with its error; the rest of the run goes on. The steps themselves are in edgekit.study.steps; with a
cluster, edgekit.study.cluster runs them as Dask tasks.
"""

import os
import sys
import time
from dataclasses import asdict, dataclass, field

from device_bench.errors import EdgekitError
from edgekit.study.steps import StudyRun, add_agreement, needs_accuracy


@dataclass
class StudyResult:
    """One study's rows (model x precision) with the environment and how the run went; ``table`` (the flat
    rows the report shows) and ``recommendations`` (or the EdgekitError that says why none) as the report has
    them, not part of results.json."""
    environment: dict
    meta: dict
    rows: list
    table: list = field(default_factory=list, repr=False)
    recommendations: object = None

    def to_dict(self):
        """results.json's content."""
        return {"schema": 1, "environment": self.environment, "meta": self.meta, "rows": self.rows}


def run_study(study, outdir=None, force=False, progress=print, cluster=None):
    """Run a Study (or a TOML path, or a config dict); write report.md, results.json/csv, tradeoff.png.
    ``cluster`` (or the study's own): a Dask cluster that runs the steps (edgekit.study.cluster)."""
    from device_bench.environment import collect
    from device_bench.runtime import resolve_runtime
    from edgekit.study.report import write_report
    from edgekit.study.config import Study, parse_address
    if isinstance(study, (str, os.PathLike)):
        study = Study.from_toml(study)
    elif isinstance(study, dict):
        study = Study.from_dict(study)
    outdir = os.path.abspath(outdir or study.output or "edgekit-out")
    _refuse_other_report(outdir, study, force)
    try:
        os.makedirs(os.path.join(outdir, "bundles"), exist_ok=True)
    except OSError as e:
        raise EdgekitError(f"cannot write {outdir}: {e.strerror or e}") from None
    cluster = cluster or study.cluster
    if cluster:
        parse_address(cluster, "--cluster")
    env, started = collect(resolve_runtime()), time.time()
    run = StudyRun(study, outdir, force, progress)
    if cluster:
        from edgekit.study.cluster import run_on_cluster
        rows = run_on_cluster(run, cluster)
    else:
        rows = [row for m in study.models for row in run.model_rows(m)]
        _measure(run, rows)
    meta = {"config": _config(study), "seconds": round(time.time() - started, 1), "notes": run.notes,
            "stages": run.stages, "bench_processes": run.processes, "cluster": cluster,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "output": outdir, "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))}
    result = StudyResult(env, meta, rows)
    result.table, (result.recommendations,) = write_report(result.to_dict(), outdir, progress=progress)
    return result


def _refuse_other_report(outdir, study, force):
    """A report of another study in OUTDIR is replaced only with --force (a rerun of the same one is fine)."""
    import json
    path = os.path.join(outdir, "results.json")
    if force or not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            same = json.load(f)["meta"]["config"] == json.loads(json.dumps(_config(study)))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        same = False
    if not same:
        raise EdgekitError(f"{outdir} holds the report of another study; pass --force to replace it, "
                           f"or choose another -o")


def _config(study):
    """The study's settings as the report keeps them; where it ran (a cluster or not) does not make it another."""
    config = asdict(study)
    config.pop("cluster")
    return config


def _measure(run, rows):
    """Benchmark every bundle in every runtime (one interleaved sweep), then accuracy where weights are trained."""
    run.specs = run.runtime_specs()
    run.bench(rows)
    for row in rows:
        if needs_accuracy(row):
            try:
                run.accuracy(row)
            except EdgekitError as e:
                row["error"] = str(e)
                run.progress(f"   error: {e}")
    add_agreement(rows)
