"""The bundle contract: edgekit.json, labels.txt and model.tflite. The model file carries the same
manifest (a Model.metadata entry) and labels (packed, as the standard TFLite Metadata has them), so a
lone model file still says what it is.

Owned by the device floor; the converters write manifests through this module only.
"""

import json
import math
import os
import stat

from device_bench.errors import EdgekitError
from device_bench.options import ALL_PRECISIONS

FORMAT = 1
MANIFEST_NAME = "edgekit.json"
MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
META_MANIFEST = "edgekit_manifest"
DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32")
RESIZE_METHODS = ("bilinear", "bicubic", "nearest")

MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few KB; refuse what could only be garbage
MAX_LABELS_BYTES = 16 << 20
MAX_MODEL_BYTES = 4 << 30
MAX_SIDE = 1 << 15  # pixels; larger inputs are refused before any allocation
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
CONVERT_FIRST = "convert it first with `edgekit convert` (device_bench reads TFLite models and bundles)"


def _number(nonzero=False):
    def check(v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        return ok and (v != 0 or not nonzero)
    return check


def _int(lo, hi):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _one_of(*choices):
    return lambda v: isinstance(v, str) and v in choices


def _numbers(nonzero=False):
    return lambda v: isinstance(v, list) and len(v) in (1, 3) and all(_number(nonzero=nonzero)(x) for x in v)


def _shape(rank):
    return lambda v: (isinstance(v, list) and (rank is None or len(v) == rank) and 0 < len(v) <= 8
                      and all(_int(1, MAX_SIDE)(x) for x in v))


def _optional(check):
    return lambda v: v is None or check(v)


# field -> (check, what it must be, required); dotted names are nested
_SCHEMA = {
    "format": (_int(FORMAT, FORMAT), f"{FORMAT} (the format this edgekit reads)", True),
    "name": (lambda v: isinstance(v, str) and 0 < len(v) <= 512, "a name", True),
    "precision": (_one_of(*ALL_PRECISIONS), "one of " + ", ".join(ALL_PRECISIONS), True),
    "source": (lambda v: isinstance(v, dict), "an object", True),
    "source.sha256": (lambda v: isinstance(v, str), "a string", True),
    "input": (lambda v: isinstance(v, dict), "an object", True),
    "input.shape": (_shape(4), "[1, H, W, C] of positive integers", True),
    "input.dtype": (_one_of(*DTYPES), "a tensor type", True),
    "input.scale": (_optional(_number()), "a finite number or null", False),
    "input.zero_point": (_optional(_int(-(1 << 31), 1 << 31)), "an integer or null", False),
    "input.preprocessing": (lambda v: isinstance(v, dict), "an object", True),
    "input.preprocessing.mean": (_numbers(), "1 or 3 finite numbers", True),
    "input.preprocessing.std": (_numbers(nonzero=True), "1 or 3 finite, non-zero numbers", True),
    "input.preprocessing.color_order": (_one_of("RGB", "BGR"), "RGB or BGR", True),
    "input.preprocessing.resize": (_one_of(*RESIZE_METHODS), "one of " + ", ".join(RESIZE_METHODS), False),
    "input.preprocessing.crop_fraction": (lambda v: _number()(v) and 0.1 <= v <= 1, "a number in [0.1, 1]", False),
    "output": (lambda v: isinstance(v, dict), "an object", True),
    "output.shape": (_shape(None), "a shape of positive integers", True),
    "output.dtype": (_one_of(*DTYPES), "a tensor type", True),
    "output.scale": (_optional(_number()), "a finite number or null", False),
    "output.zero_point": (_optional(_int(-(1 << 31), 1 << 31)), "an integer or null", False),
    "file_size": (_int(0, 1 << 40), "a size in bytes", True),
    "model_sha256": (lambda v: isinstance(v, str) and len(v) == 64, "a sha256 hex digest", False),
    "params": (_optional(_int(0, 1 << 40)), "a count", False),
    "macs": (_optional(_int(0, 1 << 50)), "a count", False),
    "versions": (lambda v: isinstance(v, dict), "an object", True),
}


def validate_manifest(m, where="manifest"):
    """Check every field's type and range, raising EdgekitError that names the bad field."""
    if not isinstance(m, dict):
        raise EdgekitError(f"{where}: expected a JSON object, got {type(m).__name__}")
    for field, (check, what, required) in _SCHEMA.items():
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
        if not check(value):
            raise EdgekitError(f"{where}: field '{field}' must be {what}, got {_short(value)}")
    return m


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ModelRef:
    """A model as the device side sees it: the .tflite path, its manifest and labels, if known."""

    def __init__(self, tflite_path, manifest=None, labels=None, origin=None, standard_preprocessing=None):
        self.tflite_path = tflite_path
        self.manifest = manifest
        self.labels = labels
        self.origin = origin  # "bundle", "embedded", "standard" (TFLite Metadata only) or None
        self.standard_preprocessing = standard_preprocessing  # from NormalizationOptions, for a bare file

    @property
    def preprocessing(self):
        """How pixels become the input: the manifest's, else the standard metadata's; None when unknown."""
        if self.manifest:
            return self.manifest["input"]["preprocessing"]
        return self.standard_preprocessing

    @property
    def name(self):
        """A name for reports, even for a lone .tflite without a manifest (then its file name is used)."""
        if self.manifest:
            return self.manifest["name"]
        return os.path.splitext(os.path.basename(self.tflite_path))[0]


def read_regular(path, limit, what):
    """The bytes of a regular file of at most ``limit`` bytes: a FIFO, a device (/dev/zero) or a huge
    file is refused by name instead of hanging or filling memory."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise EdgekitError(f"{path}: {what} is not a regular file")
        if st.st_size > limit:
            raise EdgekitError(f"{path}: {what} is {st.st_size:,} bytes, more than the {limit:,} allowed")
        with open(path, "rb") as f:
            # ask for what stat says, not the limit: read(limit) reserves the limit (4 GiB for a model)
            data = f.read(st.st_size)
            while len(data) <= limit:  # a file that grew since the stat (or /proc, which says 0)
                more = f.read(min(1 << 20, limit + 1 - len(data)))
                if not more:
                    break
                data += more
    except OSError as e:
        raise EdgekitError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    if len(data) > limit:
        raise EdgekitError(f"{path}: {what} is more than the {limit:,} bytes allowed")
    return data


def read_labels(path):
    """Class names so predictions read as labels; an unreadable or empty file fails early with its path."""
    try:
        labels = read_regular(path, MAX_LABELS_BYTES, "labels file").decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise EdgekitError(f"{path}: labels file is not UTF-8 text ({e})") from None
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise EdgekitError(f"{path}: labels file is empty")
    return labels


def parse_manifest(data, where):
    """A validated manifest from JSON bytes; EdgekitError for anything else, however deep or odd."""
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise EdgekitError(f"{where}: unreadable manifest ({str(e)[:200]})") from None
    return validate_manifest(manifest, where)


def read_bundle(path, verify=True):
    """Open a bundle folder or a lone .tflite (with or without embedded metadata).

    A bundle's model.tflite must match the sha256 its manifest records (``verify=False`` skips that)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        manifest_path = os.path.join(path, MANIFEST_NAME)
        model_path = os.path.join(path, MODEL_NAME)
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            raise EdgekitError(f"{path} is a TensorFlow SavedModel: {CONVERT_FIRST}")
        for name in (MODEL_NAME, MANIFEST_NAME):
            if not os.path.lexists(os.path.join(path, name)):
                raise EdgekitError(f"{path}: not a bundle (no {name} inside)")
        manifest = parse_manifest(read_regular(manifest_path, MAX_MANIFEST_BYTES, "manifest"), manifest_path)
        if verify:
            verify_model_file(model_path, manifest)
        labels_path = os.path.join(path, LABELS_NAME)
        labels = read_labels(labels_path) if os.path.lexists(labels_path) else None
        return ModelRef(model_path, manifest, labels, "bundle")
    if not os.path.lexists(path):
        raise EdgekitError(f"{path}: no such file")
    meta = read_embedded(path)
    manifest = labels = None
    if META_MANIFEST in meta:
        manifest = parse_manifest(meta[META_MANIFEST], f"{path} (embedded manifest)")
        if verify and meta["file_size"] != manifest["file_size"]:
            raise EdgekitError(f"{path}: {meta['file_size']:,} bytes, but its embedded manifest says "
                               f"{manifest['file_size']:,}: the file was cut off or changed after conversion "
                               f"(pass --no-verify to use it anyway)")
    if LABELS_NAME in meta:
        labels = [l for l in meta[LABELS_NAME].decode("utf-8", "replace").split("\n") if l] or None
    if manifest:
        return ModelRef(path, manifest, labels, "embedded")
    standard = meta.get("standard")
    if standard:  # a model from elsewhere (a model hub, MediaPipe's samples) with the standard metadata only
        return ModelRef(path, None, standard["labels"] or labels, "standard", standard["preprocessing"])
    return ModelRef(path, None, labels)


def _standard(buf):
    """{"preprocessing", "labels"} from the standard TFLite Metadata (NormalizationOptions, the output's
    TENSOR_AXIS_LABELS file), or None without it or without the reader (a tflite-runtime-only device)."""
    try:
        from device_bench.tflite_metadata import read_classifier_metadata
    except ImportError:
        return None
    try:
        meta = read_classifier_metadata(buf)
    except Exception:  # damaged metadata: the model may still run with --mean/--std and --labels
        return None
    if meta is None:
        return None
    from device_bench.images import make_preprocessing
    inp, out = meta.get("input") or {}, meta.get("output") or {}
    prep = None
    if inp.get("mean") and inp.get("std") and len(inp["mean"]) in (1, 3) and len(inp["std"]) in (1, 3):
        try:
            prep = make_preprocessing(mean=inp["mean"], std=inp["std"])
        except EdgekitError:  # a zero or odd std: as if not declared
            prep = None
    files = [f["name"] for f in out.get("associated_files") or [] if f["type"] == "TENSOR_AXIS_LABELS"]
    blob = meta["packed_files"].get(files[0]) if files else None
    labels = [l for l in blob.decode("utf-8", "replace").splitlines() if l] if blob else []
    return {"preprocessing": prep, "labels": labels or None}


def verify_model_file(model_path, manifest):
    """The model file is the one the manifest describes: its size and sha256 match."""
    import hashlib
    data = read_regular(model_path, MAX_MODEL_BYTES, "model file")
    if len(data) != manifest["file_size"]:
        raise EdgekitError(f"{model_path}: {len(data):,} bytes, but the manifest says {manifest['file_size']:,}: "
                           f"the model was changed after conversion (pass --no-verify to use it anyway)")
    digest = manifest.get("model_sha256")
    if not digest:
        raise EdgekitError(f"{model_path}: the manifest records no model_sha256 to check the model against "
                           f"(pass --no-verify to use it anyway)")
    if hashlib.sha256(data).hexdigest() != digest:
        raise EdgekitError(f"{model_path}: its sha256 does not match the manifest: the model was changed or "
                           f"damaged after conversion (pass --no-verify to use it anyway)")


def check_tensors(ref, input_detail, output_detail):
    """The manifest agrees with the model's own tensors: same input and output shape and type, and a
    precision its tensor types bear out."""
    import numpy as np
    m = ref.manifest
    if not m:
        return
    for side, detail in (("input", input_detail), ("output", output_detail)):
        shape, dtype = [int(v) for v in detail["shape"]], np.dtype(detail["dtype"]).name
        if m[side]["shape"] != shape or m[side]["dtype"] != dtype:
            raise EdgekitError(f"{ref.tflite_path}: the manifest's {side} ({m[side]['dtype']} {m[side]['shape']}) "
                               f"is not the model's ({dtype} {shape})")
    check_precision(ref)


# the tensor types a build of each precision must hold (any one of them), and those it must not
_PRECISION_TYPES = {"fp32": ((), ("int8", "uint8", "float16")), "fp16": (("float16",), ()),
                    "dynamic": (("int8",), ()), "int8": (("int8", "uint8"), ()), "int16x8": (("int16",), ())}


def check_precision(ref):
    """The manifest's precision agrees with the model's tensor types (an int8 manifest on a float32 model
    would mislabel every result); skipped without a flatbuffer reader."""
    precision = (ref.manifest or {}).get("precision")
    types = tensor_types(ref.tflite_path) if precision in _PRECISION_TYPES else None
    if types is None:
        return
    need, forbid = _PRECISION_TYPES[precision]
    wrong = sorted(types & set(forbid))
    if (need and not types & set(need)) or wrong:
        raise EdgekitError(f"{ref.tflite_path}: the manifest says precision {precision}, but the model's tensors "
                           f"are {', '.join(sorted(types))}" + (f" ({wrong[0]} is not {precision})" if wrong else ""))


def tensor_types(path):
    """The set of tensor type names ("float32", "int8", ...) in a .tflite; None without a flatbuffer reader."""
    import mmap
    schema = tflite_schema()
    if schema is None:
        return None
    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            model = schema.Model.GetRootAs(buf, 0)
            return {names.get(sg.Tensors(t).Type(), "unknown") for sg in map(model.Subgraphs,
                    range(model.SubgraphsLength())) for t in range(sg.TensorsLength())}
    except Exception:  # a damaged flatbuffer: the runtime's own load names the problem
        return None


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
    """{META_MANIFEST: bytes, LABELS_NAME: bytes, "file_size": int, "standard": _standard()}, as far as the
    .tflite file carries them: the manifest entry and, without it, the standard metadata when a flatbuffer
    reader is installed; the labels from the packed files (stdlib zipfile)."""
    if os.path.splitext(path)[1].lower() in KERAS_SUFFIXES:
        raise EdgekitError(f"{path} is a Keras model: {CONVERT_FIRST}")
    buf = read_regular(path, MAX_MODEL_BYTES, "model file")
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        if buf[:8] == b"\x89HDF\r\n\x1a\n":  # an HDF5 file under another name
            raise EdgekitError(f"{path} is a Keras model: {CONVERT_FIRST}")
        raise EdgekitError(f"{path}: not a TFLite model (no TFL3 identifier)")
    out = dict(_packed_labels(buf), file_size=len(buf))
    schema = tflite_schema()
    if schema is None:
        return out
    try:
        model = schema.Model.GetRootAs(buf, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if (entry.Name() or b"").decode("utf-8", "replace") == META_MANIFEST:
                out[META_MANIFEST] = _buffer_bytes(model.Buffers(entry.Buffer()), buf)
    except Exception as e:  # a damaged flatbuffer can fail in many ways
        raise EdgekitError(f"{path}: damaged TFLite model, cannot read its metadata ({e})") from None
    if META_MANIFEST not in out:
        out["standard"] = _standard(buf)
    return out


def _packed_labels(buf):
    """{LABELS_NAME: bytes} from the zip packed after the flatbuffer, or {}."""
    import io
    import zipfile
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as z:
            return {LABELS_NAME: z.read(LABELS_NAME)} if LABELS_NAME in z.namelist() else {}
    except (zipfile.BadZipFile, ValueError, OSError, KeyError):
        return {}


def _buffer_bytes(buffer, file_bytes):
    """A buffer's bytes, inline or (as the LiteRT quantizer writes them) stored after the flatbuffer."""
    if buffer.DataLength():
        return buffer.DataAsNumpy().tobytes()
    offset, size = buffer.Offset(), buffer.Size()
    return file_bytes[offset:offset + size] if offset > 1 else b""


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
