"""Writing outputs safely: never replace one without --force, never leave half a file behind."""

import contextlib
import json
import os
import tempfile

from device_bench.errors import EdgekitError


def refuse_existing(path, force):
    """Refuse to replace an existing output unless ``force``: the one place this message is made."""
    if os.path.exists(path) and not force:
        raise EdgekitError(f"{path} already exists; pass --force to replace it")


def check_output(path, force):
    """Fail early, before any work, if ``path`` exists (without force) or cannot be written."""
    path = os.path.abspath(path)
    refuse_existing(path, force)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise EdgekitError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise EdgekitError(f"cannot write {path}: folder {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path, force):
    """Yield a temporary file path beside ``path``; move it into place only if the block succeeds."""
    path = check_output(path, force)
    parent, base = os.path.split(path)
    stem, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=ext, dir=parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as Keras want to create the file themselves
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise EdgekitError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise


def write_text_atomic(path, text):
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    with atomic_path(path, force=True) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def write_json_atomic(path, obj):
    """Write ``obj`` as indented JSON atomically, so readers never see a half-written file."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def _remove(path):
    if os.path.exists(path):
        os.unlink(path)
