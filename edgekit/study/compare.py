"""Compare two sets of results configuration by configuration, and tell a real slowdown from noise.

A configuration is (device, model, precision, runtime, threads). Its evidence is the per-process figures a
benchmark keeps (``processes``: each fresh process's median latency and peak memory), because whole processes
of one configuration land apart more than the runs inside a process do; several records of one configuration
on a side (a history label appended twice) pool their processes.

Why these statistics (SciPy is only a test dependency here, so NumPy and the stdlib do it):
- the change is the ratio of the medians of process medians, minus one, as the report shows p50;
- its 95% confidence interval is a percentile bootstrap of that ratio (NumPy, fixed seed: the same files
  always give the same interval);
- significance is the two-sided Mann-Whitney U test on the process medians: rank-based, so one odd process
  cannot make a change significant, and exact for the few processes a benchmark has. Its smallest p-value is
  2 / C(n+m, n): 3 processes against 3 can never reach 0.05 (0.1), so a gate wants ``--repeat 5`` (0.008).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import comb, erf, sqrt
from statistics import median
from typing import Any, Optional

LEVEL = 0.05  # a change is significant when the Mann-Whitney p-value is below this
BOOTSTRAP_ROUNDS = 4000


@dataclass
class ConfigChange:
    """One configuration present on both sides: the change in p50 (a fraction: 0.25 is 25% slower), its 95%
    interval and p-value, memory and top-1; ``regression`` when --fail-above says it is too slow."""
    configuration: str
    base_p50_ms: Optional[float] = None
    new_p50_ms: Optional[float] = None
    p50_change: Optional[float] = None
    p50_ci: Optional[list] = None
    p_value: Optional[float] = None
    significant: bool = False
    processes: Optional[list] = None  # [base, new]
    base_memory_mb: Optional[float] = None
    new_memory_mb: Optional[float] = None
    memory_change_mb: Optional[float] = None
    base_top1: Optional[float] = None
    new_top1: Optional[float] = None
    top1_change_points: Optional[float] = None
    regression: bool = False
    note: Optional[str] = None


@dataclass
class Comparison:
    """What `edgekit compare BASE NEW` found: the configurations on both sides compared, those on one side
    only listed; ``ok`` unless a configuration is slower by more than ``fail_above`` percent, significantly."""
    base: str
    new: str
    fail_above: Optional[float] = None
    level: float = LEVEL
    changes: list = field(default_factory=list)  # ConfigChange
    only_base: list = field(default_factory=list)
    only_new: list = field(default_factory=list)

    @property
    def regressions(self) -> list:
        return [c for c in self.changes if c.regression]

    @property
    def ok(self) -> bool:
        return not self.regressions

    def to_dict(self) -> dict[str, Any]:
        return {"schema": 1, **asdict(self), "regressions": [c.configuration for c in self.regressions]}


def configuration_name(row) -> str:
    """device / model / precision / runtime / threads of a flat row (or a history record's columns)."""
    return " / ".join(str(v) for v in (row["device"], row["model"], row["precision"], row["runtime"],
                                       f"{row['threads']} threads" if row["threads"] else "accuracy"))


def configurations(runs) -> dict:
    """Configuration name -> its figures (process medians, memory, top-1), from results runs."""
    from edgekit.study.rows import bench_entries, table_rows
    found: dict = {}
    for run in runs:
        for row, (_, b) in zip(table_rows(run), bench_entries(run)):
            if row.get("error") or (row.get("p50_ms") is None and row.get("top1") is None):
                continue
            name = configuration_name(row)
            c = found.setdefault(name, {"p50s": [], "memory": [], "top1": []})
            procs = (b or {}).get("processes") or ([{"latency_ms": {"p50": row["p50_ms"]},
                                                     "peak_rss_mb": row.get("peak_rss_mb")}] if b else [])
            c["p50s"] += [p["latency_ms"]["p50"] for p in procs]
            c["memory"] += [p["peak_rss_mb"] for p in procs if p.get("peak_rss_mb") is not None]
            c["top1"] += [row["top1"]] if row.get("top1") is not None else []
    return found


def mann_whitney_p(a, b) -> float:
    """Two-sided Mann-Whitney U p-value: exact (counting every arrangement) without ties and for up to 30
    values a side, else the normal approximation with tie correction."""
    n, m = len(a), len(b)
    pooled = sorted((v, i < n) for i, v in enumerate(list(a) + list(b)))
    values = [v for v, _ in pooled]
    ranks, i = [0.0] * len(values), 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[i:j + 1] = [(i + j) / 2 + 1] * (j - i + 1)
        i = j + 1
    u = sum(r for r, (_, first) in zip(ranks, pooled) if first) - n * (n + 1) / 2
    u = min(u, n * m - u)
    ties = len(set(values)) < len(values)
    if not ties and max(n, m) <= 30:
        counts = _u_counts(n, m)
        return min(1.0, 2 * sum(counts[:int(u) + 1]) / comb(n + m, n))
    groups = [values.count(v) for v in set(values)]
    var = n * m / 12 * ((n + m + 1) - sum(t ** 3 - t for t in groups) / ((n + m) * (n + m - 1)))
    if var <= 0:
        return 1.0
    z = (n * m / 2 - u - 0.5) / sqrt(var)
    return min(1.0, 2 * (1 - 0.5 * (1 + erf(max(z, 0.0) / sqrt(2)))))


def _u_counts(n, m):
    """How many arrangements of n and m values give each U (0..n*m), by the usual recurrence."""
    table = {(0, j): [1] for j in range(m + 1)}
    for i in range(1, n + 1):
        table[(i, 0)] = [1]
        for j in range(1, m + 1):
            left, down = table[(i - 1, j)], table[(i, j - 1)]  # the largest value is an a (adds j) or a b
            size = i * j + 1
            table[(i, j)] = [(left[k - j] if 0 <= k - j < len(left) else 0) + (down[k] if k < len(down) else 0)
                             for k in range(size)]
    return table[(n, m)]


def bootstrap_ratio_ci(base, new, rounds=BOOTSTRAP_ROUNDS, seed=0):
    """95% percentile-bootstrap interval of median(new) / median(base) - 1, resampling each side's values."""
    import numpy as np
    rng = np.random.default_rng(seed)
    b = np.median(rng.choice(np.asarray(base, float), (rounds, len(base))), axis=1)
    n = np.median(rng.choice(np.asarray(new, float), (rounds, len(new))), axis=1)
    low, high = np.percentile(n / b - 1, [2.5, 97.5])
    return [float(low), float(high)]


def smallest_p(n, m) -> float:
    """The smallest two-sided p-value n against m values can give (complete separation)."""
    return min(1.0, 2 / comb(n + m, n))


def compare_configuration(name, base, new, fail_above=None, level=LEVEL) -> ConfigChange:
    """Compare one configuration's figures (as ``configurations`` gives them)."""
    c = ConfigChange(configuration=name, processes=[len(base["p50s"]), len(new["p50s"])])
    if base["p50s"] and new["p50s"]:
        c.base_p50_ms, c.new_p50_ms = median(base["p50s"]), median(new["p50s"])
        c.p50_change = c.new_p50_ms / c.base_p50_ms - 1
        c.p50_ci = bootstrap_ratio_ci(base["p50s"], new["p50s"])
        c.p_value = mann_whitney_p(base["p50s"], new["p50s"])
        c.significant = c.p_value < level
        if smallest_p(*c.processes) >= level:
            c.note = (f"{c.processes[0]} against {c.processes[1]} processes can never be significant at "
                      f"{level}: measure with --repeat 5")
        c.regression = fail_above is not None and c.significant and c.p50_change > fail_above / 100
    if base["memory"] and new["memory"]:
        c.base_memory_mb, c.new_memory_mb = median(base["memory"]), median(new["memory"])
        c.memory_change_mb = c.new_memory_mb - c.base_memory_mb
    if base["top1"] and new["top1"]:
        c.base_top1, c.new_top1 = median(base["top1"]), median(new["top1"])
        c.top1_change_points = 100 * (c.new_top1 - c.base_top1)
    return c


def compare_runs(base_runs, new_runs, base_name, new_name, fail_above=None) -> Comparison:
    """Compare two sets of results runs; EdgekitError when they share no configuration."""
    from device_bench.errors import EdgekitError
    if fail_above is not None and not fail_above >= 0:
        raise EdgekitError(f"--fail-above must be a percentage of 0 or more, got {fail_above}")
    base, new = configurations(base_runs), configurations(new_runs)
    common = [k for k in base if k in new]
    if not common:
        raise EdgekitError(f"{base_name} and {new_name} have no configuration in common (device / model / "
                           f"precision / runtime / threads): {_few(base)} against {_few(new)}")
    return Comparison(base=base_name, new=new_name, fail_above=fail_above,
                      changes=[compare_configuration(k, base[k], new[k], fail_above) for k in common],
                      only_base=[k for k in base if k not in new], only_new=[k for k in new if k not in base])


def _few(configs):
    names = list(configs)
    return "; ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "") if names else "none"


def _pct(v):
    return "-" if v is None else f"{100 * v:+.1f}%"


def render(comparison: Comparison) -> str:
    """The comparison as a table, the one-sided configurations, then one line per regression."""
    from device_bench.views import format_table
    rows = [dict(vars(c), ci=c.p50_ci and f"{_pct(c.p50_ci[0])} .. {_pct(c.p50_ci[1])}",
                 change=_pct(c.p50_change), n=c.processes and f"{c.processes[0]}/{c.processes[1]}",
                 verdict="REGRESSION" if c.regression else ("significant" if c.significant else "-"))
            for c in comparison.changes]
    lines = [format_table(rows, [("configuration", "configuration"), ("base p50 ms", "base_p50_ms"),
                                 ("new p50 ms", "new_p50_ms"), ("change", "change"), ("95% interval", "ci"),
                                 ("p", "p_value"), ("processes", "n"), ("memory MB", "memory_change_mb"),
                                 ("top-1 points", "top1_change_points"), ("", "verdict")])]
    lines += [f"only in {comparison.base}: {k}" for k in comparison.only_base]
    lines += [f"only in {comparison.new}: {k}" for k in comparison.only_new]
    lines += sorted({f"note: {c.note}" for c in comparison.changes if c.note})
    return "\n".join(lines)


def regression_lines(comparison: Comparison) -> list:
    """One line per regression, for stderr and CI logs."""
    return [f"regression: {c.configuration}: p50 {c.base_p50_ms:.3f} -> {c.new_p50_ms:.3f} ms "
            f"({_pct(c.p50_change)}, 95% interval {_pct(c.p50_ci[0])} .. {_pct(c.p50_ci[1])}, p={c.p_value:.3g}), "
            f"above --fail-above {comparison.fail_above:g}%" for c in comparison.regressions]


HISTORY_PREFIX = "history:"


def load_side(spec, history=None):
    """A side of a comparison: a results file (results.json of run/demo, or `edgekit bench --json` output), or
    ``history:LABEL``, the records of the history (``history``, else the default) that carry LABEL."""
    from device_bench.errors import EdgekitError
    if not str(spec).startswith(HISTORY_PREFIX):
        from edgekit.study.rows import load_results
        return load_results([spec])
    from edgekit.study.history import History
    label = str(spec)[len(HISTORY_PREFIX):]
    db = History(history, create=False)
    try:
        records = db.records(label=label)
        if not records:
            labels = sorted({str(r["label"]) for r in db.records() if r["label"] is not None})
            raise EdgekitError(f"{spec}: no record labelled {label!r} in {db.path} (labels there: "
                               f"{', '.join(labels[:10]) or 'none'})")
    finally:
        db.close()
    return [r["record"] for r in records]
