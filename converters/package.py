"""From one Keras model to one bundle per precision, each checked against the model it came from."""

import hashlib
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from device_bench import __version__
from device_bench.errors import EdgekitError
from device_bench.images import list_images, load_input
from device_bench.manifest import FORMAT, ModelRef
from device_bench.predict import Predictor
from device_bench.quiet import quiet_stderr
from converters.bundle import write_bundle
from converters.calibration import load_calibration
from converters.fidelity import fidelity
from converters.tflite import PRECISIONS, convert, export_saved_model, verify_tflite


def settings_hash(source_sha256, precision, preprocessing, settings):
    """What a bundle was made from and how: equal hashes mean the bundle can be reused."""
    blob = json.dumps([source_sha256, precision, preprocessing, settings], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def weights_sha256(model):
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def tensor_record(detail):
    scale, zero = detail["quantization"]
    return {"shape": [int(v) for v in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale) if scale else None, "zero_point": int(zero) if scale else None}


def package(model, *, name, precisions, outdir, preprocessing, source, params, macs, labels=None,
            calibration_dir=None, calibration_count=200, io="int8", allow_tf_ops=False, eval_dir=None,
            check_fidelity=True, debug_layers=False, force=False, progress=print, reuse=False):
    """Write OUTDIR/NAME_PRECISION/ for each precision; returns one summary dict per precision.

    ``source`` is a dict with at least ``sha256``. With ``reuse``, a bundle whose settings hash
    matches is kept as it is (used by the demo's second run).
    """
    import tensorflow as tf
    import keras

    for p in precisions:
        if p not in PRECISIONS:
            raise EdgekitError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    input_shape = [1, *model.input_shape[1:]]
    settings = {"io": io, "allow_tf_ops": allow_tf_ops, "calibration_count": calibration_count,
                "calibration": _folder_digest(calibration_dir) if "int8" in precisions else None}
    folders = {p: os.path.join(outdir, f"{name}_{p}") for p in precisions}
    hashes = {p: settings_hash(source["sha256"], p, preprocessing,
                               dict(settings, io=io if p == "int8" else None,
                                    calibration=settings["calibration"] if p == "int8" else None))
              for p in precisions}
    results, todo = [], []
    for p in precisions:
        existing = _existing_hash(folders[p])
        if reuse and existing == hashes[p]:
            progress(f"{name} {p}: unchanged, reusing {folders[p]}")
            results.append({"precision": p, "bundle": folders[p], "reused": True})
        elif os.path.exists(folders[p]) and not (force or reuse):
            raise EdgekitError(f"{folders[p]} already exists; pass --force to replace it")
        else:
            todo.append(p)
    if not todo:
        return results

    calibration = None
    if "int8" in todo or (check_fidelity and eval_dir is None and calibration_dir is not None):
        if calibration_dir is None:
            raise EdgekitError("int8 needs calibration images: give --calibration DIR")
        progress(f"{name}: loading calibration images from {calibration_dir}")
        calibration, _ = load_calibration(calibration_dir, input_shape, preprocessing, calibration_count,
                                             warn=lambda m: progress(f"warning: {m}"))
        progress(f"{name}: {len(calibration)} calibration images")
    fid_inputs = None
    if check_fidelity:
        fid_inputs = _eval_inputs(eval_dir, input_shape, preprocessing, progress) if eval_dir else calibration
    with tempfile.TemporaryDirectory(prefix="edgekit-convert-") as tmp:
        saved = os.path.join(tmp, "saved_model")
        progress(f"{name}: exporting SavedModel with input {input_shape}")
        with quiet_stderr():
            export_saved_model(model, saved)
        # The Keras reference runs in a thread while the converter works on the SavedModel (both
        # spend their time in C++ with the GIL released), so the fidelity check adds little wall time.
        pool = ThreadPoolExecutor(1)
        keras_future = pool.submit(_keras_outputs, model, fid_inputs) if fid_inputs else None
        def one(p):
            progress(f"{name} {p}: converting")
            t0 = time.perf_counter()
            with quiet_stderr():
                data = convert(saved, p, representative=(lambda: iter(calibration)) if p == "int8" else None,
                               io=io, allow_tf_ops=allow_tf_ops)
            seconds = time.perf_counter() - t0
            raw = os.path.join(tmp, f"{p}.tflite")
            with open(raw, "wb") as f:
                f.write(data)
            if allow_tf_ops:
                progress(f"warning: {name} {p} may hold TensorFlow ops; a device without TensorFlow cannot run it")
                interp = None
            else:
                try:
                    interp = Predictor(ModelRef(raw))
                except EdgekitError as e:
                    raise EdgekitError(f"{name} {p}: the converted model does not load in LiteRT ({e})") from None
                verify_tflite(data, interp.interpreter, f"{name} {p}")
            fid = None
            if interp is not None and keras_future is not None:
                keras_probs = keras_future.result()
                tfl = np.stack([interp.predict(x) for x in fid_inputs])
                fid = dict(fidelity(keras_probs, tfl), trained_weights=bool(source.get("trained", True)))
            manifest = {
                "format": FORMAT, "name": f"{name}_{p}", "precision": p, "source": source,
                "input": dict(tensor_record(interp.input) if interp else
                              {"shape": input_shape, "dtype": "float32", "scale": None, "zero_point": None},
                              preprocessing=preprocessing),
                "output": tensor_record(interp.output) if interp else
                {"shape": [1, int(model.output_shape[-1])], "dtype": "float32", "scale": None, "zero_point": None},
                "num_classes": int(model.output_shape[-1]), "params": int(params), "macs": int(macs),
                "fidelity": fid, "settings": dict(settings, precision=p), "settings_hash": hashes[p],
                "conversion_seconds": round(seconds, 2),
                "versions": {"edgekit": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                             "numpy": np.__version__, "python": platform.python_version()},
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            written = write_bundle(folders[p], data, manifest, labels, force=True)
            summary = {"precision": p, "bundle": folders[p], "file_size": written["file_size"],
                       "fidelity": fid, "reused": False, "conversion_seconds": manifest["conversion_seconds"]}
            if p == "int8" and debug_layers:
                from converters.debug import debug_layers as run_debugger
                with quiet_stderr():
                    summary["debug_layers"] = run_debugger(
                        saved, calibration, os.path.join(folders[p], "layer_errors.csv"))
            progress(f"{name} {p}: wrote {folders[p]} ({written['file_size'] / 1e6:.2f} MB"
                     + (f", top-1 agreement {fid['top1_agreement']:.1%} on {fid['images']} images"
                        if fid and fid["trained_weights"] and not fid["degenerate_output"] else "")
                     + ")")
            return summary

        try:
            for p in todo:
                try:
                    results.append(one(p))
                except EdgekitError as e:  # one precision failing does not stop the others
                    progress(f"{name} {p}: error: {e}")
                    results.append({"precision": p, "bundle": folders[p], "error": str(e)})
        finally:
            pool.shutdown()
    order = {p: i for i, p in enumerate(precisions)}
    return sorted(results, key=lambda r: order[r["precision"]])


def _keras_outputs(model, inputs):
    # predict() traces once and then runs a graph: about 3x faster than eager calls under Keras 3
    return model.predict(np.concatenate(inputs), batch_size=50, verbose=0)


def _existing_hash(folder):
    try:
        with open(os.path.join(folder, "edgekit.json"), encoding="utf-8") as f:
            return json.load(f).get("settings_hash")
    except (OSError, ValueError):
        return None


def _folder_digest(folder):
    if folder is None:
        return None
    paths = list_images([folder]) if os.path.isdir(folder) else []
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.relpath(p, folder).encode())
        h.update(str(os.path.getsize(p)).encode())
    return {"folder": os.path.abspath(folder), "files": len(paths), "digest": h.hexdigest()}


def _eval_inputs(folder, input_shape, preprocessing, progress):
    paths = list_images([folder])
    if not paths:
        raise EdgekitError(f"--eval folder {folder} holds no image files")
    out = []
    for p in paths:
        try:
            out.append(load_input(p, input_shape, preprocessing))
        except EdgekitError as e:
            progress(f"warning: skipped {e}")
    if not out:
        raise EdgekitError(f"--eval folder {folder} holds no decodable image")
    return out
