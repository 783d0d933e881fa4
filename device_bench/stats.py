"""Latency statistics as benchmark_model reports them, in plain Python.

numpy.percentile would do, but importing it (and numpy.random) costs the benchmark process about
12 MB of resident memory, which would show up in the memory figures it reports.
"""

PERCENTILES = (5, 50, 90, 95, 99)


def percentile(sorted_values, q):
    """Linear interpolation between closest ranks, as numpy.percentile's default."""
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(ms):
    """count, min, max, mean, population std and the percentiles of a list of timings."""
    s = sorted(ms)
    mean = sum(s) / len(s)
    out = {"count": len(s), "min": s[0], "max": s[-1], "mean": mean,
           "std": (sum((v - mean) ** 2 for v in s) / len(s)) ** 0.5}
    out.update({f"p{q}": percentile(s, q) for q in PERCENTILES})
    return out
