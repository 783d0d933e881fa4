"""Views of result records (as dicts): a text table, CSV, and the text both CLIs print.

Shared by device_bench's argparse front end and edgekit's click one, so the two print the same.
No third-party dependency.
"""

import csv
import io

from device_bench.safe_write import refuse_existing, write_text_atomic


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
    """{'a': {'b': 1}, 'c': [1, 2]} -> {'a.b': 1, 'c': '1; 2'}: one CSV column per leaf."""
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
    refuse_existing(path, force)
    rows = [flatten(r) for r in records]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _latency(key):
    return lambda r: (r.get("latency_ms") or {}).get(key)


def runtime_label(runtime):
    """'litert 2.3.0 compiled/cpu': a runtime record's name, version, API and accelerator in one cell."""
    if not runtime:
        return None
    head = " ".join(str(runtime[k]) for k in ("name", "version") if runtime.get(k)) or "default runtime"
    tail = "/".join(str(runtime[k]) for k in ("api", "accelerator") if runtime.get(k))
    return f"{head} {tail}".strip()


def spread_cell(r):
    """'3% of 3': how far process medians lie apart, over how many processes."""
    s = r.get("latency_spread")
    return s and f"{s['relative']:.0%} of {s['processes']}"


def _fraction(key):
    return lambda r: (r.get("achieved") or {}).get(key)


BENCH_COLUMNS = [
    ("model", "model"), ("precision", "precision"), ("runtime", lambda r: runtime_label(r.get("runtime"))),
    ("threads", "threads"), ("xnnpack", "xnnpack"),
    ("size MB", lambda r: r.get("model_size_bytes") and r["model_size_bytes"] / 1e6),
    ("init ms", "init_ms"), ("first ms", "first_ms"),
    ("p50 ms", _latency("p50")), ("spread", spread_cell), ("p90 ms", _latency("p90")), ("p99 ms", _latency("p99")),
    ("runs", _latency("count")), ("peak RSS MB", "peak_rss_mb"),
    ("GMAC/s", lambda r: (r.get("achieved") or {}).get("macs_per_s") and r["achieved"]["macs_per_s"] / 1e9),
    ("of ceiling", _fraction("fraction_of_ceiling")),
    ("delegated", lambda r: r.get("total_nodes") and f"{r['delegated_nodes']}/{r['total_nodes']}"),
    ("error", lambda r: r.get("error") or (r.get("unavailable") and f"unavailable: {r['unavailable']}")),
]


def render_bench(rows):
    """The bench table, with a target column for remote rows and a flag on emulated timings."""
    columns = ([("target", "target")] if any(r.get("target") for r in rows) else []) + BENCH_COLUMNS
    if any((r.get("environment") or {}).get("emulated") for r in rows):
        columns.append(("timings", lambda r: "EMULATED: meaningless"
                        if (r.get("environment") or {}).get("emulated") else None))
    return "\n".join([format_table(rows, columns), *bench_notes(rows)])


def bench_warnings(rows):
    """Each record's warnings, one line each, naming its configuration, for stderr."""
    return [f"warning: {r['model']} ({runtime_label(r.get('runtime'))}, {r.get('threads')} thread(s)): {w}"
            for r in rows for w in r.get("warnings") or []]


def bench_notes(rows):
    """How the figures were taken, once for the table: processes per configuration, order, cooldown, and the
    runtimes that compute in a lower precision than the file's float32."""
    sweep = next((r["sweep"] for r in rows if r.get("sweep")), None)
    notes = [] if not sweep else [
        f"{sweep['repeat']} fresh process(es) per configuration, {sweep['order']}; figures are medians over "
        f"processes, 'spread' is (highest - lowest) / median of the process medians; cooldown "
        + (f"{sweep['cooldown_s']:g} s between processes" if sweep.get("cooldown_s") else "not used")]
    return notes + inference_precision_notes(r.get("runtime") for r in rows)


def inference_precision_notes(runtimes):
    """One line per runtime that computes float ops in a lower precision of its own accord (OpenVINO picks
    bfloat16 or float16 where the CPU has them): its 'fp32' figures are then not float32 arithmetic."""
    lowered = {runtime_label(r): r["inference_precision"] for r in runtimes
               if r and r.get("inference_precision") not in (None, "f32", "float32")}
    return [f"{label} computes float ops in {precision} (its own default on this CPU): its fp32 figures are not "
            f"float32 arithmetic, so compare accuracy measured in that runtime" for label, precision in lowered.items()]


