"""Views of result records: a text table, flat rows, a CSV file. No third-party dependency."""

import csv
import io
import os

from device_bench.errors import EdgekitError


def check_new(path, force):
    """Refuse to replace an existing output unless --force."""
    if os.path.exists(path) and not force:
        raise EdgekitError(f"{path} already exists; pass --force to replace it")


def write_text_atomic(path, text):
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise EdgekitError(f"cannot write {path}: {e.strerror or e}") from None


def format_table(rows, columns):
    """rows: dicts; columns: (header, key or callable). Plain, aligned, no colours."""
    def cell(row, key):
        value = key(row) if callable(key) else row.get(key)
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[h for h, _ in columns]] + [[cell(r, k) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def flatten(record, prefix=""):
    out = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = "; ".join(map(str, value))
        else:
            out[name] = value
    return out


def write_csv(path, records, force=True):
    """Write flattened records as CSV, atomically."""
    check_new(path, force)
    rows = [flatten(r) for r in records]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


BENCH_COLUMNS = [
    ("model", "model"), ("precision", "precision"), ("runtime", lambda r: r.get("runtime") and
                                                      f"{r['runtime']['name']} {r['runtime']['version']}"),
    ("threads", "threads"), ("xnnpack", "xnnpack"),
    ("size MB", lambda r: r.get("model_size_bytes") and r["model_size_bytes"] / 1e6),
    ("init ms", "init_ms"), ("first ms", "first_ms"),
    ("p50 ms", lambda r: r.get("latency_ms", {}).get("p50")), ("p90 ms", lambda r: r.get("latency_ms", {}).get("p90")),
    ("p99 ms", lambda r: r.get("latency_ms", {}).get("p99")), ("runs", lambda r: r.get("latency_ms", {}).get("count")),
    ("peak RSS MB", "peak_rss_mb"),
    ("delegated", lambda r: r.get("total_nodes") and f"{r['delegated_nodes']}/{r['total_nodes']}"),
    ("error", "error"),
]
