"""A labelled folder of images (one subfolder per class) as training and held-out arrays.

The folder is checked, listed and split before any model is built, so a bad dataset fails in a
second. Pixels are read with device_bench.images, the code the device runs, so a model trains on
exactly the pixels it will see in a phone or a Pi.
"""

import os
from dataclasses import dataclass

import numpy as np

from device_bench.errors import EdgekitError
from device_bench.images import IMAGE_EXTENSIONS, list_images, load_input


@dataclass
class Listing:
    """A dataset folder's classes and its stratified split into training and held-out images."""
    root: str
    labels: list
    train: list  # [(path, class index)]
    val: list
    seed: int
    val_split: float

    def counts(self):
        """Images per split, for records and progress lines."""
        return {"train": len(self.train), "val": len(self.val), "classes": len(self.labels)}


def list_dataset(root, val_split=0.2, seed=0):
    """Check and list class folders, then split each class with a fixed seed (stratified)."""
    root = os.path.abspath(os.fspath(root))
    if not os.path.exists(root):
        raise EdgekitError(f"{root}: no such dataset folder")
    if not os.path.isdir(root):
        raise EdgekitError(f"{root}: not a folder (expected one subfolder per class)")
    if not 0 < val_split < 1:
        raise EdgekitError(f"--val-split must be between 0 and 1 (exclusive), got {val_split}")
    labels = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if len(labels) < 2:
        found = f"only one class folder ({labels[0]})" if labels else "no class folders"
        raise EdgekitError(f"{root}: {found}; a classifier needs at least 2 classes, one subfolder each")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for index, name in enumerate(labels):
        paths = list_images([os.path.join(root, name)])
        if not paths:
            raise EdgekitError(f"{os.path.join(root, name)}: class folder with no images "
                               f"(extensions: {', '.join(IMAGE_EXTENSIONS)})")
        if len(paths) < 2:
            raise EdgekitError(f"{os.path.join(root, name)}: one image; each class needs at least 2 "
                               f"(one to train on, one to hold out)")
        order = rng.permutation(len(paths))
        held = max(1, int(round(len(paths) * val_split)))
        val += [(paths[i], index) for i in sorted(order[:held])]
        train += [(paths[i], index) for i in sorted(order[held:])]
    return Listing(root=root, labels=labels, train=train, val=val, seed=seed, val_split=val_split)


def load_arrays(items, input_shape, prep, warn):
    """Images as one float32 [N, H, W, C] array and their class indices; unreadable files are skipped, each
    with a ``warn`` line (the CLI's progress: stderr, since stdout carries --json)."""
    xs, ys = [], []
    for path, index in items:
        try:
            xs.append(load_input(path, [1, *input_shape], prep)[0])
        except EdgekitError as e:
            warn(f"warning: skipped {e}")
            continue
        ys.append(index)
    if not xs:
        raise EdgekitError(f"none of the {len(items)} images could be read")
    return np.stack(xs), np.asarray(ys, np.int64)
