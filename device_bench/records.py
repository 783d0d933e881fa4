"""Typed result records: what the API returns, and what every JSON file is a view of.

Each record has ``to_dict()`` (the JSON view, stamped with ``schema``) and ``from_dict()`` (to read a
child process's or a remote board's JSON back). Stdlib only, so the device side can use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar

SCHEMA = 1  # every record's JSON carries it as "schema"

R = TypeVar("R", bound="_Record")
T = TypeVar("T", bound="_Record")


class _Record:
    _optional: ClassVar[tuple[str, ...]] = ("error", "target", "device")  # left out of the JSON when unset

    def to_dict(self) -> dict[str, Any]:
        """The JSON view, stamped with the schema version."""
        d = asdict(self)  # type: ignore[call-overload]  # every record is a dataclass
        if d.get("error") or d.get("unavailable"):  # an error row carries only what is known
            d = {k: v for k, v in d.items() if v is not None}
        else:
            d = {k: v for k, v in d.items() if v is not None or k not in self._optional}
        return dict(d, schema=SCHEMA)

    @classmethod
    def from_dict(cls: type[R], d: Mapping[str, Any]) -> R:
        """Read a record back from JSON, ignoring keys a newer writer added."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def ok(self) -> bool:
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
    accelerator; ``unavailable`` says why a row has no figures (an accelerator that is not here);
    ``op_profile`` is each operator's time, where the runner profiles them (--op-profile on a phone)."""
    model: str
    path: str | None = None
    precision: str | None = None
    params: int | None = None
    macs: int | None = None
    model_size_bytes: int | None = None
    runtime: dict | None = None
    threads: int | None = None
    xnnpack: bool | None = None
    delegate: str | None = None
    input: str | None = None
    input_dtype: str | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_ms: dict | None = None
    latency_ms: dict | None = None
    throughput_per_s: float | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    fully_delegated: bool | None = None
    peak_rss_mb: float | None = None
    memory_mb: dict | None = None
    timings_meaningful: bool | None = None
    params_used: dict | None = None
    warnings: list = field(default_factory=list)
    environment: dict | None = None
    repeat: int | None = None
    latency_spread: dict | None = None
    processes: list | None = None
    ceiling: dict | None = None
    achieved: dict | None = None
    clock: dict | None = None
    sweep: dict | None = None
    op_profile: list | None = None  # per operator in run order: node_type, avg_ms, share (0..1), name
    unavailable: str | None = None
    error: str | None = None
    target: str | None = None
    device: dict | None = None
    _optional: ClassVar[tuple[str, ...]] = ("error", "target", "device", "unavailable", "sweep", "op_profile")

    def summary(self) -> dict[str, Any]:
        """The figures a study row or a report keeps of this benchmark (BENCH_SUMMARY_FIELDS)."""
        d = self.to_dict()
        return {k: d[k] for k in BENCH_SUMMARY_FIELDS if k in d}


@dataclass
class ImagePrediction(_Record):
    """The top-k labels for one image, or why it could not be classified."""
    image: str
    predictions: list | None = None
    error: str | None = None
    target: str | None = None
    device: dict | None = None


