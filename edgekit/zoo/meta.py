"""What a trained or compressed model carries inside its .keras file: preprocessing, labels, provenance.

A .keras file is a zip; edgekit adds one member, ``edgekit.json``, beside Keras's own. Keras ignores
it (the model still loads with ``safe_mode=True`` anywhere), and `edgekit convert` reads it, so a
model from `edgekit train` or `edgekit compress` converts without --mean, --std or --labels.
Reading it needs only the standard library.
"""

import json
import os
import zipfile

from device_bench.errors import EdgekitError
from device_bench.safe_write import atomic_path, check_output

META_NAME = "edgekit.json"
META_FORMAT = 1


def read_model_meta(path):
    """The edgekit.json inside a .keras file, or None when the file has none (or is no zip)."""
    path = os.fspath(path)
    if not path.endswith(".keras") or not os.path.isfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            if META_NAME not in z.namelist():
                return None
            meta = json.loads(z.read(META_NAME).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as e:
        raise EdgekitError(f"{path}: cannot read its {META_NAME} ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise EdgekitError(f"{path}: {META_NAME} is not edgekit model metadata of format {META_FORMAT}")
    return meta


def check_keras_output(path, force=False):
    """The absolute output path of a .keras file, checked before any work: its suffix, and that it can be
    written (an existing file only with ``force``)."""
    if not os.fspath(path).endswith(".keras"):
        raise EdgekitError(f"output must end in .keras, got {os.fspath(path)}")
    return check_output(path, force)


def save_model(model, path, meta, force=False):
    """Save ``model`` as a .keras file carrying ``meta`` (preprocessing, labels, ...), atomically."""
    path = check_keras_output(path, force)
    with atomic_path(path, force) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(META_NAME, json.dumps(dict(meta, format=META_FORMAT), indent=2))
    return path
