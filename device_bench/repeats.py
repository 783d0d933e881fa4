"""Repeated processes of one configuration, combined as pyperf combines its worker processes.

Whole processes of the same configuration can land apart (bimodally, on some machines 20%), so one
process's figure is not repeatable. A sweep runs each configuration in several fresh processes,
interleaved with the others; here their results become one record: every figure the median over
processes, each process's own figures kept, and the spread of the process medians.
"""

from dataclasses import replace
from statistics import median

from device_bench.options import SPREAD_WARNING

_MEDIAN_FIELDS = ("init_ms", "first_ms", "peak_rss_mb")


def process_figures(result):
    """What one process measured, as kept in a record's ``processes`` list."""
    return {"latency_ms": result.latency_ms, "init_ms": result.init_ms, "first_ms": result.first_ms,
            "peak_rss_mb": result.peak_rss_mb, "ceiling_macs_per_s": (result.ceiling or {}).get("macs_per_s"),
            "clock": result.clock}


def spread(processes):
    """How far the process medians lie apart: lowest, highest and (highest - lowest) / median."""
    p50s = [p["latency_ms"]["p50"] for p in processes]
    mid = median(p50s)
    return {"p50_min": min(p50s), "p50_max": max(p50s), "relative": (max(p50s) - min(p50s)) / mid if mid else 0.0,
            "processes": len(p50s)}


def achieved(result):
    """Multiply-adds per second at the median latency, over the measured ceiling and the nominal peak."""
    if not result.macs or not result.latency_ms or not result.latency_ms.get("p50"):
        return None
    rate = result.macs / (result.latency_ms["p50"] / 1e3)
    ceiling = result.ceiling or {}
    measured, nominal = ceiling.get("macs_per_s"), ceiling.get("nominal_macs_per_s")
    return {"macs_per_s": rate, "fraction_of_ceiling": rate / measured if measured else None,
            "fraction_of_nominal": rate / nominal if nominal else None}


def op_profile(profiles):
    """Each operator's time and share, the median over the processes' profiles (the same model, so the same
    operators in the same order); None when no process profiled."""
    if not profiles:
        return None
    return [dict(ops[0], avg_ms=median(o["avg_ms"] for o in ops),
                 share=median(o["share"] for o in ops) if None not in [o["share"] for o in ops] else None)
            for ops in zip(*profiles)]


def with_processes(result):
    """One process's result as a record of one process (its own figures, no spread to speak of)."""
    result.processes = [process_figures(result)]
    result.repeat = 1
    result.latency_spread = spread(result.processes)
    result.achieved = achieved(result)
    return result


def combine(results):
    """One record from the same configuration's processes (in the order run); error and unavailable rows
    count as failed processes, and a configuration with none measured returns its first row."""
    ok = [r for r in results if r.ok and not r.unavailable and r.latency_ms]
    if not ok:
        return results[0]
    procs = [p for r in ok for p in (r.processes or [process_figures(r)])]
    out = replace(ok[0], processes=procs, repeat=len(procs), warnings=[])
    keys = procs[0]["latency_ms"].keys()
    out.latency_ms = {k: median([p["latency_ms"][k] for p in procs]) for k in keys if k != "count"}
    out.latency_ms["count"] = sum(p["latency_ms"]["count"] for p in procs)
    for name in _MEDIAN_FIELDS:
        values = [p[name] for p in procs if p.get(name) is not None]
        setattr(out, name, median(values) if values else None)
    out.throughput_per_s = 1e3 / out.latency_ms["mean"] if out.latency_ms.get("mean") else None
    out.ceiling = max((r.ceiling for r in ok if r.ceiling), key=lambda c: c.get("macs_per_s") or 0, default=None)
    out.clock = {"before": (procs[0].get("clock") or {}).get("before"),
                 "after": (procs[-1].get("clock") or {}).get("after")}
    out.op_profile = op_profile([r.op_profile for r in ok if r.op_profile])
    out.latency_spread = spread(procs)
    out.achieved = achieved(out)
    out.warnings = list(dict.fromkeys(w for r in ok for w in r.warnings or []))
    failed = [r.error or r.unavailable for r in results if not any(r is o for o in ok)]
    if failed:
        out.warnings.append(f"{len(failed)} of {len(results)} processes failed (first: {failed[0]})")
    if out.latency_spread["relative"] > SPREAD_WARNING:
        s = out.latency_spread
        out.warnings.append(f"process medians spread {s['relative']:.1%} ({s['p50_min']:.3g}-{s['p50_max']:.3g} ms "
                            f"over {s['processes']} processes), above {SPREAD_WARNING:.0%}: not repeatable here; "
                            f"more --repeat, a --cooldown or a quieter machine")
    return out
