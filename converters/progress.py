"""Where converters' progress lines and warnings go when the caller gives no function of its own: stderr,
so that stdout carries only what a command prints for the user (tables, --json)."""

import sys


def to_stderr(message):
    """Print one progress line or warning to stderr."""
    print(message, file=sys.stderr, flush=True)
