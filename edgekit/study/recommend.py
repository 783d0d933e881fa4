"""`edgekit recommend`: the build to ship (runtime x API x precision x threads), picked from measured
results only, with why, the runners-up, the command that measures it again, and a plain "cannot
decide" when the data cannot tell (no accuracy measured, or process medians that overlap).

Two objectives, as the user sets them:
  - no latency budget: the fastest build whose top-1 is within ``max_top1_drop`` points of the best
    top-1 measured for the model;
  - ``max_latency_ms``: the most accurate build whose median latency fits the budget (the accuracy
    floor still applies); equal accuracy goes to the faster build.
``max_memory_mb`` leaves out builds whose benchmark process peaked above it.
"""

from device_bench.errors import EdgekitError
from device_bench.records import Recommendation, Recommendations
from edgekit.study.rows import bench_command, evaluate_command, load_results, table_rows

RUNNERS_UP = 3


def _candidates(run, rows, device):
    """Every measured build of one run (device) as a flat dict, or nothing when ``device`` names another."""
    from device_bench.environment import device_label
    env = run["environment"]
    label = device_label(env)
    names = [label, env.get("hostname"), env.get("board"), env.get("cpu")] + [r.get("target") for r in run["rows"]]
    if device and not any(device.lower() in str(n).lower() for n in names if n):
        return label, []
    dataset = (run.get("meta") or {}).get("config", {}).get("evaluate")
    out = []
    for r in rows:
        if r.get("error") or not r.get("p50_ms"):
            continue
        out.append({"model": r["model"], "precision": r["precision"], "runtime": r["runtime_record"],
                    "runtime_label": r["runtime"], "threads": r["threads"], "p50_ms": r["p50_ms"],
                    "p50_min_ms": r.get("p50_min_ms") or r["p50_ms"], "p50_max_ms": r.get("p50_max_ms") or r["p50_ms"],
                    "processes": r.get("processes") or 1, "top1": r.get("top1"), "peak_rss_mb": r.get("peak_rss_mb"),
                    "bundle": r.get("bundle"), "dataset": dataset})
    return label, out


def describe(c):
    """'openvino 2026.4.1 compiled/cpu, int8, 2 threads: p50 5.96 ms (5.90-6.02 over 3 processes), top-1 71.2%'."""
    text = (f"{c['runtime_label']}, {c['precision']}, {c['threads']} thread{'s' if c['threads'] != 1 else ''}: "
            f"p50 {c['p50_ms']:.3g} ms")
    text += (f" ({c['p50_min_ms']:.3g}-{c['p50_max_ms']:.3g} over {c['processes']} processes)" if c["processes"] > 1
             else " (1 process)")
    text += f", top-1 {c['top1']:.2%}" if c.get("top1") is not None else ", top-1 not measured"
    return text + (f", peak RSS {c['peak_rss_mb']:.0f} MB" if c.get("peak_rss_mb") else "")


def _overlap(a, b):
    """Why a and b cannot be told apart by latency, or None: one process each (spread unknown), or ranges
    of process medians that overlap."""
    if a["processes"] < 2 or b["processes"] < 2:
        return (f"{a['runtime_label']} {a['precision']} and {b['runtime_label']} {b['precision']} ran in a single "
                f"process, so their spread is unknown: measure again with --repeat 3 or more")
    if a["p50_max_ms"] >= b["p50_min_ms"] and b["p50_max_ms"] >= a["p50_min_ms"]:
        return (f"the process medians of {a['runtime_label']} {a['precision']} {a['threads']}t "
                f"({a['p50_min_ms']:.3g}-{a['p50_max_ms']:.3g} ms) and {b['runtime_label']} {b['precision']} "
                f"{b['threads']}t ({b['p50_min_ms']:.3g}-{b['p50_max_ms']:.3g} ms) overlap: the data cannot "
                f"separate them; measure both again with more --repeat")
    return None


def _filter(pool, criteria, left_out):
    """Builds that meet the memory limit and (when measured) the accuracy floor; the rest go to ``left_out``."""
    limit = criteria.get("max_memory_mb")
    over = [c for c in pool if limit is not None and (c["peak_rss_mb"] or 0) > limit]
    if over:
        left_out.append(f"{len(over)} build(s) above {limit:g} MB peak RSS")
    pool = [c for c in pool if c not in over]
    measured = [c for c in pool if c["top1"] is not None]
    if len(measured) < len(pool) and measured:
        left_out.append(f"{len(pool) - len(measured)} build(s) with no accuracy measured in their runtime")
    if not measured:
        return pool, None
    best = max(c["top1"] for c in measured)
    floor = best - criteria["max_top1_drop"] / 100
    below = [c for c in measured if c["top1"] < floor - 1e-12]
    if below:
        left_out.append(f"{len(below)} build(s) more than {criteria['max_top1_drop']:g} points below the best "
                        f"top-1 ({best:.2%})")
    return [c for c in measured if c not in below], best


