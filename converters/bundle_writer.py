"""Writing a bundle folder atomically, with the manifest and labels also embedded in the .tflite."""

import hashlib
import os
import shutil
import tempfile

import numpy as np

from device_bench import manifest as mf
from device_bench.errors import EdgekitError
from device_bench.safe_write import refuse_existing, write_json_atomic


def sha256_of(path):
    """sha256 of a file, or of every file in a folder (SavedModel) in sorted order."""
    h = hashlib.sha256()
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)
    for name in files:
        with open(name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def embed_metadata(tflite_bytes, entries):
    """Return the model with {name: bytes} added to its Model.metadata list (replacing same names)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils as fbu
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils as fbu
    model = fbu.convert_bytearray_to_object(bytearray(tflite_bytes))
    for buf in model.buffers or []:
        # The LiteRT quantizer stores constants after the flatbuffer (offset/size, not data); rewriting
        # the flatbuffer would leave those offsets pointing past its end, so bring the data inline.
        if buf.offset and buf.offset > 1:
            buf.data = np.frombuffer(tflite_bytes, np.uint8, buf.size, buf.offset)
            buf.offset = buf.size = 0
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() not in entries]
    for name, data in entries.items():
        buf = schema.BufferT()
        buf.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buf)
        meta = schema.MetadataT()
        meta.name = name
        meta.buffer = len(model.buffers) - 1
        model.metadata.append(meta)
    return bytes(fbu.convert_object_to_bytearray(model))


def write_bundle(folder, tflite_bytes, manifest, labels=None, force=False):
    """Write NAME/{model.tflite, edgekit.json, labels.txt} via a temporary folder and a rename."""
    import json
    folder = os.path.abspath(folder)
    refuse_existing(folder, force)
    parent = os.path.dirname(folder)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.", dir=parent)
    except OSError as e:
        raise EdgekitError(f"cannot write {folder}: {e.strerror or e}") from None
    try:
        labels_text = "\n".join(labels) + "\n" if labels else None
        # The file size is part of the manifest, and the manifest is inside the file: embed a
        # fixed-width placeholder, then patch the final size into it (JSON allows trailing spaces).
        manifest = dict(manifest, file_size=0, labels=mf.LABELS_NAME if labels else None)
        placeholder = b'"file_size": 0' + b" " * 20
        text = json.dumps(manifest, sort_keys=True).encode().replace(b'"file_size": 0', placeholder, 1)
        entries = {mf.META_MANIFEST: text}
        if labels_text:
            entries[mf.META_LABELS] = labels_text.encode()
        data = embed_metadata(tflite_bytes, entries)
        if data.count(placeholder) != 1:
            raise EdgekitError(f"{folder}: could not place the manifest in the model file")
        manifest["file_size"] = len(data)
        data = data.replace(placeholder, f'"file_size": {len(data)}'.encode().ljust(len(placeholder)))
        mf.validate_manifest(manifest, f"{folder} (manifest being written)")
        with open(os.path.join(tmp, mf.MODEL_NAME), "wb") as f:
            f.write(data)
        write_json_atomic(os.path.join(tmp, mf.MANIFEST_NAME), manifest)
        if labels_text:
            with open(os.path.join(tmp, mf.LABELS_NAME), "w", encoding="utf-8") as f:
                f.write(labels_text)
        os.chmod(tmp, 0o755)
        if os.path.exists(folder):
            old = folder + f".old{os.getpid()}"
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EdgekitError(f"cannot write {folder}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
