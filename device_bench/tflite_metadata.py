"""Write and read the standard TFLite Metadata (``TFLITE_METADATA``) for image classifiers.

This is what MediaPipe Tasks, the LiteRT/TFLite Task Library and Android Studio
read. It reproduces what tflite-support's ``MetadataPopulator`` writes, without
depending on tflite-support or TensorFlow:

* the ModelMetadata flatbuffer (schema ``metadata_schema.fbs``, identifier
  ``M001``) is stored in a model buffer referenced by a ``Model.metadata`` entry
  named ``TFLITE_METADATA``;
* associated files (``labels.txt``) are *packed*: an uncompressed (stored) zip
  archive appended after the model flatbuffer, with offsets relative to the
  start of the whole file (what ``zipfile.ZipFile(f, "a")`` produces on a
  non-zip file, and what MediaPipe's minizip reader expects);
* ``min_parser_version`` is computed like tflite-support's
  ``GetMinimumMetadataParserVersion`` (``metadata/cc/metadata_version.cc``).

Every other ``Model.metadata`` entry (``min_runtime_version``, custom entries)
and every previously packed file are kept. edgekit's own manifest travels as one
more ``Model.metadata`` entry, written in the same pass, and the input and output
tensors get the names apps see: ``image`` and ``probabilities``.

The schema module is generated code: see tools/metadata_schema/SOURCES.md.
"""

from __future__ import annotations

import io
import warnings
import zipfile

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as _tfl

from device_bench import metadata_schema_py_generated as _md
from device_bench.errors import EdgekitError

METADATA_FIELD_NAME = "TFLITE_METADATA"
METADATA_FILE_IDENTIFIER = b"M001"
TFLITE_FILE_IDENTIFIER = b"TFL3"
LABELS_FILE_NAME = "labels.txt"
# Same text as tflite-support's LabelFileMd, so tools show the usual string.
LABELS_FILE_DESCRIPTION = "Labels for categories that the model can recognize."
# Fixed zip timestamp so that writing the same inputs twice gives the same bytes.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# The converter aligns weight buffers to 16 bytes; keep that when re-packing.
_BUFFER_ALIGNMENT = 16
_MAX_FLATBUFFER_SIZE = 2**31 - 1

MEDIAPIPE_PER_CHANNEL_WARNING = (
    "per-channel NormalizationOptions (mean/std values that differ between "
    "channels) are valid TFLite Metadata, but MediaPipe Tasks refuses them; "
    "fold the normalization into the graph or use a single mean/std value")
MEDIAPIPE_FLOAT_NO_NORM_WARNING = (
    "float32 image input without NormalizationOptions: MediaPipe Tasks refuses "
    "such a model; declare mean=[0.0], std=[1.0] to receive raw 0..255 pixels")


class MediaPipeCompatWarning(UserWarning):
    """Metadata is valid per the schema but MediaPipe Tasks will not accept it."""


_TENSOR_TYPE_NAMES = {v: k for k, v in vars(_tfl.TensorType).items() if k.isupper()}
_COLOR_SPACE_NAMES = {v: k for k, v in vars(_md.ColorSpaceType).items() if k.isupper()}
_FILE_TYPE_NAMES = {v: k for k, v in vars(_md.AssociatedFileType).items() if k.isupper()}


# --------------------------------------------------------------------------- #
# min_parser_version: port of tflite-support metadata/cc/metadata_version.cc
# --------------------------------------------------------------------------- #
def _vmax(a: tuple, b: tuple) -> tuple:
    return a if a >= b else b


def _files_version(files) -> tuple:
    v = (1, 0, 0)
    for f in files or []:
        if f.type == _md.AssociatedFileType.VOCABULARY:
            v = _vmax(v, (1, 0, 1))
        if f.type == _md.AssociatedFileType.SCANN_INDEX_FILE:
            v = _vmax(v, (1, 4, 0))
        if f.version is not None:
            v = _vmax(v, (1, 4, 1))
    return v


def _process_units_version(units) -> tuple:
    opts = _md.ProcessUnitOptions
    per_type = {opts.BertTokenizerOptions: (1, 1, 0),
                opts.SentencePieceTokenizerOptions: (1, 1, 0),
                opts.RegexTokenizerOptions: (1, 2, 1)}
    v = (1, 0, 0)
    for u in units or []:
        v = _vmax(v, per_type.get(u.optionsType, (1, 0, 0)))
    return v


