"""Import TensorFlow and Keras on demand, with their start-up noise hidden unless --verbose."""

import os

from device_bench import silence
from device_bench.errors import EdgekitError
from device_bench.silence import quiet_stderr  # noqa: F401  (re-exported for the host side)


def set_verbose(verbose):
    """Apply --verbose: let TensorFlow's and native libraries' log output through instead of hiding it."""
    silence.VERBOSE = bool(verbose)


def import_tf():
    """Return (tensorflow, keras), imported quietly."""
    if not silence.VERBOSE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet_stderr():
            import tensorflow as tf
            import keras
    except ImportError as e:
        raise EdgekitError(f"this command needs TensorFlow and Keras ({e}): pip install 'edgekit-tflite[convert]'"
                           ) from None
    with quiet_stderr():
        if not silence.VERBOSE:
            tf.get_logger().setLevel("ERROR")
            import absl.logging
            absl.logging.set_verbosity(absl.logging.ERROR)
            keras.utils.disable_interactive_logging()
    return tf, keras
