"""LiteRT/TFLite ``benchmark_model`` output, read into a typed record.

On a phone the runner is Google's native binary, not device_bench, so its printed report is the only
result there is. Its wording and columns changed between releases (prefixes such as ``INFO:``,
``p5= median= p95=`` only in newer builds, two memory formats, profiler tables whose columns come and
go), so every line is matched against the forms seen in public transcripts and the tables are read
by header name. Lines that match nothing are counted, never guessed at: ``coverage`` says how much of
a transcript was understood. Stdlib only.
"""

import re
from dataclasses import dataclass, field

from device_bench.errors import EdgekitError

# Log prefixes in front of a message: "INFO: ", "VERBOSE: ", logcat's "05-31 10:38:42.583 22206 22206 I tflite  : ".
_PREFIX = re.compile(r"^(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+[\w.]+\s*:\s*"
                     r"|[VDIWEF]/[\w.]+\s*:\s*|(?:INFO|VERBOSE|WARNING|ERROR|DEBUG): )")
_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_TIMINGS = re.compile(rf"Inference timings in us: Init: ({_NUMBER}), First inference: ({_NUMBER}), "
                      rf"Warmup \(avg\): ({_NUMBER}), Inference \(avg\): ({_NUMBER})")
_STATS = re.compile(rf"^(?:Timings \(microseconds\): )?count=\d+(?: \w+={_NUMBER})*$")
_MEMORY = re.compile(rf"^(Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     rf"init=({_NUMBER}) overall=({_NUMBER})$")
_PEAK = re.compile(rf"^Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})$")
_REPLACING = re.compile(r"^Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \((\w+)\) node")
_NOT_APPLIED = re.compile(r"^Though (.+?) delegate is explicitly applied, the model graph will not be executed")
_PARTIAL = re.compile(r"^Explicitly applied (.+?) delegate, and the model graph will be partially executed")
_COMPLETE = re.compile(r"^Explicitly applied (.+?) delegate, and the model graph will be completely executed")
_PHASE = re.compile(r"^Running benchmark for at least ")  # the warm-up, then the timed runs
_SECTION = re.compile(r"^(Operator-wise )?Profiling Info for (.+):$")
_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")
_HEADER = re.compile(r"^\s*\[[^\]]+\](?:\s+\[[^\]]+\])+\s*$")
# Lines that carry nothing a record keeps, in the forms seen so far.
_KNOWN = [re.compile(p) for p in (
    r"^STARTING!$", r"^[^:\[\]]+: \[.*\]$", r"^Loaded model ", r"^The input model file size \(MB\): ",
    r"^Initialized session in ", r"^Note: as the benchmark tool itself",
    r"^Initialized TensorFlow Lite runtime\.$", r"^Created TensorFlow Lite .*delegate for ", r"^\w+ delegate created\.$",
    r"^Explicitly applied .+ delegate", r"^Going to apply \d+ delegates", r"^Loaded OpenCL library",
    r"^Initialized OpenCL-based API\.$", r"^Created \d+ GPU delegate kernels\.$", r"^resolved reporter$",
    r"^Number of nodes executed: \d+$", r"^Memory \(bytes\): count=", r"^\d+ nodes observed$",
    r"^Memory status at the end of exe", r"^[-+] (?:VmRSS|RssAnnon|RssFile)", r"^Duplicate flags: ",
    r"^Min num runs: \[", r"^Benchmarking failed\.$", r"^Failed to apply .+ delegate\.$")]


@dataclass
class RunStats:
    """One ``count= first= curr= min= max= avg= std= [p5= median= p95=]`` line, in microseconds."""
    count: int
    values: dict

    def to_ms(self):
        """benchmark_model's figures in milliseconds, under device_bench's names (avg -> mean, median -> p50)."""
        names = {"avg": "mean", "median": "p50"}
        values = dict(self.values)
        if self.count == 1 and "avg" not in values:  # one run is printed as `count=1 curr=`: its own mean
            values["avg"] = values["curr"]
        out = {names.get(k, k): v / 1e3 for k, v in values.items()}
        return dict(out, count=self.count)


@dataclass
class OpRow:
    """One operator of the profiled runs: its node type, average milliseconds, share of a run, name."""
    node_type: str
    avg_ms: float
    share: float  # 0..1, None when the table has no % column
    name: str


@dataclass
class Transcript:
    """What one benchmark_model run printed, as far as it was understood."""
    init_us: float = None
    first_us: float = None
    warmup_avg_us: float = None
    inference_avg_us: float = None
    warmup: RunStats = None
    runs: RunStats = None
    profiled_runs: RunStats = None  # the profiler's own timings of the regular runs (with --enable_op_profiling)
    phases: int = 0  # "Running benchmark for at least ..." lines: 1 the warm-up began, 2 the timed runs began
    memory_mb: dict = field(default_factory=dict)  # init, overall (and their format), peak_polled
    delegate: str = None
    delegated_nodes: int = None
    total_nodes: int = None
    fully_delegated: bool = None
    ops: list = field(default_factory=list)  # OpRow of the regular runs, in run order
    warnings: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # the binary's own ERROR lines
    recognised: int = 0
    present: int = 0
    unrecognised: list = field(default_factory=list)

    @property
    def coverage(self):
        """Lines understood out of (non-blank) lines present."""
        return self.recognised / self.present if self.present else 0.0


def _message(line):
    line = line.strip()
    while True:
        stripped = _PREFIX.sub("", line, count=1)
        if stripped == line:
            return line
        line = stripped.strip()


def _stats(text):
    pairs = dict(re.findall(rf"(\w+)=({_NUMBER})", text))
    return RunStats(int(pairs.pop("count")), {k: float(v) for k, v in pairs.items()})


def _delegation(out, m):
    replaced, total, name = int(m.group(1)), m.group(2), m.group(3)
    if out.delegated_nodes is None:  # the first delegate applied is the one asked for
        out.delegate, out.delegated_nodes = name, replaced
        out.total_nodes = int(total) if total else None
        out.fully_delegated = replaced == out.total_nodes if total else None
        if total and replaced < int(total):  # one warning for the fact: this one, with the counts, replaces
            out.warnings = [w for w in out.warnings if not _PARTIAL.match(w)]  # "... partially executed"
            out.warnings.append(f"partial delegation: {replaced} of {total} nodes on {name}, the rest on the CPU")


def _line(out, msg, profiling):
    """Read one message into ``out``; False when it matches no known form."""
    m = _TIMINGS.search(msg)
    if m:
        out.init_us, out.first_us, out.warmup_avg_us, out.inference_avg_us = map(float, m.groups())
    elif _STATS.match(msg):
        stats = _stats(msg)
        if msg.startswith("Timings"):
            if profiling == "Regular Benchmark Runs":
                out.profiled_runs = stats
        elif out.phases == 1:
            out.warmup = stats
        elif out.phases > 1:
            out.runs = stats
        else:  # an excerpt without the "Running benchmark" lines: the last count line is the timed runs
            out.warmup, out.runs = out.runs, stats
    elif _PHASE.match(msg):
        out.phases += 1
    elif _MEMORY.match(msg):
        kind, init, overall = _MEMORY.match(msg).groups()
        out.memory_mb.update(init=float(init), overall=float(overall),
                             format="delta from start" if kind.startswith("Memory") else "peak")
    elif _PEAK.match(msg):
        out.memory_mb["peak_polled"] = float(_PEAK.match(msg).group(1))
    elif _REPLACING.match(msg):
        _delegation(out, _REPLACING.match(msg))
    elif _COMPLETE.match(msg):
        if out.delegated_nodes is None:
            out.delegate, out.fully_delegated = _COMPLETE.match(msg).group(1), True
    elif _NOT_APPLIED.match(msg) or _PARTIAL.match(msg):
        if not (_PARTIAL.match(msg) and any(w.startswith("partial delegation:") for w in out.warnings)):
            out.warnings.append(msg.rstrip("."))
        if _NOT_APPLIED.match(msg) and out.delegated_nodes is None:
            out.delegate, out.delegated_nodes, out.fully_delegated = _NOT_APPLIED.match(msg).group(1), 0, False
    else:
        return any(p.search(msg) for p in _KNOWN)
    return True


def _columns(header):
    return [c.strip().lower() for c in re.findall(r"\[([^\]]+)\]", header)]


def _op_row(columns, msg):
    """An operator row split by the header's columns: on tabs, the tool's column separator (XNNPACK's node types
    hold spaces: ``Convolution (NHWC, F32) IGEMM``), else on whitespace (the last column, the name, may hold
    spaces)."""
    sep = "\t" if "\t" in msg else None
    cells = [c.strip() for c in msg.split(sep, len(columns) - 1)]
    if len(cells) != len(columns):
        return None
    row = dict(zip(columns, cells))
    try:
        percent = row.get("%", row.get("avg %"))
        share = float(percent.rstrip("%")) / 100 if percent is not None else None  # never NaN: invalid JSON
        return OpRow(row.get("node type"), float(row["avg ms"]), share, row.get("name", row.get("node type")))
    except (KeyError, ValueError):
        return None


def parse(text, source="benchmark_model output"):
    """A Transcript from benchmark_model's printed report. EdgekitError when it holds no timing at all:
    the binary's first ERROR line if it failed, else the first line not understood."""
    out = Transcript()
    profiling, table, columns = None, None, None
    for raw in text.splitlines():
        msg = _message(raw)
        if not msg:
            continue
        out.present += 1
        ok = True
        if _SECTION.match(msg):
            profiling, table, columns = _SECTION.match(msg).group(2), None, None
        elif profiling and _TABLE_TITLE.match(msg):
            table, columns = _TABLE_TITLE.match(msg).group(1), None
        elif profiling and table and _HEADER.match(msg):
            columns = _columns(msg)
        elif profiling and columns and _op_row(columns, msg):
            if profiling == "Regular Benchmark Runs" and table == "Run Order":
                out.ops.append(_op_row(columns, msg))
        else:
            ok = _line(out, msg, profiling)
            if _is_error(raw, msg):
                out.errors.append(msg)
        if ok:
            out.recognised += 1
        else:
            out.unrecognised.append(msg)
    return _finish(out, source, text)


def _is_error(raw, msg):
    return raw.lstrip().startswith("ERROR:") or msg.startswith(("Benchmarking failed", "Failed to apply"))


def failure_line(text):
    """Why a run failed, in one line: the binary's first ERROR line, else the last line it printed."""
    lines = [(raw, _message(raw)) for raw in text.splitlines() if _message(raw)]
    errors = [msg for raw, msg in lines if _is_error(raw, msg)]
    return (errors[0] if errors else lines[-1][1] if lines else "(no output)")[:300]


def _finish(out, source, text):
    if out.runs is None:  # only the profiler's summary of the runs was printed
        out.runs = out.profiled_runs
    if out.runs is None:
        if out.errors:
            raise EdgekitError(f"{source}: benchmark_model failed: {out.errors[0]}")
        if out.phases or out.warmup or out.inference_avg_us is not None:
            raise EdgekitError(f"{source}: benchmark_model printed no timed runs (no count= line for them); "
                               f"its last line: {failure_line(text)!r}")
        first = out.unrecognised[0] if out.unrecognised else "(no output)"
        raise EdgekitError(f"{source}: not a benchmark_model report; first line not understood: {first[:200]!r}")
    return out
