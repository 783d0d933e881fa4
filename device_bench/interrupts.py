"""Ctrl-C and SIGTERM end a command cleanly: the first one becomes KeyboardInterrupt, so every `with`
block (temporary folders, half-written outputs) unwinds, and later ones are ignored while it does.

Native code (TensorFlow's export, say) can turn the interrupt into another exception on its way
out; `interrupted()` tells the CLIs that the user, not a bug, ended the run."""

import os
import signal
import sys

_received = []


def _handler(signum, frame):
    _received.append(signum)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    raise KeyboardInterrupt


def install():
    """Route SIGINT and SIGTERM through the clean path (call once, from a CLI's main)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)


def finished():
    """The command's work is done and printed: a signal from now on (during the runtime's teardown at exit)
    has nothing left to stop, so it is ignored instead of ending the process with -2 and no message."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def quiet_broken_pipe():
    """The reader of stdout left (`... --json | head -1`): as Python's docs advise, point stdout at devnull so
    that the flush at exit does not fail again; the caller then exits quietly."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def interrupted():
    return bool(_received)
