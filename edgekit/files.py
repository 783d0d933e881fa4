"""Writing outputs safely: never clobber without --force, never leave a half-written file."""

import contextlib
import os
import tempfile

from device_bench.errors import EdgekitError
from device_bench.output import check_new


def check_output(path, force):
    """Fail early, before any work, if ``path`` exists (without force) or cannot be written."""
    path = os.path.abspath(path)
    check_new(path, force)
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


def _remove(path):
    if os.path.exists(path):
        os.unlink(path)
