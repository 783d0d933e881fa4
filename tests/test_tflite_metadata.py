"""Tests for tflite_metadata (run: /work/main/.venv/bin/python -m pytest -q).

Models are built directly with the LiteRT schema object API (a single RESHAPE
op), so the suite needs no TensorFlow and runs in about a second.
"""

import io
import struct
import warnings
import zipfile

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as s
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils

from device_bench import metadata_schema_py_generated as md
from device_bench import tflite_metadata as tm
from device_bench.errors import EdgekitError

LABELS = [f"class_{i}" for i in range(12)]
META = dict(name="m", description="d", version="v1", author="a")
MANIFEST = b'{"edgekit": "manifest", "bytes": "\x00\x01\x02"}'


def _buffer(data: bytes | None = None) -> "s.BufferT":
    b = s.BufferT()
    if data is not None:
        b.data = np.frombuffer(data, np.uint8)
    return b


def _tensor(name, shape, ttype, buffer):
    t = s.TensorT()
    t.name, t.shape, t.type, t.buffer = name, shape, ttype, buffer
    return t


def make_model(ttype=s.TensorType.FLOAT32, shape_buffer_offset=False) -> bytes:
    """[1,2,2,3] image -> RESHAPE -> [1,12] 'scores', with the converter's usual extras.

    Has a min_runtime_version entry, an edgekit_manifest entry and a
    serving_default signature (image -> probabilities), like edgekit models.
    """
    m = s.ModelT()
    m.version = 3
    opcode = s.OperatorCodeT()
    opcode.builtinCode = opcode.deprecatedBuiltinCode = s.BuiltinOperator.RESHAPE
    opcode.version = 1
    m.operatorCodes = [opcode]
    shape_bytes = np.array([1, 12], np.int32).tobytes()
    m.buffers = [_buffer(), _buffer(), _buffer(shape_bytes), _buffer(),
                 _buffer(b"1.5.0\0\0\0\0\0\0\0\0\0\0\0"), _buffer(MANIFEST)]
    sg = s.SubGraphT()
    sg.tensors = [_tensor("serving_default_image:0", [1, 2, 2, 3], ttype, 1),
                  _tensor("shape", [2], s.TensorType.INT32, 2),
                  _tensor("StatefulPartitionedCall:0", [1, 12], ttype, 3)]
    sg.inputs, sg.outputs = [0], [2]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    sg.operators = [op]
    m.subgraphs = [sg]
    m.metadata = []
    for name, buf in (("min_runtime_version", 4), ("edgekit_manifest", 5)):
        e = s.MetadataT()
        e.name, e.buffer = name, buf
        m.metadata.append(e)
    sig = s.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    ti, to = s.TensorMapT(), s.TensorMapT()
    ti.name, ti.tensorIndex, to.name, to.tensorIndex = "image", 0, "probabilities", 2
    sig.inputs, sig.outputs = [ti], [to]
    m.signatureDefs = [sig]
    if not shape_buffer_offset:
        return bytes(flatbuffer_utils.convert_object_to_bytearray(m))
    # Converter's large-model layout: buffer data stored after the flatbuffer.
    m.buffers[2] = _buffer()
    m.buffers[2].offset, m.buffers[2].size = 1 << 40, len(shape_bytes)  # placeholder
    fb = bytes(flatbuffer_utils.convert_object_to_bytearray(m))
    start = (len(fb) + 15) // 16 * 16
    m.buffers[2].offset = start
    fb = bytes(flatbuffer_utils.convert_object_to_bytearray(m))
    assert (len(fb) + 15) // 16 * 16 == start
    return fb.ljust(start, b"\0") + shape_bytes


def run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    runner = Interpreter(model_content=model_bytes).get_signature_runner("serving_default")
    return runner(image=x)["probabilities"]


def entries(model_bytes):
    model = s.Model.GetRootAs(model_bytes, 0)
    out = {}
    for i in range(model.MetadataLength()):
        e = model.Metadata(i)
        out.setdefault(e.Name().decode(), []).append(
            model.Buffers(e.Buffer()).DataAsNumpy().tobytes())
    return out


def write(model, **kw):
    args = dict(META, mean=[0.0], std=[1.0], labels=LABELS)
    args.update(kw)
    return tm.write_classifier_metadata(model, **args)


# --------------------------------------------------------------------------- #
def test_round_trip_float_model():
    out = write(make_model())
    d = tm.read_classifier_metadata(out)
    assert {k: d[k] for k in ("name", "description", "version", "author")} == META
    assert d["min_parser_version"] == "1.0.0"
    assert d["input"] == {"name": "image", "color_space": "RGB", "mean": [0.0], "std": [1.0],
                          "min": [0.0], "max": [255.0], "associated_files": []}
    assert d["output"]["name"] == "probabilities"
    assert d["output"]["min"] == [0.0] and d["output"]["max"] == [1.0]
    assert d["output"]["associated_files"] == [{
        "name": "labels.txt", "type": "TENSOR_AXIS_LABELS",
        "description": tm.LABELS_FILE_DESCRIPTION}]
    assert d["packed_files"] == {"labels.txt": ("\n".join(LABELS) + "\n").encode()}


