"""A study: which models, precisions, thread counts and data `edgekit run` measures.

Built in code (`Study(models=[...])`) or read from TOML (`Study.from_toml`); either way every key
and type is checked before any work starts, and an unknown key names the closest known one.
"""

import difflib
import math
import os
import re
from dataclasses import dataclass, field, fields

from device_bench.errors import EdgekitError
from device_bench.options import ALL, APIS, DEFAULT_CALIBRATION_COUNT, DEFAULT_REPEAT, PRECISIONS, RUNTIME_APIS, RUNTIMES
from edgekit.training.compress import COMPRESS_OPTIONS
from edgekit.zoo.registry import MAX_SIZE
from edgekit.sources import SAMPLE_IMAGES

_MODEL_KEYS = {"name": str, "source": str, "alpha": (int, float), "size": int, "classes": int, "weights": str,
               "preprocessing": str, "mean": list, "std": list, "labels": str, "train": dict, "compress": list}
_PATH_KEYS = ("calibration", "classify", "evaluate", "output", "dataset", "ssh_config")
# a compress variant's keys besides the training settings (epochs, lr, seed, ...)
_VARIANT_KEYS = ("method", *COMPRESS_OPTIONS)


@dataclass
class Study:
    """Everything `edgekit run` needs; paths are absolute once read from a file."""
    models: list
    precisions: list = field(default_factory=lambda: list(PRECISIONS))
    threads: list = field(default_factory=lambda: [1])
    runtimes: list = field(default_factory=lambda: ["litert"])  # names, "name:api" or "all" (every installed)
    repeat: int = DEFAULT_REPEAT  # fresh processes per configuration, interleaved
    cooldown: float = 0.0  # seconds between benchmark processes
    runs: int = 50
    min_secs: float = 1.0
    weights: str = "none"
    calibration: str = None
    calibration_count: int = DEFAULT_CALIBRATION_COUNT
    classify: str = None
    evaluate: str = None
    output: str = None
    dataset: str = None  # class folders that models' train and compress steps learn from
    targets: list = field(default_factory=lambda: ["local"])  # devices the bundles are benchmarked on (local, ssh)
    ssh_config: str = None  # an OpenSSH config for the ssh targets (Host aliases)
    cluster: str = None  # a Dask cluster to run on: local[:N] or tcp://host:8786 (edgekit run --cluster)

    def __post_init__(self):
        self.validate()

    def validate(self, where="study"):
        """Check every field's type and range; EdgekitError names the field."""
        if not self.models:
            raise EdgekitError(f"{where}: no [[models]] given")
        _check_list(self.precisions, str, "precisions", where, choices=PRECISIONS)
        _check_list(self.threads, int, "threads", where)
        if any(t < 1 for t in self.threads):
            raise EdgekitError(f"{where}: 'threads' must be at least 1, got {self.threads}")
        _check_list(self.runtimes, str, "runtimes", where)
        for entry in self.runtimes:
            _check_runtime(entry, where)
        _check_list(self.targets, str, "targets", where)
        for entry in self.targets:
            if entry.startswith("adb") or not entry.strip():
                raise EdgekitError(f"{where}: 'targets' takes local and ssh targets (a phone: edgekit bench "
                                   f"--target adb), got {entry!r}")
        if self.cluster is not None:
            parse_address(self.cluster, where)
        for name, kind in (("runs", int), ("min_secs", (int, float)), ("calibration_count", int), ("repeat", int),
                           ("cooldown", (int, float))):
            value = getattr(self, name)
            if not isinstance(value, kind) or isinstance(value, bool) or not math.isfinite(value) or \
                    value < (1 if kind is int else 0):
                raise EdgekitError(f"{where}: '{name}' must be a {'positive integer' if kind is int else 'number'}, "
                                   f"got {value!r}")
        for name in ("weights", "cluster", *_PATH_KEYS):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise EdgekitError(f"{where}: '{name}' must be a string, got {getattr(self, name)!r}")
        for name in ("calibration", "classify", "evaluate", "dataset", "ssh_config"):  # inputs: missing is an error, before work
            if getattr(self, name) and not os.path.exists(getattr(self, name)):
                raise EdgekitError(f"{where}: '{name}' {getattr(self, name)} does not exist")
        for i, m in enumerate(self.models):
            _check_model(m, f"{where}: models[{i}]")
            if ("train" in m or "compress" in m) and not self.dataset:
                raise EdgekitError(f"{where}: models[{i}] has train or compress steps; give 'dataset' (class folders)")
        return self

    @classmethod
    def from_dict(cls, data, where="study", base=None):
        """A Study from a parsed config; relative paths are taken from ``base``."""
        if not isinstance(data, dict):
            raise EdgekitError(f"{where}: expected a table of settings")
        known = [f.name for f in fields(cls)]
        _refuse_unknown(data, known, where)
        data = dict(data)
        if not isinstance(data.get("models"), list) or not data["models"]:
            raise EdgekitError(f"{where}: no [[models]] given")
        if base:
            data["models"] = [_with_paths(m, base) for m in data["models"]]
            for key in _PATH_KEYS:
                if isinstance(data.get(key), str):
                    data[key] = os.path.join(base, data[key])
        try:
            return cls(**data)
        except EdgekitError as e:  # name the file rather than "study"
            raise EdgekitError(where + str(e)[len("study"):]) from None

    @classmethod
    def from_toml(cls, path):
        """Read and check a TOML config; paths in it are relative to the file."""
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise EdgekitError(f"{path}: cannot read ({e.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise EdgekitError(f"{path}: not valid TOML ({str(e)[:200]})") from None
        return cls.from_dict(data, str(path), base=os.path.dirname(os.path.abspath(path)))


def demo_study():
    """The built-in study of `edgekit demo`: the three families at 224, every precision, every runtime installed."""
    return Study(models=[{"name": "squeezenet1_1", "size": 224}, {"name": "mobilenet_v1", "alpha": 1.0, "size": 224},
                         {"name": "mobilenet_v2", "alpha": 1.0, "size": 224}],
                 weights="imagenet", calibration=str(SAMPLE_IMAGES), classify=str(SAMPLE_IMAGES), runtimes=[ALL],
                 min_secs=0.5)  # x 3 processes per configuration, across every runtime: within the demo's time


def parse_address(address, where="--cluster"):
    """('local', N) for local[:N] (N worker processes, default: the cores), (address, None) for tcp://host:port."""
    if not isinstance(address, str):
        raise EdgekitError(f"{where}: 'cluster' must be a string, got {address!r}")
    m = re.fullmatch(r"local(?::(\d+))?", address.strip())
    if m:
        n = int(m.group(1)) if m.group(1) else os.cpu_count() or 1
        if n < 1:
            raise EdgekitError(f"{where}: local:N needs N of 1 or more, got {address!r}")
        return "local", n
    if re.fullmatch(r"(tcp|tls)://[^\s/:]+:\d+/?", address.strip()):
        return address.strip().rstrip("/"), None
    raise EdgekitError(f"{where}: a cluster is local[:N] or tcp://host:port (a Dask scheduler), got {address!r}")


def runtime_entry(entry):
    """'litert:compiled' -> ('litert', 'compiled'); 'all' -> ('all', None)."""
    name, _, api = entry.partition(":")
    return name, api or None


def _check_runtime(entry, where):
    name, api = runtime_entry(entry)
    if name != ALL and name not in RUNTIMES:
        raise EdgekitError(f"{where}: 'runtimes' takes {', '.join(RUNTIMES)} or all (optionally name:api), "
                           f"got {entry!r}")
    if api is not None and (api not in APIS or (name in RUNTIME_APIS and api not in RUNTIME_APIS[name])):
        raise EdgekitError(f"{where}: 'runtimes': {name} has no {api!r} API, got {entry!r}")


def _refuse_unknown(data, known, where):
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise EdgekitError(f"{where}: unknown setting {key!r}"
                               + (f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"))


def _check_list(value, kind, name, where, choices=None):
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) and not isinstance(v, bool)
                                                           for v in value):
        raise EdgekitError(f"{where}: '{name}' must be a non-empty list of {kind.__name__}, got {value!r}")
    if choices and any(v not in choices for v in value):
        raise EdgekitError(f"{where}: '{name}' takes {', '.join(choices)}, got {value!r}")


def _check_model(m, where):
    if not isinstance(m, dict):
        raise EdgekitError(f"{where}: expected a table, got {m!r}")
    _refuse_unknown(m, list(_MODEL_KEYS), where)
    if ("name" in m) == ("source" in m):
        raise EdgekitError(f"{where}: give 'name' (a zoo model) or 'source' (a model file), one of the two")
    for key, kind in _MODEL_KEYS.items():
        if key in m and (not isinstance(m[key], kind) or isinstance(m[key], bool)):
            raise EdgekitError(f"{where}: '{key}' has the wrong type: {m[key]!r}")
    if "size" in m and not 1 <= m["size"] <= MAX_SIZE:
        raise EdgekitError(f"{where}: 'size' must be between 1 and {MAX_SIZE} pixels, got {m['size']}")
    for key in ("mean", "std"):
        if key in m and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in m[key]):
            raise EdgekitError(f"{where}: '{key}' must be a list of numbers, got {m[key]!r}")
    settings = _training_keys()
    if "train" in m:
        _refuse_unknown(m["train"], settings, f"{where}.train")
    for i, variant in enumerate(m.get("compress", [])):
        if not isinstance(variant, dict) or "method" not in variant:
            raise EdgekitError(f"{where}.compress[{i}]: expected a table with a 'method', got {variant!r}")
        _refuse_unknown(variant, [*_VARIANT_KEYS, *settings], f"{where}.compress[{i}]")


def _training_keys():
    from dataclasses import fields as dataclass_fields
    from edgekit.training.fit import TrainSettings
    return [f.name for f in dataclass_fields(TrainSettings)]


def _with_paths(m, base):
    if not isinstance(m, dict):
        return m
    m = {k: os.path.join(base, v) if k in ("source", "labels") and isinstance(v, str) else v for k, v in m.items()}
    if isinstance(m.get("compress"), list):  # a student given as a file is relative to the config too
        m["compress"] = [dict(v, student=os.path.join(base, v["student"])) if isinstance(v, dict) and
                         str(v.get("student", "")).endswith(".keras") else v for v in m["compress"]]
    return m