class _Items(_Record, Generic[T]):
    """A record holding a list of records in ``items``: iterable, indexable, sized, ok when every item is."""
    items: list[T]
    _item: ClassVar[type[_Record] | None] = None  # the items' record type, for from_dict

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> T:
        return self.items[i]

    @property
    def ok(self) -> bool:
        """Every item is ok."""
        return all(i.ok for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        """The JSON view: the record's own fields, then its items'."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "items"}  # type: ignore[arg-type]
        return {"schema": SCHEMA, **own, "items": [i.to_dict() for i in self.items]}

    @classmethod
    def from_dict(cls: type[R], d: Mapping[str, Any]) -> R:
        """Read the record and its items back from JSON."""
        item = cls._item  # type: ignore[attr-defined]
        items = [item.from_dict(i) if item and isinstance(i, Mapping) else i for i in d.get("items", [])]
        return super().from_dict(dict(d, items=items))


@dataclass
class Predictions(_Items[ImagePrediction]):
    """Every image's top-k for one model; iterate over it (or index it) for the per-image records."""
    model: str
    items: list[ImagePrediction] = field(default_factory=list)
    _item = ImagePrediction


@dataclass
class BenchResults(_Items[BenchResult]):
    """What one benchmark sweep measured: a BenchResult per model x runtime x thread count (error and
    unavailable rows included), in configuration order; iterate over it or index it (``results[0]``)."""
    items: list[BenchResult] = field(default_factory=list)
    _item = BenchResult


@dataclass
class EvalResult(_Record):
    """Top-1/top-5 and per-class accuracy of one model on a labelled dataset."""
    model: str
    dataset: str | None = None
    count: int | None = None
    top1: float | None = None
    top5: float | None = None
    per_class: dict | None = None
    images_per_s: float | None = None
    errors: list = field(default_factory=list)
    compare: dict | None = None
    error: str | None = None
    target: str | None = None
    device: dict | None = None
    _optional: ClassVar[tuple[str, ...]] = ("error", "target", "device", "compare")

    @property
    def ok(self) -> bool:
        """No error and no image that could not be read."""
        return not self.error and not self.errors


@dataclass
class Bundle(_Record):
    """One converted build on disk; usable wherever a path is (``os.fspath(bundle)``)."""
    precision: str
    path: str
    file_size: int | None = None
    fidelity: dict | None = None
    reused: bool = False
    conversion_seconds: float | None = None
    debug_layers: list | None = None
    quantizer: str | None = None  # None for fp32, "tflite" (TFLiteConverter) or "litert" (the LiteRT quantizer)
    layer_report: dict | None = None  # per-layer error: files written and the worst layers
    recovery: dict | None = None  # --recover-accuracy: each step's accuracy, size and latency, the layers kept float
    versus_tflite: dict | None = None  # a LiteRT quantizer build against TFLiteConverter's of the same precision
    error: str | None = None
    _optional: ClassVar[tuple[str, ...]] = ("error", "debug_layers", "quantizer", "layer_report", "recovery",
                                            "versus_tflite", "target", "device")

    def __fspath__(self) -> str:
        return self.path

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["bundle"] = d.pop("path")
        return d


class ConvertResult(Mapping):
    """The bundles made from one model, by precision: ``result["int8"]`` is a Bundle. When both quantizers
    made a precision, the LiteRT quantizer's is ``result["int8_litert"]``."""

    def __init__(self, model: str, source: dict | None, bundles: Iterable[Bundle]) -> None:
        self.model, self.source, self.bundles = model, source, list(bundles)

    def _key(self, bundle: Bundle) -> str:
        twice = sum(b.precision == bundle.precision for b in self.bundles) > 1
        return f"{bundle.precision}_{bundle.quantizer}" if twice and bundle.quantizer == "litert" else bundle.precision

    def __getitem__(self, key: str) -> Bundle:
        for b in self.bundles:
            if self._key(b) == key:
                return b
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (self._key(b) for b in self.bundles)

    def __len__(self) -> int:
        return len(self.bundles)

    @property
    def failed(self) -> list[Bundle]:
        """The bundles that could not be made."""
        return [b for b in self.bundles if b.error]

    def to_dict(self) -> dict[str, Any]:
        """The JSON view, stamped with the schema version."""
        return {"schema": SCHEMA, "model": self.model, "source": self.source,
                "bundles": [b.to_dict() for b in self.bundles]}


@dataclass
class Recommendation(_Record):
    """The build to ship for one model on one device, chosen from measured results only, with why, the
    runners-up and the command that measures it again; ``decided`` is False when the data cannot tell."""
    model: str
    device: str | None = None
    decided: bool = False
    winner: dict | None = None
    reason: str | None = None
    undecided: list = field(default_factory=list)  # why the data cannot decide
    runners_up: list = field(default_factory=list)
    left_out: list = field(default_factory=list)  # builds not considered, and why
    command: str | None = None
    evaluate_command: str | None = None
    criteria: dict | None = None

    @property
    def ok(self) -> bool:
        """The data decided."""
        return self.decided


@dataclass
class Recommendations(_Items[Recommendation]):
    """One Recommendation per model and device; iterate over it for them (ok when every one is decided)."""
    criteria: dict
    items: list[Recommendation] = field(default_factory=list)
    _item = Recommendation