def test_round_trip_uint8_model_without_normalization():
    out = write(make_model(s.TensorType.UINT8), mean=None, std=None)
    d = tm.read_classifier_metadata(out)
    assert d["input"]["mean"] is None and d["input"]["std"] is None
    assert (d["input"]["min"], d["input"]["max"]) == ([0.0], [255.0])
    assert (d["output"]["min"], d["output"]["max"]) == ([0.0], [255.0])
    x = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(run(out, x), x.reshape(1, 12))


def test_stats_follow_normalization_and_explicit_values_win():
    d = tm.read_classifier_metadata(write(make_model(), mean=[127.5], std=[127.5]))
    assert (d["input"]["min"], d["input"]["max"]) == ([-1.0], [1.0])
    d = tm.read_classifier_metadata(write(make_model(), input_min=-3.0, input_max=[4.0]))
    assert (d["input"]["min"], d["input"]["max"]) == ([-3.0], [4.0])


def test_metadata_buffer_is_valid_m001_flatbuffer():
    buf = tm.read_metadata_buffer(write(make_model()))
    assert md.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0)
    meta = md.ModelMetadata.GetRootAs(buf, 0)
    assert meta.SubgraphMetadataLength() == 1
    norm = meta.SubgraphMetadata(0).InputTensorMetadata(0).ProcessUnits(0)
    assert norm.OptionsType() == md.ProcessUnitOptions.NormalizationOptions


def test_no_metadata_returns_none():
    assert tm.read_classifier_metadata(make_model()) is None
    assert tm.read_packed_files(make_model()) == {}


