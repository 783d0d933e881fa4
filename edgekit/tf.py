"""Import TensorFlow and Keras on demand, with their start-up noise hidden unless --verbose.

TensorFlow's C++ side writes oneDNN and absl lines straight to file descriptor 2 during import,
before any Python logging setting applies, so the only reliable way to hide them is to point fd 2
at /dev/null for the duration of the import.
"""

import contextlib
import os
import sys

VERBOSE = False


@contextlib.contextmanager
def quiet_stderr():
    """Silence fd 2 (C++ logs included) unless edgekit runs with --verbose."""
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


def import_tf():
    """Return (tensorflow, keras), imported quietly."""
    if not VERBOSE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow as tf
        import keras
        if not VERBOSE:
            tf.get_logger().setLevel("ERROR")
            import absl.logging
            absl.logging.set_verbosity(absl.logging.ERROR)
            keras.utils.disable_interactive_logging()
    return tf, keras
