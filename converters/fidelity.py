"""How far a converted model strays from the model it came from, on the same images; and whether the
model's outputs say anything at all (random weights give near-constant outputs, which two builds agree on
whatever they compute)."""

import numpy as np

# The reference is degenerate when its predictions carry (almost) no information: their mean entropy is at
# least this share of log(classes), or every one of at least MIN_IMAGES images gets the same top class.
NEAR_UNIFORM = 0.99
MIN_IMAGES = 5


def fidelity(reference, build):
    """Compare two [N, classes] output arrays (probabilities or logits): top-1 agreement, top-5 overlap,
    differences, and the cosine of the centred outputs; flags a degenerate reference."""
    a = np.asarray(reference, np.float64)
    b = np.asarray(build, np.float64)
    k = min(5, a.shape[1])
    top_a = np.argsort(-a, axis=1)[:, :k]
    top_b = np.argsort(-b, axis=1)[:, :k]
    overlap = [len(set(x) & set(y)) / k for x, y in zip(top_a, top_b)]
    diff = np.abs(a - b)
    entropy = mean_entropy(a)
    share = top_class_share(top_a[:, 0])
    return {
        "images": int(a.shape[0]),
        "top1_agreement": float(np.mean(top_a[:, 0] == top_b[:, 0])),
        "top5_overlap": float(np.mean(overlap)),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "cosine": centred_cosine(a, b),
        "entropy": entropy,
        "top_class_share": share,
        # agreement figures measure nothing when the reference says the same thing of every image (or the
        # build gives every class the same score)
        "degenerate_output": bool(np.all(a.max(1) == a.min(1)) or np.all(b.max(1) == b.min(1))
                                  or entropy >= NEAR_UNIFORM
                                  or (a.shape[0] >= MIN_IMAGES and a.shape[1] > 2 and share == 1.0)),
    }


def centred_cosine(a, b):
    """Mean cosine between the rows of ``a`` and ``b``, each with its own mean taken away: on raw
    probabilities two near-uniform outputs score ~1 whatever they rank, centred they score what their
    differences from uniform share (and logits, shift-invariant under softmax, lose their shift)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(norms > 0, (a * b).sum(1) / np.maximum(norms, 1e-300), 0.0)
    return float(np.mean(cos))


def as_probabilities(outputs):
    """Rows of ``outputs`` as probabilities: as they are when they already are (non-negative, summing to
    about 1), else through a softmax (logits)."""
    x = np.asarray(outputs, np.float64)
    if np.all(x >= 0) and np.allclose(x.sum(1), 1.0, atol=0.02):
        return x / x.sum(1, keepdims=True)
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def mean_entropy(outputs):
    """Mean entropy of the predictions as a share of log(classes): 1.0 for uniform outputs, 0 for certain ones."""
    p = as_probabilities(outputs)
    if p.shape[1] < 2:
        return 0.0
    h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    return float(np.mean(h) / np.log(p.shape[1]))


def top_class_share(top1):
    """The share of images whose top class is the most common one."""
    return float(np.bincount(np.asarray(top1)).max() / len(top1))