def test_preserves_other_entries_signatures_and_runs():
    src = make_model()
    out = write(src)
    e = entries(out)
    assert e["edgekit_manifest"] == [MANIFEST]
    assert e["min_runtime_version"] == entries(src)["min_runtime_version"]
    assert len(e["TFLITE_METADATA"]) == 1
    assert tm.metadata_entry_names(out) == [
        "min_runtime_version", "edgekit_manifest", "TFLITE_METADATA"]
    sigs = Interpreter(model_content=out).get_signature_list()
    assert sigs == {"serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}}
    x = np.random.default_rng(0).random((1, 2, 2, 3), dtype=np.float32)
    np.testing.assert_array_equal(run(out, x), run(src, x))


def test_rewrite_twice_replaces_without_loss_or_duplicates():
    once = write(make_model(), labels=[label.upper() for label in LABELS])
    twice = write(once)
    thrice = write(twice)
    assert thrice == twice  # deterministic and idempotent
    e = entries(twice)
    assert [len(v) for v in e.values()] == [1, 1, 1]
    assert e["edgekit_manifest"] == [MANIFEST]
    assert s.Model.GetRootAs(twice, 0).BuffersLength() == s.Model.GetRootAs(once, 0).BuffersLength()
    with zipfile.ZipFile(io.BytesIO(twice)) as zf:
        assert zf.namelist() == ["labels.txt"]
    assert tm.read_classifier_metadata(twice)["packed_files"]["labels.txt"].decode().split() == LABELS
    assert len(twice) == len(once)


def test_rewrite_keeps_other_packed_files():
    with_extra = write(make_model())
    buf = io.BytesIO(with_extra)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a") as zf:  # what tflite-support's populator does
        zf.writestr("vocab.txt", b"a\nb\n")
    out = write(buf.getvalue(), labels=LABELS[::-1])
    packed = tm.read_packed_files(out)
    assert sorted(packed) == ["labels.txt", "vocab.txt"]
    assert packed["vocab.txt"] == b"a\nb\n"
    assert packed["labels.txt"].decode().split() == LABELS[::-1]


def test_zip_is_stored_with_absolute_offsets_after_the_flatbuffer():
    """tflite-support/MediaPipe (minizip) need ZIP_STORED and real offsets."""
    out = write(make_model())
    flatbuffer_len = len(write(make_model(), labels=None))
    with zipfile.ZipFile(io.BytesIO(out)) as zf:
        (info,) = zf.infolist()
        assert info.compress_type == zipfile.ZIP_STORED
        assert info.header_offset >= flatbuffer_len
        name_len, extra_len = struct.unpack("<HH", out[info.header_offset + 26:info.header_offset + 30])
        data_at = info.header_offset + 30 + name_len + extra_len
        assert out[data_at:data_at + info.file_size] == zf.read("labels.txt")
    eocd = out.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", out[eocd + 12:eocd + 20])
    assert cd_offset + cd_size == eocd and out[cd_offset:cd_offset + 4] == b"PK\x01\x02"


def test_flatbuffer_utils_round_trip_drops_the_zip():
    """Why re-serializing needs care: the plain object-API round trip loses labels."""
    out = write(make_model())
    lost = bytes(flatbuffer_utils.convert_object_to_bytearray(
        flatbuffer_utils.convert_bytearray_to_object(out)))
    assert tm.read_packed_files(lost) == {}
    assert tm.read_classifier_metadata(lost)["output"]["associated_files"]  # now dangling


def test_weight_buffers_are_16_byte_aligned():
    out = write(make_model())
    base = np.frombuffer(out, np.uint8).ctypes.data
    model = s.Model.GetRootAs(out, 0)
    offsets = [model.Buffers(i).DataAsNumpy().ctypes.data - base
               for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    assert len(offsets) == 4 and all(o % 16 == 0 for o in offsets)


def test_buffer_stored_by_offset_is_inlined():
    src = make_model(shape_buffer_offset=True)
    x = np.ones((1, 2, 2, 3), np.float32)
    out = write(src)
    np.testing.assert_array_equal(run(out, x), run(src, x))
    assert tm.read_packed_files(out) == {"labels.txt": ("\n".join(LABELS) + "\n").encode()}


@pytest.mark.parametrize("labels, match", [
    (LABELS[:-1], "11 labels but the output tensor has 12"),
    (LABELS[:-1] + ["bad\nlabel"], "newline"),
    (LABELS[:-1] + ["bad\rlabel"], "newline"),
    (LABELS[:-1] + ["  "], "empty"),
])
def test_label_validation(labels, match):
    with pytest.raises(EdgekitError, match=match):
        write(make_model(), labels=labels)


@pytest.mark.parametrize("kw, match", [
    (dict(mean=[0.0], std=None), "together"),
    (dict(mean=[0.0, 1.0], std=[1.0, 1.0]), "1 value or 3"),
    (dict(mean=[0.0], std=[1.0, 1.0]), "mean has 1 values but std has 2"),
    (dict(mean=[0.0], std=[0.0]), "non-zero"),
])
def test_normalization_validation(kw, match):
    with pytest.raises(EdgekitError, match=match):
        write(make_model(), **kw)


def test_not_a_tflite_model():
    with pytest.raises(EdgekitError, match="TFL3"):
        write(b"\0" * 64)


def test_per_channel_normalization_is_written_with_a_warning():
    with pytest.warns(tm.MediaPipeCompatWarning, match="per-channel"):
        out = write(make_model(), mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0])
    d = tm.read_classifier_metadata(out)["input"]
    assert d["mean"] == [1.0, 2.0, 3.0] and d["std"] == [4.0, 5.0, 6.0]
    assert d["min"] == pytest.approx([-0.25, -0.4, -0.5])
    assert tm.mediapipe_compat_warnings([1, 2, 3], [1, 1, 1]) == [tm.MEDIAPIPE_PER_CHANNEL_WARNING]


def test_equal_three_channel_values_and_uint8_give_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write(make_model(), mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
        write(make_model(s.TensorType.UINT8), mean=None, std=None)


def test_float_input_without_normalization_warns():
    with pytest.warns(tm.MediaPipeCompatWarning, match="NormalizationOptions"):
        write(make_model(), mean=None, std=None)


def _meta_with(mutate) -> "md.ModelMetadataT":
    buf = tm.read_metadata_buffer(write(make_model()))
    m = md.ModelMetadataT.InitFromPackedBuf(buf, 0)
    mutate(m)
    return m


def _add_file(m, ftype=md.AssociatedFileType.DESCRIPTIONS, version=None):
    f = md.AssociatedFileT()
    f.name, f.type, f.version = "f.txt", ftype, version
    m.subgraphMetadata[0].outputTensorMetadata[0].associatedFiles.append(f)


def _set(attr, value):
    return lambda m: setattr(m.subgraphMetadata[0], attr, value)


@pytest.mark.parametrize("mutate, expected", [
    (lambda m: None, "1.0.0"),
    (lambda m: _add_file(m, md.AssociatedFileType.VOCABULARY), "1.0.1"),
    (lambda m: _add_file(m, md.AssociatedFileType.SCANN_INDEX_FILE), "1.4.0"),
    (lambda m: _add_file(m, version="2"), "1.4.1"),
    (_set("inputProcessUnits", []), "1.1.0"),
    (_set("outputTensorGroups", []), "1.2.0"),
    (_set("customMetadata", []), "1.5.0"),
])
def test_min_parser_version_matches_tflite_support_table(mutate, expected):
    # Same cases are checked against tflite-support's C++ code in mp_check.py.
    assert tm.min_parser_version(_meta_with(mutate)) == expected


def test_written_min_parser_version_is_recomputed():
    d = tm.read_classifier_metadata(write(make_model()))
    assert d["min_parser_version"] == "1.0.0"
    b = flatbuffers.Builder(0)
    m = _meta_with(_set("customMetadata", []))
    b.Finish(m.Pack(b), b"M001")
    assert tm.min_parser_version(md.ModelMetadataT.InitFromPackedBuf(bytes(b.Output()), 0)) == "1.5.0"
