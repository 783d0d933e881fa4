"""Typed result records: what the API returns, and what every JSON file is a view of.

Each record has ``to_dict()`` (the JSON view, stamped with ``schema``) and ``from_dict()`` (to read a
child process's or a remote board's JSON back). Stdlib only, so the device side can use them.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

SCHEMA = 1


class _Record:
    _optional = ("error", "target", "device")  # left out of the JSON when unset

    def to_dict(self):
        """The JSON view, stamped with the schema version."""
        d = asdict(self)
        if d.get("error") or d.get("unavailable"):  # an error row carries only what is known
            d = {k: v for k, v in d.items() if v is not None}
        else:
            d = {k: v for k, v in d.items() if v is not None or k not in self._optional}
        return dict(d, schema=SCHEMA)

    @classmethod
    def from_dict(cls, d):
        """Read a record back from JSON, ignoring keys a newer writer added."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def ok(self):
        """No error: the record holds real figures."""
        return not getattr(self, "error", None)


BENCH_SUMMARY_FIELDS = ("threads", "runtime", "init_ms", "first_ms", "latency_ms", "latency_spread", "repeat",
                        "processes", "peak_rss_mb", "memory_mb", "delegated_nodes", "total_nodes", "fully_delegated",
                        "throughput_per_s", "ceiling", "achieved", "clock", "sweep", "warnings", "unavailable",
                        "error")


@dataclass
class BenchResult(_Record):
    """One (model, runtime, configuration) benchmark, shaped like benchmark_model's report.

    With several processes (``repeat``), every figure is the median over processes of that process's
    figure (latency_ms["p50"] is the median of process medians); ``processes`` keeps each process's own,
    ``latency_spread`` how far their medians lie apart. ``runtime`` names the runtime, its version, API and
    accelerator; ``unavailable`` says why a row has no figures (an accelerator that is not here)."""
    model: str
    path: str = None
    precision: str = None
    params: int = None
    macs: int = None
    model_size_bytes: int = None
    runtime: dict = None
    threads: int = None
    xnnpack: bool = None
    delegate: str = None
    input: str = None
    input_dtype: str = None
    init_ms: float = None
    first_ms: float = None
    warmup_ms: dict = None
    latency_ms: dict = None
    throughput_per_s: float = None
    delegated_nodes: int = None
    total_nodes: int = None
    fully_delegated: bool = None
    peak_rss_mb: float = None
    memory_mb: dict = None
    timings_meaningful: bool = None
    params_used: dict = None
    warnings: list = field(default_factory=list)
    environment: dict = None
    repeat: int = None
    latency_spread: dict = None
    processes: list = None
    ceiling: dict = None
    achieved: dict = None
    clock: dict = None
    sweep: dict = None
    unavailable: str = None
    error: str = None
    target: str = None
    device: dict = None
    _optional = ("error", "target", "device", "unavailable", "sweep")

    def summary(self):
        """The figures a study row or a report keeps of this benchmark (BENCH_SUMMARY_FIELDS)."""
        d = self.to_dict()
        return {k: d[k] for k in BENCH_SUMMARY_FIELDS if k in d}


@dataclass
class ImagePrediction(_Record):
    """The top-k labels for one image, or why it could not be classified."""
    image: str
    predictions: list = None
    error: str = None
    target: str = None
    device: dict = None


class _Items(_Record):
    """A record holding a list of records in ``items``: iterable, sized, ok when every item is."""

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)

    @property
    def ok(self):
        """Every item is ok."""
        return all(i.ok for i in self.items)

    def to_dict(self):
        """The JSON view: the record's own fields, then its items'."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "items"}
        return {"schema": SCHEMA, **own, "items": [i.to_dict() for i in self.items]}


@dataclass
class Predictions(_Items):
    """Every image's top-k for one model; iterate over it for the per-image records."""
    model: str
    items: list = field(default_factory=list)


@dataclass
class EvalResult(_Record):
    """Top-1/top-5 and per-class accuracy of one model on a labelled dataset."""
    model: str
    dataset: str = None
    count: int = None
    top1: float = None
    top5: float = None
    per_class: dict = None
    images_per_s: float = None
    errors: list = field(default_factory=list)
    compare: dict = None
    error: str = None
    target: str = None
    device: dict = None
    _optional = ("error", "target", "device", "compare")

    @property
    def ok(self):
        return not self.error and not self.errors


@dataclass
class Bundle(_Record):
    """One converted build on disk; usable wherever a path is (``os.fspath(bundle)``)."""
    precision: str
    path: str
    file_size: int = None
    fidelity: dict = None
    reused: bool = False
    conversion_seconds: float = None
    debug_layers: list = None
    quantizer: str = None  # None for fp32, "tflite" (TFLiteConverter) or "litert" (the LiteRT quantizer)
    layer_report: dict = None  # per-layer error: files written and the worst layers
    recovery: dict = None  # --recover-accuracy: each step's accuracy, size and latency, the layers kept float
    versus_tflite: dict = None  # a LiteRT quantizer build against TFLiteConverter's of the same precision
    error: str = None
    _optional = ("error", "debug_layers", "quantizer", "layer_report", "recovery", "versus_tflite", "target",
                 "device")

    def __fspath__(self):
        return self.path

    def to_dict(self):
        d = super().to_dict()
        d["bundle"] = d.pop("path")
        return d


class ConvertResult(Mapping):
    """The bundles made from one model, by precision: ``result["int8"]`` is a Bundle. When both quantizers
    made a precision, the LiteRT quantizer's is ``result["int8_litert"]``."""

    def __init__(self, model, source, bundles):
        self.model, self.source, self.bundles = model, source, list(bundles)

    def _key(self, bundle):
        twice = sum(b.precision == bundle.precision for b in self.bundles) > 1
        return f"{bundle.precision}_{bundle.quantizer}" if twice and bundle.quantizer == "litert" else bundle.precision

    def __getitem__(self, key):
        for b in self.bundles:
            if self._key(b) == key:
                return b
        raise KeyError(key)

    def __iter__(self):
        return (self._key(b) for b in self.bundles)

    def __len__(self):
        return len(self.bundles)

    @property
    def failed(self):
        """The bundles that could not be made."""
        return [b for b in self.bundles if b.error]

    def to_dict(self):
        return {"schema": SCHEMA, "model": self.model, "source": self.source,
                "bundles": [b.to_dict() for b in self.bundles]}


@dataclass
class Recommendation(_Record):
    """The build to ship for one model on one device, chosen from measured results only, with why, the
    runners-up and the command that measures it again; ``decided`` is False when the data cannot tell."""
    model: str
    device: str = None
    decided: bool = False
    winner: dict = None
    reason: str = None
    undecided: list = field(default_factory=list)  # why the data cannot decide
    runners_up: list = field(default_factory=list)
    left_out: list = field(default_factory=list)  # builds not considered, and why
    command: str = None
    evaluate_command: str = None
    criteria: dict = None

    @property
    def ok(self):
        """The data decided."""
        return self.decided


@dataclass
class Recommendations(_Items):
    """One Recommendation per model and device; iterate over it for them (ok when every one is decided)."""
    criteria: dict
    items: list = field(default_factory=list)
