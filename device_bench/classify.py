"""Top-k labels for images, on the host or on the device."""

import numpy as np

from device_bench.errors import EdgekitError
from device_bench.images import IMAGE_EXTENSIONS, list_images
from device_bench.records import ImagePrediction, Predictions


def _check_top_k(top_k, predictor):
    if top_k < 1 or top_k > predictor.num_outputs:
        raise EdgekitError(f"--top-k must be between 1 and the number of classes ({predictor.num_outputs}), "
                           f"got {top_k}")


def classify(predictor, paths, top_k=None):
    """Predictions with one ImagePrediction per image: the top k {"label", "index", "score"}, or an error.

    ``top_k`` defaults to 5, or every class when the model has fewer; a value given is checked."""
    top_k = min(5, predictor.num_outputs) if top_k is None else top_k
    _check_top_k(top_k, predictor)
    images = list_images(paths)
    if not images:
        raise EdgekitError(f"{', '.join(map(str, paths))}: no images found (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    out = []
    for path in images:
        try:
            probs = predictor.predict(predictor.load(path))
        except EdgekitError as e:
            out.append(ImagePrediction(image=path, error=str(e)))
            continue
        top = np.argsort(-probs, kind="stable")[:top_k]
        out.append(ImagePrediction(image=path, predictions=[
            {"label": predictor.label(int(i)), "index": int(i), "score": float(probs[i])} for i in top]))
    return Predictions(model=predictor.ref.name, items=out)
