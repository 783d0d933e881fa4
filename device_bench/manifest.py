"""The bundle contract: edgekit.json, labels.txt and model.tflite, plus the same manifest and labels
embedded in the .tflite file's own metadata list, so a lone model file still carries them.

Owned by the device floor; the converters write manifests through this module only.
"""

import json
import os

from device_bench.errors import EdgekitError
from device_bench.options import PRECISIONS

FORMAT = 1
MANIFEST_NAME = "edgekit.json"
MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
META_MANIFEST = "edgekit_manifest"
META_LABELS = "edgekit_labels"
DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32")

# field -> (types, required); dotted names are nested
_SCHEMA = {
    "format": (int, True),
    "name": (str, True),
    "precision": (str, True),
    "source": (dict, True),
    "source.sha256": (str, True),
    "input": (dict, True),
    "input.shape": (list, True),
    "input.dtype": (str, True),
    "input.preprocessing": (dict, True),
    "input.preprocessing.mean": (list, True),
    "input.preprocessing.std": (list, True),
    "input.preprocessing.color_order": (str, True),
    "output": (dict, True),
    "output.shape": (list, True),
    "output.dtype": (str, True),
    "file_size": (int, True),
    "params": (int, False),
    "macs": (int, False),
    "versions": (dict, True),
}


def validate_manifest(m, where="manifest"):
    """Check a manifest dict, raising EdgekitError that names the bad field."""
    if not isinstance(m, dict):
        raise EdgekitError(f"{where}: expected a JSON object, got {type(m).__name__}")
    for field, (types, required) in _SCHEMA.items():
        value, present = m, True
        for part in field.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                present = False
                break
        if not present:
            if required:
                raise EdgekitError(f"{where}: missing field '{field}'")
            continue
        if not isinstance(value, types) or (types is int and isinstance(value, bool)):
            raise EdgekitError(f"{where}: field '{field}' should be {types.__name__}, got {value!r}")
    if m["format"] != FORMAT:
        raise EdgekitError(f"{where}: field 'format' is {m['format']}, this edgekit reads format {FORMAT}")
    if m["precision"] not in PRECISIONS:
        raise EdgekitError(f"{where}: field 'precision' must be one of {', '.join(PRECISIONS)}, got {m['precision']!r}")
    for side in ("input", "output"):
        if m[side]["dtype"] not in DTYPES:
            raise EdgekitError(f"{where}: field '{side}.dtype' is not a tensor type: {m[side]['dtype']!r}")
    if len(m["input"]["shape"]) != 4:
        raise EdgekitError(f"{where}: field 'input.shape' must be [1, H, W, C], got {m['input']['shape']}")
    return m


class ModelRef:
    """A model as the device side sees it: the .tflite path, its manifest and labels, if known."""

    def __init__(self, tflite_path, manifest=None, labels=None, origin=None):
        self.tflite_path = tflite_path
        self.manifest = manifest
        self.labels = labels
        self.origin = origin  # "bundle", "embedded" or None

    @property
    def name(self):
        """A name for reports, even for a lone .tflite without a manifest (then its file name is used)."""
        if self.manifest:
            return self.manifest["name"]
        return os.path.splitext(os.path.basename(self.tflite_path))[0]


def read_labels(path):
    """Class names so predictions read as labels; an unreadable or empty file fails early with its path."""
    try:
        with open(path, encoding="utf-8") as f:
            labels = [line.rstrip("\n") for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise EdgekitError(f"{path}: cannot read labels ({e})") from None
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise EdgekitError(f"{path}: labels file is empty")
    return labels


def read_bundle(path):
    """Open a bundle folder or a lone .tflite (with or without embedded metadata)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        manifest_path = os.path.join(path, MANIFEST_NAME)
        model_path = os.path.join(path, MODEL_NAME)
        if not os.path.exists(model_path):
            raise EdgekitError(f"{path}: not a bundle (no {MODEL_NAME} inside)")
        if not os.path.exists(manifest_path):
            raise EdgekitError(f"{path}: not a bundle (no {MANIFEST_NAME} inside)")
        try:
            with open(manifest_path, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, ValueError) as e:
            raise EdgekitError(f"{manifest_path}: unreadable manifest ({e})") from None
        validate_manifest(manifest, manifest_path)
        labels_path = os.path.join(path, LABELS_NAME)
        labels = read_labels(labels_path) if os.path.exists(labels_path) else None
        return ModelRef(model_path, manifest, labels, "bundle")
    if not os.path.exists(path):
        raise EdgekitError(f"{path}: no such file")
    meta = read_embedded(path)
    manifest = labels = None
    if META_MANIFEST in meta:
        try:
            manifest = validate_manifest(json.loads(meta[META_MANIFEST]), f"{path} (embedded manifest)")
        except ValueError as e:
            raise EdgekitError(f"{path}: embedded manifest is not JSON ({e})") from None
    if META_LABELS in meta:
        labels = [l for l in meta[META_LABELS].decode("utf-8").split("\n") if l] or None
    return ModelRef(path, manifest, labels, "embedded" if manifest else None)


def tflite_schema():
    """The .tflite flatbuffer schema module: LiteRT's, else TensorFlow's; None when neither is installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError:
            return None
    return schema


def read_embedded(path):
    """The .tflite file's metadata entries as {name: bytes}; {} when none or no reader is available."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise EdgekitError(f"{path}: cannot read ({e})") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise EdgekitError(f"{path}: not a TFLite model (no TFL3 identifier)")
    schema = tflite_schema()
    if schema is None:
        return {}
    try:
        model = schema.Model.GetRootAs(buf, 0)
        out = {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            name = (entry.Name() or b"").decode("utf-8", "replace")
            if name in (META_MANIFEST, META_LABELS):
                out[name] = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
        return out
    except Exception as e:  # a damaged flatbuffer can fail in many ways
        raise EdgekitError(f"{path}: damaged TFLite model, cannot read its metadata ({e})") from None


def io_tensors(path):
    """The model's inputs and outputs as the tf.lite Interpreter describes them (index, name, shape, dtype,
    quantization), read from the flatbuffer itself, for runtimes whose API does not report quantization."""
    import mmap

    import numpy as np
    schema = tflite_schema()
    if schema is None:
        raise EdgekitError(f"{path}: reading its input and output tensors needs ai-edge-litert's schema "
                           f"(pip install ai-edge-litert)")
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            graph = schema.Model.GetRootAs(buf, 0).Subgraphs(0)

            def describe(i):
                t = graph.Tensors(i)
                q = t.Quantization()
                scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
                zero = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
                return {"index": i, "name": (t.Name() or b"").decode("utf-8", "replace"),
                        "shape": [int(t.Shape(d)) for d in range(t.ShapeLength())],
                        "dtype": np.dtype(type_names[t.Type()]).type, "quantization": (scale, zero)}

            return ([describe(graph.Inputs(k)) for k in range(graph.InputsLength())],
                    [describe(graph.Outputs(k)) for k in range(graph.OutputsLength())])
    except (OSError, ValueError) as e:
        raise EdgekitError(f"{path}: cannot read ({e})") from None
    except Exception as e:  # a damaged flatbuffer can fail in many ways
        raise EdgekitError(f"{path}: damaged TFLite model, cannot read its tensors ({e})") from None
