"""Writing a bundle folder atomically. Its model.tflite carries the standard TFLite Metadata (what
MediaPipe Tasks, the Task Library and Android Studio read, with the labels packed in) and edgekit's
manifest, so a lone model file still says what it is."""

import hashlib
import json
import os
import shutil
import tempfile
import warnings

from converters.progress import to_stderr
from device_bench import __version__
from device_bench import manifest as mf
from device_bench.errors import EdgekitError
from device_bench.safe_write import refuse_existing, write_json_atomic
from device_bench.tflite_metadata import write_classifier_metadata


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


def _normalization(prep):
    """NormalizationOptions for the metadata: one value when every channel shares it, as MediaPipe needs."""
    mean, std = prep["mean"], prep["std"]
    if len(set(mean)) == 1 and len(set(std)) == 1:
        return mean[:1], std[:1]
    return mean, std


def model_file(tflite_bytes, manifest, labels=None, warn=None):
    """The model.tflite bytes: standard metadata, packed labels and the manifest, whose file_size
    field is the size of these very bytes. Returns (bytes, manifest with the final file_size)."""
    # The file size is part of the manifest, and the manifest is inside the file: embed a
    # fixed-width placeholder, then patch the final size into it (JSON allows trailing spaces).
    manifest = dict(manifest, file_size=0, labels=mf.LABELS_NAME if labels else None)
    placeholder = b'"file_size": 0' + b" " * 20
    text = json.dumps(manifest, sort_keys=True).encode().replace(b'"file_size": 0', placeholder, 1)
    mean, std = _normalization(manifest["input"]["preprocessing"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = write_classifier_metadata(
            tflite_bytes, name=manifest["name"], version=__version__, author=f"edgekit {__version__}",
            description=f"{manifest['name']}: an image classifier ({manifest['precision']}) built by edgekit "
                        f"{__version__}; input {'x'.join(map(str, manifest['input']['shape'][1:]))} "
                        f"{manifest['input']['dtype']}", mean=mean, std=std, labels=labels,
            entries={mf.META_MANIFEST: text})
    for w in caught:
        (warn or to_stderr)(f"{manifest['name']}: {w.message}")
    if data.count(placeholder) != 1:
        raise EdgekitError(f"{manifest['name']}: could not place the manifest in the model file")
    manifest["file_size"] = len(data)
    return data.replace(placeholder, f'"file_size": {len(data)}'.encode().ljust(len(placeholder))), manifest


def write_bundle(folder, tflite_bytes, manifest, labels=None, force=False, warn=None):
    """Write NAME/{model.tflite, edgekit.json, labels.txt} via a temporary folder and a rename."""
    folder = os.path.abspath(folder)
    refuse_existing(folder, force)
    data, manifest = model_file(tflite_bytes, manifest, labels, warn)
    manifest["model_sha256"] = hashlib.sha256(data).hexdigest()  # edgekit.json only: checked on every load
    mf.validate_manifest(manifest, f"{folder} (manifest being written)")
    parent = os.path.dirname(folder)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.", dir=parent)
    except OSError as e:
        raise EdgekitError(f"cannot write {folder}: {e.strerror or e}") from None
    try:
        with open(os.path.join(tmp, mf.MODEL_NAME), "wb") as f:
            f.write(data)
        write_json_atomic(os.path.join(tmp, mf.MANIFEST_NAME), manifest)
        if labels:
            with open(os.path.join(tmp, mf.LABELS_NAME), "w", encoding="utf-8") as f:
                f.write("\n".join(labels) + "\n")
        os.chmod(tmp, 0o755)
        _replace(tmp, folder)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EdgekitError(f"cannot write {folder}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _replace(tmp, folder):
    """Move the finished folder into place; an old bundle is removed only after the new one is in."""
    if os.path.exists(folder):
        old = folder + f".old{os.getpid()}"
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
