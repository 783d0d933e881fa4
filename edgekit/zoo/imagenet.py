"""ImageNet class names, from Keras's own class index (the file decode_predictions downloads and
caches). edgekit ships no copy: when Keras cannot fetch it, bundles carry no labels."""

import numpy as np


def imagenet_labels():
    """1000 class names in index order, or None if Keras cannot provide them."""
    from edgekit.tf_import import import_tf, quiet_stderr
    _, keras = import_tf()
    try:
        with quiet_stderr():
            # scores that fall with the index: decode_predictions then lists every class in index order
            decoded = keras.applications.imagenet_utils.decode_predictions(np.arange(1000, 0, -1, dtype=np.float32)[None], top=1000)[0]
    except Exception:
        return None
    return [name for _, name, _ in decoded]
