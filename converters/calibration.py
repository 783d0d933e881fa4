"""Calibration images for int8, through the same preprocessing the device uses to classify."""

import os

import numpy as np

from converters.progress import to_stderr
from device_bench.errors import EdgekitError
from device_bench.images import list_images, load_input
from device_bench.options import DEFAULT_CALIBRATION_COUNT


def load_calibration(folder, input_shape, preprocessing, count=DEFAULT_CALIBRATION_COUNT, warn=to_stderr):
    """Up to ``count`` preprocessed [1,H,W,C] float32 batches; undecodable files are named and skipped."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise EdgekitError(f"calibration folder {folder} does not exist")
    paths = list_images([folder])
    if not paths:
        raise EdgekitError(f"calibration folder {folder} holds no image files")
    batches, used, skipped = [], [], []
    for path in paths:
        if len(batches) >= count:
            break
        try:
            batches.append(load_input(path, input_shape, preprocessing).astype(np.float32))
            used.append(path)
        except EdgekitError as e:
            skipped.append(str(e))
    for reason in skipped:
        warn(f"skipped calibration image {reason}")
    if not batches:
        raise EdgekitError(f"calibration folder {folder} holds no decodable image "
                           f"({len(skipped)} skipped: {'; '.join(skipped[:3])})")
    return batches, used