def _tensor_version(t) -> tuple:
    v = _vmax(_files_version(t.associatedFiles), _process_units_version(t.processUnits))
    if t.content is not None and (
            t.content.contentPropertiesType == _md.ContentProperties.AudioProperties):
        v = _vmax(v, (1, 3, 0))
    return v


def min_parser_version(meta: "_md.ModelMetadataT") -> str:
    """Smallest metadata parser version that understands every field used.

    Mirrors GetMinimumMetadataParserVersion: "1.0.0" unless a member added in a
    later schema version is present (a field counts as present when it would be
    serialized, i.e. is not None, even if it is an empty list).
    """
    v = _files_version(meta.associatedFiles)
    for sg in meta.subgraphMetadata or []:
        for t in (sg.inputTensorMetadata or []) + (sg.outputTensorMetadata or []):
            v = _vmax(v, _tensor_version(t))
        v = _vmax(v, _files_version(sg.associatedFiles))
        if sg.inputProcessUnits is not None:
            v = _vmax(v, _vmax((1, 1, 0), _process_units_version(sg.inputProcessUnits)))
        if sg.outputProcessUnits is not None:
            v = _vmax(v, _vmax((1, 1, 0), _process_units_version(sg.outputProcessUnits)))
        if sg.inputTensorGroups is not None or sg.outputTensorGroups is not None:
            v = _vmax(v, (1, 2, 0))
        if sg.customMetadata is not None:
            v = _vmax(v, (1, 5, 0))
    return "%d.%d.%d" % v


