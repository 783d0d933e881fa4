"""Hiding native libraries' chatter on file descriptor 2 (XNNPACK's INFO line, TF's oneDNN notes).

Python-level logging settings cannot reach what C++ writes straight to fd 2, so the descriptor
itself is pointed at /dev/null for the duration. Set VERBOSE to let everything through.
"""

import contextlib
import os
import sys

VERBOSE = False


@contextlib.contextmanager
def quiet_stderr():
    """Silence native libraries' writes to fd 2 for the block, which Python logging cannot reach."""
    if VERBOSE:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