def _pick(pool, best, criteria):
    """(winner, ranked others, reason) under the user's objective; winner None when nothing qualifies."""
    budget = criteria.get("max_latency_ms")
    if budget is not None:
        within = [c for c in pool if c["p50_ms"] <= budget]
        if not within:
            return None, sorted(pool, key=lambda c: c["p50_ms"]), f"no build's median latency fits {budget:g} ms"
        ranked = sorted(within, key=lambda c: (-(c["top1"] if c["top1"] is not None else -1), c["p50_ms"]))
        if best is None:
            return ranked[0], ranked[1:], f"the fastest of {len(within)} build(s) within {budget:g} ms (no accuracy " \
                                          f"to rank them by)"
        why = (f"the most accurate of {len(within)} build(s) within {budget:g} ms and {criteria['max_top1_drop']:g} "
               f"points of the best top-1 ({best:.2%})")
        return ranked[0], ranked[1:], why
    ranked = sorted(pool, key=lambda c: c["p50_ms"])
    if not ranked:
        return None, [], "no build is left to choose from"
    why = (f"the fastest of {len(ranked)} build(s)"
           + (f" within {criteria['max_top1_drop']:g} points of the best top-1 ({best:.2%})" if best is not None else ""))
    return ranked[0], ranked[1:], why


def recommend_model(model, device, pool, criteria):
    """The Recommendation for one model's measured builds on one device."""
    rec = Recommendation(model=model, device=device, criteria=criteria)
    filtered, best = _filter(pool, criteria, rec.left_out)
    winner, others, why = _pick(filtered, best, criteria)
    rec.runners_up = [dict(c, text=describe(c)) for c in others[:RUNNERS_UP]]
    if winner is None:
        rec.undecided.append(why)
        return rec
    if best is None:
        rec.undecided.append("no accuracy was measured for these builds, so the accuracy floor cannot be checked "
                             "(a runtime or precision can change results): give the study an evaluate folder, or "
                             "run edgekit evaluate in each runtime")
    runner = others[0] if others else None
    # the winner beat the runner-up on latency: always without a budget (ranked by speed), and within a budget
    # when their accuracy ties; then overlapping latency ranges cannot tell them apart
    won_on_latency = runner is not None and (criteria.get("max_latency_ms") is None or runner["top1"] == winner["top1"])
    if won_on_latency:
        rec.undecided += [w for w in (_overlap(winner, runner),) if w]
        why += f"; {runner['p50_ms'] / winner['p50_ms']:.2f}x as fast as the runner-up"
    rec.winner, rec.reason, rec.decided = dict(winner, text=describe(winner)), why, not rec.undecided
    rec.command = bench_command(winner["bundle"], winner["runtime"], [winner["threads"]],
                                repeat=max(3, winner["processes"]))
    if winner["top1"] is not None and winner.get("dataset"):
        rec.evaluate_command = evaluate_command(winner["bundle"], winner["dataset"], winner["runtime"])
    return rec


def recommend(results, *, max_latency_ms=None, max_top1_drop=0.5, max_memory_mb=None, device=None):
    """The build to ship for each model (and device) in ``results``: RESULTS.json paths, or a study's
    results dict. Returns Recommendations; an item's ``decided`` is False when the data cannot tell."""
    runs = [results] if isinstance(results, dict) else load_results(
        [results] if isinstance(results, str) or hasattr(results, "__fspath__") else results)
    return recommend_tables([(run, table_rows(run)) for run in runs], max_latency_ms=max_latency_ms,
                            max_top1_drop=max_top1_drop, max_memory_mb=max_memory_mb, device=device)


def recommend_tables(tables, *, max_latency_ms=None, max_top1_drop=0.5, max_memory_mb=None, device=None):
    """`recommend` on runs whose flat rows are already computed: a list of (run, its table_rows)."""
    if max_top1_drop < 0 or (max_latency_ms is not None and max_latency_ms <= 0) or \
            (max_memory_mb is not None and max_memory_mb <= 0):
        raise EdgekitError("--max-top1-drop must be >= 0, --max-latency-ms and --max-memory-mb above 0")
    criteria = {"max_latency_ms": max_latency_ms, "max_top1_drop": max_top1_drop, "max_memory_mb": max_memory_mb,
                "device": device}
    items, devices = [], []
    for run, rows in tables:
        label, pool = _candidates(run, rows, device)
        devices.append(label)
        for model in dict.fromkeys(c["model"] for c in pool):
            items.append(recommend_model(model, label, [c for c in pool if c["model"] == model], criteria))
    if not items:
        raise EdgekitError("no measured build to choose from" + (f" on a device matching {device!r} (devices: "
                                                                   f"{', '.join(devices)})" if device else ""))
    return Recommendations(criteria=criteria, items=items)


def render(recs):
    """The recommendation as text: the winner and why, runners-up, the reproducing commands, or why not."""
    lines = []
    for r in recs:
        lines.append(f"{r.model} on {r.device}:")
        if r.winner:
            lines.append(f"  {'recommended' if r.decided else 'fastest measured (not a recommendation)'}: "
                         f"{r.winner['text']}")
            lines.append(f"  why: {r.reason}")
        for reason in r.undecided:
            lines.append(f"  CANNOT DECIDE: {reason}")
        lines += [f"  left out: {note}" for note in r.left_out]
        if r.runners_up:
            lines.append("  runners-up:")
            lines += [f"    {c['text']}" for c in r.runners_up]
        if r.command:
            lines.append(f"  reproduce: {r.command}")
        if r.evaluate_command:
            lines.append(f"             {r.evaluate_command}")
    return "\n".join(lines)