def render_classification(items):
    """One block per image: its path, then score, label and index of each of the top k."""
    lines = []
    for r in items:
        where = f"[{r['target']}] " if r.get("target") else ""
        if "error" in r:  # an image that failed, or a whole target (no image)
            lines.append(f"{where}{r['image'] + ': ' if r.get('image') else ''}error: {r['error']}")
            continue
        lines.append(f"{where}{r['image']}")
        lines += [f"  {p['score']:7.2%}  {p['label']}  ({p['index']})" if p["label"] is not None
                  else f"  {p['score']:7.2%}  class {p['index']}" for p in r["predictions"]]
    return "\n".join(lines)


def render_evaluation(r):
    """Top-1/top-5, agreement and per-class accuracy of one evaluation record."""
    where = f"[{r['target']}] " if r.get("target") else ""
    if "top1" not in r:
        return f"{where}error: {r.get('error')}"
    lines = [f"{where}{r['model']}: top-1 {r['top1']:.2%}, top-5 {r['top5']:.2%} on {r['count']} images "
             f"({r['images_per_s']:.1f} images/s)"]
    if r.get("compare"):
        lines.append(f"top-1 agreement with {r['compare']['model']}: {r['compare']['top1_agreement']:.2%}")
    lines += [f"  {c['accuracy']:7.2%}  {name}  ({c['count']} images)" for name, c in r["per_class"].items()]
    lines += [f"error: {e['error']}" for e in r.get("errors") or []]
    return "\n".join(lines)


def _tensor_line(t):
    q = t["quantization"]
    return (f"  {t['name']}: {t['dtype']} {t['shape']}"
            + (f", scale {q['scale']:.6g}, zero point {q['zero_point']}" if q else ""))


FOLDED_INTO = {"input_quantization": "the input's scale and zero point", "first_conv": "the first convolution",
               "rescaling": "a Rescaling layer (a MUL and an ADD over every pixel)"}


def folded_view(folded):
    """', folded from tf into ...': where the normalization went, and what that costs in accuracy or time."""
    into = FOLDED_INTO.get(folded.get("method"))
    text = f", folded from {folded['mode']}" + (f" into {into}" if into else "")
    if folded.get("zero_point_error_pixels"):
        text += f" (zero point {folded['zero_point_error_pixels']:g} pixel from the mean)"
    if folded.get("not_in_first_conv") and folded.get("method") == "rescaling":
        text += f" ({folded['not_in_first_conv']})"
    return text


def render_inspection(d):
    """`inspect` as text: what an app or a board will see in the model file."""
    lines = [f"{d['model_file']}  ({d['file_size'] / 1e6:.2f} MB, read with {d['runtime']['name']} "
             f"{d['runtime']['version']})", "inputs:"]
    lines += [_tensor_line(t) for t in d["inputs"]] + ["outputs:"] + [_tensor_line(t) for t in d["outputs"]]
    lines.append(f"signatures: {d['signatures'] or 'none'}")
    meta = d["standard_metadata"]
    if not meta:
        lines.append("standard TFLite Metadata: none (MediaPipe Tasks and Android Studio need it)")
    elif "unreadable" in meta:
        lines.append(f"standard TFLite Metadata: present, but {meta['unreadable']}")
    else:
        inp, out = meta.get("input") or {}, meta.get("output") or {}
        lines += [f"standard TFLite Metadata: {meta['name']} v{meta['version']} by {meta['author']} "
                  f"(parser {meta['min_parser_version']})",
                  f"  {meta['description']}",
                  f"  input {inp.get('name')}: {inp.get('color_space')}, mean {inp.get('mean')}, std {inp.get('std')}, "
                  f"range {inp.get('min')}..{inp.get('max')}",
                  f"  output {out.get('name')}: files "
                  + (", ".join(f"{f['name']} ({f['type']})" for f in out.get("associated_files") or []) or "none"),
                  "  packed files: " + (", ".join(f"{k} ({v} bytes)" for k, v in meta["packed_files"].items())
                                         or "none")]
    m = d["manifest"]
    if m:
        prep = m["input"]["preprocessing"]
        lines.append(f"edgekit manifest: {m['name']}, {m['precision']}, preprocessing {prep.get('mode')} "
                     f"(mean {prep['mean']}, std {prep['std']}, {prep['color_order']})"
                     + (folded_view(prep["folded"]) if prep.get("folded") else "")
                     + (f", {m.get('params'):,} parameters, {m.get('macs') / 1e6:.1f}M multiply-adds"
                        if m.get("params") and m.get("macs") else ""))
    else:
        lines.append("edgekit manifest: none")
    lines.append(f"labels: {d['labels'] or 'none'}")
    lines.append(f"ops ({d['delegated_nodes']}/{d['total_nodes']} nodes taken by XNNPACK):")
    lines += [f"  {op:28s} {n:4d}  XNNPACK {d['xnnpack_ops'].get(op, 0)}" for op, n in d["ops"].items()]
    return "\n".join(lines)
