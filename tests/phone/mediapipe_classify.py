"""Run in the MediaPipe venv: classify images with MediaPipe Tasks' ImageClassifier, as a phone app does.

    python mediapipe_classify.py MODEL.tflite... --images DIR

Prints JSON {model: {"top": [{"image", "index", "category_name", "score"}] or "error": message}} and,
where tflite-support imports, what its MetadataDisplayer lists as packed files. No edgekit code is
imported: the .tflite files must work on their own.
"""

import argparse
import json
import os

import numpy as np
from PIL import Image


def classify(model, images):
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=1)
    out = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in images:
            pixels = np.asarray(Image.open(path).convert("RGB"))
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels))
            top = result.classifications[0].categories[0]
            out.append({"image": path, "index": top.index, "category_name": top.category_name,
                        "score": float(top.score)})
    return out


def packed_files(model):
    try:
        from tflite_support import metadata
    except ImportError as e:
        return {"error": f"tflite-support does not import: {e}"}
    displayer = metadata.MetadataDisplayer.with_model_file(model)
    return {"packed": displayer.get_packed_associated_file_list(),
            "json": json.loads(displayer.get_metadata_json())}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--images", required=True)
    a = parser.parse_args()
    images = sorted(os.path.join(r, f) for r, _, fs in os.walk(a.images) for f in fs if f.endswith(".png"))
    report = {}
    for model in a.models:
        try:
            report[model] = {"top": classify(model, images), "tflite_support": packed_files(model)}
        except Exception as e:  # MediaPipe's refusal is the finding, not a crash of this script
            report[model] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
