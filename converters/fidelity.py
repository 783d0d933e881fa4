"""How far a converted model strays from the Keras model it came from, on the same images."""

import numpy as np


def fidelity(keras_probs, tflite_probs):
    """Compare two [N, classes] probability arrays: agreement, top-5 overlap, differences, cosine."""
    a = np.asarray(keras_probs, np.float64)
    b = np.asarray(tflite_probs, np.float64)
    k = min(5, a.shape[1])
    top_a = np.argsort(-a, axis=1)[:, :k]
    top_b = np.argsort(-b, axis=1)[:, :k]
    overlap = [len(set(x) & set(y)) / k for x, y in zip(top_a, top_b)]
    diff = np.abs(a - b)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return {
        "images": int(a.shape[0]),
        "top1_agreement": float(np.mean(top_a[:, 0] == top_b[:, 0])),
        "top5_overlap": float(np.mean(overlap)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "cosine": float(np.mean(cos)),
        # every class gets the same score on every image: agreement figures then measure nothing
        "degenerate_output": bool(np.all(b.max(1) - b.min(1) == 0)),
    }
