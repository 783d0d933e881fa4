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


_AT_EXIT = []


def silence_at_exit():
    """Point fd 2 at /dev/null once Python has finished (after atexit's other work), so that a native
    library's teardown chatter (LiteRT logs each accelerator it destroys) does not follow the output."""
    if VERBOSE or _AT_EXIT:
        return
    import atexit

    def hush():
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)

    _AT_EXIT.append(hush)
    atexit.register(hush)
