"""ImageNet class names, through Keras's own download and cache (the file decode_predictions uses).

edgekit ships no copy: when Keras cannot fetch it (offline, not cached), bundles carry no labels.
"""

CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"


def imagenet_labels():
    """1000 class names in index order, or None if Keras cannot provide them."""
    import json
    try:
        from keras.utils import get_file
        path = get_file("imagenet_class_index.json", CLASS_INDEX_URL, cache_subdir="models",
                        file_hash="c2c37ea517e94d9795004a39431a14cb")
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        return [index[str(i)][1] for i in range(1000)]
    except Exception:
        return None
