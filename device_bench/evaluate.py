"""Accuracy on a labelled dataset (class folders or a CSV), on the host or on the device."""

import csv
import os
import time

import numpy as np

from device_bench.errors import EdgekitError
from device_bench.images import IMAGE_EXTENSIONS, list_images
from device_bench.records import EvalResult


def read_dataset(dataset, labels):
    """[(image path, class index)] from class folders (named after labels) or a CSV of path,label."""
    dataset = os.fspath(dataset)
    if not os.path.exists(dataset):
        raise EdgekitError(f"{dataset}: no such dataset folder or CSV")
    lookup = {}
    for i, name in enumerate(labels or []):
        lookup.setdefault(name, i)
        lookup.setdefault(name.lower(), i)

    def index_of(name):
        if name in lookup:
            return lookup[name]
        if name.lower() in lookup:
            return lookup[name.lower()]
        if not labels and name.isdigit():
            return int(name)
        return None

    items, unknown = [], set()
    if not os.path.isdir(dataset):
        base = os.path.dirname(os.path.abspath(dataset))
        for path, name in _csv_rows(dataset):
            idx = index_of(name)
            if idx is None:
                unknown.add(name)
            else:
                items.append((os.path.join(base, path), idx))
    else:
        try:
            entries = os.listdir(dataset)
        except OSError as e:
            raise EdgekitError(f"{dataset}: cannot read this folder ({e.strerror})") from None
        # a class folder behind a broken or looping link stays in, to become an error row
        classes = sorted(d for d in entries if os.path.isdir(os.path.join(dataset, d)) or
                         (os.path.islink(os.path.join(dataset, d)) and not os.path.exists(os.path.join(dataset, d))))
        if not classes:
            raise EdgekitError(f"{dataset}: no class folders inside (expected one subfolder per class, named "
                               f"after the labels)")
        for name in classes:
            idx = index_of(name)
            if idx is None:
                unknown.add(name)
                continue
            items += [(p, idx) for p in list_images([os.path.join(dataset, name)])]
    if unknown and not items:
        known = ", ".join((labels or [])[:5])
        raise EdgekitError(f"{dataset}: class names {', '.join(sorted(unknown)[:5])} match no label of the model"
                           + (f" (labels begin: {known}, ...)" if known else " (the model has no labels)"))
    if unknown:
        raise EdgekitError(f"{dataset}: class names {', '.join(sorted(unknown)[:5])} match no label of the model")
    if not items:
        raise EdgekitError(f"{dataset}: no images found (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    return items


def _csv_rows(path):
    """(image path, class name) from a CSV of path,label; a header row is skipped."""
    from device_bench.manifest import read_regular
    try:
        text = read_regular(path, 64 << 20, "dataset CSV").decode("utf-8")
        rows = list(csv.reader(text.splitlines()))
    except UnicodeDecodeError as e:
        raise EdgekitError(f"{path}: the dataset CSV is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise EdgekitError(f"{path}: not a readable CSV of path,label ({e})") from None
    return [(r[0].strip(), r[1].strip()) for r in rows
            if len(r) >= 2 and r[0].strip().lower() not in ("image", "path", "file", "filename")]


def evaluate(predictor, dataset, compare=None):
    """Top-1, top-5, per-class accuracy and images per second; agreement with ``compare`` if given."""
    items = read_dataset(dataset, predictor.ref.labels)
    if compare is not None and compare.num_outputs != predictor.num_outputs:
        raise EdgekitError(f"--compare model has {compare.num_outputs} outputs, this one {predictor.num_outputs}")
    tally = {"top1": 0, "top5": 0, "agree": 0, "done": 0, "per_class": {}, "errors": []}
    start = time.perf_counter()
    for path, truth in items:
        _score_one(predictor, compare, path, truth, tally)
    seconds = time.perf_counter() - start
    done = tally["done"]
    if not done:
        raise EdgekitError(f"{dataset}: none of the {len(items)} images could be read")
    return EvalResult(
        model=predictor.ref.name, dataset=os.path.abspath(dataset), count=done,
        top1=tally["top1"] / done, top5=tally["top5"] / done,
        per_class={k: {"accuracy": v[0] / v[1], "count": v[1]} for k, v in sorted(tally["per_class"].items())},
        images_per_s=done / seconds if seconds else None, errors=tally["errors"],
        compare={"model": compare.ref.name, "top1_agreement": tally["agree"] / done} if compare else None)


def _score_one(predictor, compare, path, truth, tally):
    """Classify one labelled image and add it to the running tally (or to its errors)."""
    try:
        x = predictor.load(path)
    except EdgekitError as e:
        tally["errors"].append({"image": path, "error": str(e)})
        return
    probs = predictor.predict(x)
    order = np.argsort(-probs, kind="stable")
    hit = int(order[0]) == truth
    tally["top1"] += hit
    tally["top5"] += truth in order[:5]
    stats = tally["per_class"].setdefault(predictor.label(truth) or str(truth), [0, 0])
    stats[0] += hit
    stats[1] += 1
    if compare is not None:
        other = compare.predict(x if compare.preprocessing == predictor.preprocessing else compare.load(path))
        tally["agree"] += int(np.argmax(other)) == int(order[0])
    tally["done"] += 1
