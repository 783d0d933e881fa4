"""How `edgekit profile` prints a profile (a Profile.to_dict()): a table worst first, its label and its sums."""

from device_bench.views import format_table


def _pct(key):
    return lambda r: None if r.get(key) is None else f"{r[key]:.1%}"


def _ms(key):
    return lambda r: None if r.get(key) is None else f"{r[key]:.3f}"


def render_profile(p):
    """The table, then what its times are and how they sum against the end-to-end figure."""
    if p.get("compare"):
        return render_comparison(p["compare"])
    columns = [("#", "index"), ("op", "op"), ("layer", "layer"), ("MACs", "macs"), ("MAC %", _pct("mac_share")),
               ("ms", _ms("ms")), ("time %", _pct("time_share")), ("delegated", "delegated")]
    if p["source"] == "vela":
        columns += [("cycles", "cycles"), ("staging KB", lambda r: r["memory_bytes"] and r["memory_bytes"] / 1e3)]
    columns.append(("note", "note"))
    lines = [p["label"], format_table(p["rows"], columns), f"delegated: {p['delegated_means']}"]
    ops = sum(r["index"] is not None for r in p["rows"])
    total = f"{len(p['rows'])} rows ({ops} ops of the graph): op times sum to {p['op_ms']:.3f} ms"
    if p.get("end_to_end_ms"):
        what = "Vela's total" if p["source"] == "vela" else "end-to-end p50 in the same runtime"
        total += f"; {what} {p['end_to_end_ms']:.3f} ms (sum / end-to-end {p['op_sum_over_end_to_end']:.2f})"
    return "\n".join(lines + [total] + [f"note: {n}" for n in p["notes"]])


def render_comparison(c):
    """Two builds side by side, in the first one's order (worst first)."""
    columns = [("# A", "index_a"), ("# B", "index_b"), ("op", "op"), ("layer", "layer"), ("MACs", "macs"), ("ms A", _ms("ms_a")),
               ("time % A", _pct("time_share_a")), ("ms B", _ms("ms_b")), ("time % B", _pct("time_share_b")),
               ("B / A", lambda r: None if r["ratio"] is None else f"{r['ratio']:.2f}")]
    head = [c["label"], f"A: {c['a']}", f"B: {c['b']}  (ops paired by type and layer; '-': not in that build)"]
    tail = f"op times sum: A {c['op_ms_a']:.3f} ms, B {c['op_ms_b']:.3f} ms"
    if c.get("end_to_end_ms_a") and c.get("end_to_end_ms_b"):
        tail += f"; end to end: A {c['end_to_end_ms_a']:.3f} ms, B {c['end_to_end_ms_b']:.3f} ms"
    return "\n".join(head + [format_table(c["rows"], columns), tail])


def csv_rows(p):
    """The rows a CSV holds: the side-by-side rows with --compare, else the profile's rows with its source."""
    if p.get("compare"):
        return p["compare"]["rows"]
    return [dict(r, source=p["source"], estimate=p["estimate"]) for r in p["rows"]]