# --------------------------------------------------------------------------- #
# Packed associated files (zip appended after the flatbuffer)
# --------------------------------------------------------------------------- #
def read_packed_files(model_bytes: bytes) -> dict[str, bytes]:
    """Files of the zip appended to the model; {} when there is none."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except (zipfile.BadZipFile, ValueError, OSError, EdgekitError):
        # A flatbuffer without a zip (or random bytes that look like an end
        # record) is simply "no packed files".
        return {}


def _append_zip(flatbuffer: bytes, files: dict[str, bytes]) -> bytes:
    """Append ``files`` as a stored zip, like MetadataPopulator's ``"a"`` mode.

    Appending to non-zip data makes zipfile write absolute offsets, so the
    archive is readable both by zipfile and by tflite-support/MediaPipe's
    minizip reader, which also require uncompressed (ZIP_STORED) members.
    """
    out = io.BytesIO(flatbuffer)
    out.seek(0, io.SEEK_END)
    if files:
        with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
            for name, data in files.items():
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
    return out.getvalue()


# --------------------------------------------------------------------------- #
# Model flatbuffer helpers
# --------------------------------------------------------------------------- #
def _check_model(model_bytes: bytes) -> "_tfl.Model":
    if not _tfl.Model.ModelBufferHasIdentifier(model_bytes, 0):
        raise EdgekitError("not a TFLite model (missing TFL3 file identifier)")
    return _tfl.Model.GetRootAs(model_bytes, 0)


def _name(x) -> str | None:
    return x.decode("utf-8") if isinstance(x, bytes) else x


class _AlignedBufferT(_tfl.BufferT):
    """BufferT that packs its data 16-byte aligned, as the TFLite converter does."""

    def Pack(self, builder):  # noqa: N802 (flatbuffers naming)
        data = None
        if self.data is not None:
            raw = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(raw), _BUFFER_ALIGNMENT)
            builder.head -= len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            data = builder.EndVector()
        _tfl.BufferStart(builder)
        if data is not None:
            _tfl.BufferAddData(builder, data)
        _tfl.BufferAddOffset(builder, self.offset)
        _tfl.BufferAddSize(builder, self.size)
        return _tfl.BufferEnd(builder)


def _unpack_model(model_bytes: bytes) -> "_tfl.ModelT":
    """Object-API copy of the model with out-of-flatbuffer data pulled inline.

    Buffers/custom options stored by offset (converter's >2GB mode) live
    between the flatbuffer and the zip; they are inlined so that re-packing
    (which always drops anything after the flatbuffer) cannot lose them.
    """
    model = _tfl.ModelT.InitFromPackedBuf(model_bytes, 0)
    view = np.frombuffer(model_bytes, dtype=np.uint8)
    for buf in model.buffers or []:
        if buf.offset and buf.offset > 1:
            buf.data = view[buf.offset:buf.offset + buf.size]
            buf.offset = buf.size = 0
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            if op.largeCustomOptionsOffset and op.largeCustomOptionsOffset > 1:
                o, n = op.largeCustomOptionsOffset, op.largeCustomOptionsSize
                op.customOptions = view[o:o + n]
                op.largeCustomOptionsOffset = op.largeCustomOptionsSize = 0
    return model


def _pack_model(model: "_tfl.ModelT") -> bytes:
    for i, buf in enumerate(model.buffers or []):
        aligned = _AlignedBufferT()
        aligned.data, aligned.offset, aligned.size = buf.data, buf.offset, buf.size
        model.buffers[i] = aligned
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    out = bytes(builder.Output())
    if len(out) > _MAX_FLATBUFFER_SIZE:
        raise EdgekitError("model flatbuffer would exceed 2 GiB")
    return out


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #
def _as_floats(x, what: str) -> list[float] | None:
    if x is None:
        return None
    vals = [float(v) for v in (x if isinstance(x, (list, tuple, np.ndarray)) else [x])]
    if not vals:
        raise EdgekitError(f"{what} must not be empty")
    return vals


def mediapipe_compat_warnings(mean, std, input_type: int | None = None) -> list[str]:
    """Why MediaPipe Tasks would refuse metadata that the schema allows ([] if none)."""
    out = []
    for vals in (mean, std):
        if vals is not None and len(set(float(v) for v in vals)) > 1:
            out.append(MEDIAPIPE_PER_CHANNEL_WARNING)
            break
    if input_type == _tfl.TensorType.FLOAT32 and (mean is None or std is None):
        out.append(MEDIAPIPE_FLOAT_NO_NORM_WARNING)
    return out


def _validate_labels(labels: list[str], num_classes: int) -> bytes:
    labels = list(labels)
    if len(labels) != num_classes:
        raise EdgekitError(
            f"got {len(labels)} labels but the output tensor has {num_classes} classes")
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise EdgekitError(f"label {i} is not a string: {label!r}")
        if "\n" in label or "\r" in label:
            raise EdgekitError(f"label {i} contains a newline: {label!r}")
        if not label.strip():
            raise EdgekitError(f"label {i} is empty")
    # One label per line with a trailing newline, like the usual labels.txt.
    return ("\n".join(labels) + "\n").encode("utf-8")


def _tensor_info(model: "_tfl.ModelT", index: int):
    t = model.subgraphs[0].tensors[index]
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    return shape, t.type


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def _normalization(mean, std):
    """mean and std as float lists (or None), checked: given together, 1 or 3 values, std not zero."""
    mean, std = _as_floats(mean, "mean"), _as_floats(std, "std")
    if (mean is None) != (std is None):
        raise EdgekitError("mean and std must be given together")
    if mean is not None:
        if len(mean) != len(std):
            raise EdgekitError(f"mean has {len(mean)} values but std has {len(std)}")
        if len(mean) not in (1, 3):
            raise EdgekitError("mean/std need 1 value or 3 (one per RGB channel)")
        if any(s == 0 for s in std):
            raise EdgekitError("std values must be non-zero")
    return mean, std


def _classifier_tensors(model):
    """((input shape, type), (output shape, type)) of an image classifier; EdgekitError otherwise."""
    if not model.subgraphs:
        raise EdgekitError("model has no subgraph")
    sg = model.subgraphs[0]
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise EdgekitError("an image classifier needs exactly one input and one output "
                           f"tensor, got {len(sg.inputs)} and {len(sg.outputs)}")
    (in_shape, in_type), (out_shape, out_type) = _tensor_info(model, sg.inputs[0]), _tensor_info(model, sg.outputs[0])
    if len(in_shape) != 4 or in_shape[-1] not in (1, 3):
        raise EdgekitError(f"input must be an image [batch, height, width, 1 or 3], got {in_shape}")
    if not out_shape or out_shape[-1] < 1:
        raise EdgekitError(f"output must be [batch, num_classes], got {out_shape}")
    return (in_shape, in_type), (out_shape, out_type)


def _input_metadata(name, in_shape, in_type, mean, std, input_min, input_max):
    """The input tensor's metadata, as tflite-support's InputImageTensorMd writes it."""
    if input_min is None and input_max is None:
        if in_type == _tfl.TensorType.UINT8:
            input_min, input_max = [0.0], [255.0]
        elif in_type == _tfl.TensorType.FLOAT32 and mean is not None:
            input_min = [(0.0 - m) / s for m, s in zip(mean, std)]
            input_max = [(255.0 - m) / s for m, s in zip(mean, std)]
    inp = _md.TensorMetadataT()
    inp.name = name
    inp.content = _md.ContentT()
    inp.content.contentPropertiesType = _md.ContentProperties.ImageProperties
    inp.content.contentProperties = _md.ImagePropertiesT()
    inp.content.contentProperties.colorSpace = (_md.ColorSpaceType.RGB if in_shape[-1] == 3
                                                else _md.ColorSpaceType.GRAYSCALE)
    if mean is not None:
        unit = _md.ProcessUnitT()
        unit.optionsType = _md.ProcessUnitOptions.NormalizationOptions
        unit.options = _md.NormalizationOptionsT()
        unit.options.mean, unit.options.std = mean, std
        inp.processUnits = [unit]
    inp.stats = _md.StatsT()
    inp.stats.min = _as_floats(input_min, "input_min")
    inp.stats.max = _as_floats(input_max, "input_max")
    return inp


def _output_metadata(name, out_type, with_labels):
    """The output tensor's metadata, as tflite-support's ClassificationTensorMd writes it."""
    out = _md.TensorMetadataT()
    out.name = name
    out.content = _md.ContentT()
    out.content.contentPropertiesType = _md.ContentProperties.FeatureProperties
    out.content.contentProperties = _md.FeaturePropertiesT()
    out.stats = _md.StatsT()
    if out_type == _tfl.TensorType.UINT8:
        out.stats.min, out.stats.max = [0.0], [255.0]
    elif out_type == _tfl.TensorType.FLOAT32:
        out.stats.min, out.stats.max = [0.0], [1.0]
    if with_labels:
        f = _md.AssociatedFileT()
        f.name = LABELS_FILE_NAME
        f.description = LABELS_FILE_DESCRIPTION
        f.type = _md.AssociatedFileType.TENSOR_AXIS_LABELS
        out.associatedFiles = [f]
    return out


def write_classifier_metadata(
    model_bytes: bytes,
    *,
    name: str,
    description: str,
    version: str,
    author: str,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    input_min: float | list[float] | None = None,
    input_max: float | list[float] | None = None,
    labels: list[str] | None = None,
    input_name: str = "image",
    output_name: str = "probabilities",
    entries: dict[str, bytes] | None = None,
) -> bytes:
    """``model_bytes`` with image-classifier TFLITE_METADATA and the labels packed, as tflite-support writes.

    ``mean``/``std`` become NormalizationOptions (MediaPipe feeds float inputs ``(pixel - mean) / std``);
    per-channel values warn (MediaPipeCompatWarning). ``entries`` ({name: bytes}) are custom metadata
    entries written in the same pass; other entries and packed files are kept. The input and output
    tensors and the serving signature's names become ``input_name`` and ``output_name``."""
    _check_model(model_bytes)
    mean, std = _normalization(mean, std)

    packed = read_packed_files(model_bytes)
    model = _unpack_model(model_bytes)
    (in_shape, in_type), (out_shape, out_type) = _classifier_tensors(model)

    for msg in mediapipe_compat_warnings(mean, std, in_type):
        warnings.warn(msg, MediaPipeCompatWarning, stacklevel=2)

    inp = _input_metadata(input_name, in_shape, in_type, mean, std, input_min, input_max)
    out = _output_metadata(output_name, out_type, labels is not None)
    if labels is not None:
        packed[LABELS_FILE_NAME] = _validate_labels(labels, out_shape[-1])

    meta = _md.ModelMetadataT()
    meta.name, meta.description = name, description
    meta.version, meta.author = version, author
    subgraph = _md.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [inp]
    subgraph.outputTensorMetadata = [out]
    meta.subgraphMetadata = [subgraph]
    meta.minParserVersion = min_parser_version(meta)
    b = flatbuffers.Builder(0)
    b.Finish(meta.Pack(b), METADATA_FILE_IDENTIFIER)
    meta_bytes = np.frombuffer(bytes(b.Output()), dtype=np.uint8)

    for key, data in {METADATA_FIELD_NAME: meta_bytes, **(entries or {})}.items():
        _set_entry(model, key, data)
    _name_io(model, input_name, output_name)

    # Re-packing emits the flatbuffer only (any old zip is gone); re-append
    # every packed file once, with labels.txt replaced.
    return _append_zip(_pack_model(model), packed)


def without_entries(model_bytes, names):
    """The model without the Model.metadata entries ``names``; packed files are kept."""
    packed = read_packed_files(model_bytes)
    model = _unpack_model(model_bytes)
    model.metadata = [m for m in model.metadata or [] if _name(m.name) not in names]
    return _append_zip(_pack_model(model), packed)


def _set_entry(model, key, data):
    """Replace the Model.metadata entry ``key``'s buffer in place, or add a buffer and an entry."""
    model.metadata = model.metadata or []
    model.buffers = model.buffers or []
    entry = next((m for m in model.metadata if _name(m.name) == key), None)
    if entry is None:
        model.buffers.append(_tfl.BufferT())
        entry = _tfl.MetadataT()
        entry.name, entry.buffer = key, len(model.buffers) - 1
        model.metadata.append(entry)
    model.buffers[entry.buffer] = _tfl.BufferT()
    model.buffers[entry.buffer].data = np.frombuffer(bytes(data), dtype=np.uint8)


def _name_io(model, input_name, output_name):
    """Name the input and output tensors (and the serving signature's entries) as apps see them."""
    sg = model.subgraphs[0]
    sg.tensors[sg.inputs[0]].name = input_name
    sg.tensors[sg.outputs[0]].name = output_name
    for sig in model.signatureDefs or []:
        sig.signatureKey = "serving_default"
        for maps, name in ((sig.inputs, input_name), (sig.outputs, output_name)):
            if maps and len(maps) == 1:
                maps[0].name = name


def read_metadata_buffer(model_bytes: bytes) -> bytes | None:
    """Raw ModelMetadata flatbuffer of TFLITE_METADATA, or None."""
    model = _check_model(model_bytes)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _name(entry.Name()) == METADATA_FIELD_NAME:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def _tensor_dict(t) -> dict:
    d = {"name": _name(t.name), "min": None, "max": None}
    if t.stats is not None:
        d["min"] = None if t.stats.min is None else [float(v) for v in t.stats.min]
        d["max"] = None if t.stats.max is None else [float(v) for v in t.stats.max]
    d["associated_files"] = [
        {"name": _name(f.name), "description": _name(f.description),
         "type": _FILE_TYPE_NAMES.get(f.type, str(f.type))}
        for f in t.associatedFiles or []]
    return d


def read_classifier_metadata(model_bytes: bytes) -> dict | None:
    """TFLITE_METADATA as a plain dict (+ ``packed_files``), or None if absent."""
    buf = read_metadata_buffer(model_bytes)
    if buf is None:
        return None
    if not _md.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0):
        raise EdgekitError("TFLITE_METADATA buffer lacks the M001 identifier")
    meta = _md.ModelMetadataT.InitFromPackedBuf(buf, 0)
    result = {k: _name(getattr(meta, a)) for k, a in (
        ("name", "name"), ("description", "description"), ("version", "version"),
        ("author", "author"), ("license", "license"),
        ("min_parser_version", "minParserVersion"))}
    sg = (meta.subgraphMetadata or [None])[0]
    inputs = (sg.inputTensorMetadata or []) if sg else []
    outputs = (sg.outputTensorMetadata or []) if sg else []
    result["input"] = result["output"] = None
    if inputs:
        t = inputs[0]
        d = _tensor_dict(t)
        d["color_space"] = None
        if t.content is not None and isinstance(t.content.contentProperties, _md.ImagePropertiesT):
            d["color_space"] = _COLOR_SPACE_NAMES.get(t.content.contentProperties.colorSpace)
        d["mean"] = d["std"] = None
        for u in t.processUnits or []:
            if u.optionsType == _md.ProcessUnitOptions.NormalizationOptions:
                d["mean"] = [float(v) for v in u.options.mean]
                d["std"] = [float(v) for v in u.options.std]
        result["input"] = d
    if outputs:
        result["output"] = _tensor_dict(outputs[0])
    result["packed_files"] = read_packed_files(model_bytes)
    return result


def metadata_entry_names(model_bytes: bytes) -> list[str]:
    """Names of all Model.metadata entries (e.g. min_runtime_version, TFLITE_METADATA)."""
    model = _check_model(model_bytes)
    return [_name(model.Metadata(i).Name()) for i in range(model.MetadataLength())]
