"""From one Keras model to one bundle per precision, each checked against the model it came from.

Three steps: `plan` decides which bundles to make (or reuse), `_Conversion.one` converts, verifies and
fidelity-checks one precision, and `_Conversion.manifest` says what the bundle is.
"""

import hashlib
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from device_bench import __version__
from device_bench.errors import EdgekitError
from device_bench.images import list_images, load_input
from device_bench.manifest import FORMAT, MANIFEST_NAME, ModelRef
from device_bench.options import DEFAULT_CALIBRATION_COUNT, PRECISIONS
from device_bench.predict import Predictor
from device_bench.records import Bundle
from device_bench.safe_write import refuse_existing
from device_bench.silence import quiet_stderr
from converters.bundle_writer import write_bundle
from converters.calibration import load_calibration
from converters.fidelity import fidelity
from converters.keras_to_tflite import convert, export_saved_model, verify_tflite


@dataclass
class ModelInfo:
    """What is known of the model being converted: its name, pixels, origin, size and classes."""
    name: str
    preprocessing: dict
    source: dict  # at least {"sha256": ...}; "trained": False for random weights
    params: int
    macs: int
    labels: list = None


@dataclass
class ConvertSettings:
    """How to convert: the options `edgekit convert` takes, with its defaults."""
    precisions: list = field(default_factory=lambda: ["fp32"])
    outdir: str = "."
    calibration_dir: str = None
    calibration_count: int = DEFAULT_CALIBRATION_COUNT
    io: str = "int8"
    allow_tf_ops: bool = False
    eval_dir: str = None
    check_fidelity: bool = True
    debug_layers: bool = False
    force: bool = False
    reuse: bool = False  # keep a bundle whose settings hash matches (the demo's second run)

    def hashed(self, precision):
        """The settings a bundle of ``precision`` depends on (int8 alone depends on I/O and calibration)."""
        int8 = precision == "int8"
        return {"io": self.io if int8 else None, "allow_tf_ops": self.allow_tf_ops,
                "calibration_count": self.calibration_count,
                "calibration": _folder_digest(self.calibration_dir) if int8 else None}


def settings_hash(source_sha256, precision, preprocessing, settings):
    """What a bundle was made from and how: equal hashes mean the bundle can be reused."""
    blob = json.dumps([source_sha256, precision, preprocessing, settings], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def weights_sha256(model):
    """A fingerprint of a model's weights (zoo models have no file to hash)."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def tensor_record(detail):
    """A tensor as the manifest records it: shape, dtype and quantization."""
    scale, zero = detail["quantization"]
    return {"shape": [int(v) for v in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale) if scale else None, "zero_point": int(zero) if scale else None}


def plan(info, settings, progress=print):
    """(bundles kept as they are, precisions to convert, {precision: (folder, settings hash)})."""
    for p in settings.precisions:
        if p not in PRECISIONS:
            raise EdgekitError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    targets = {p: (os.path.join(settings.outdir, f"{info.name}_{p}"),
                   settings_hash(info.source["sha256"], p, info.preprocessing, settings.hashed(p)))
               for p in settings.precisions}
    kept, todo = [], []
    for p, (folder, digest) in targets.items():
        if settings.reuse and _existing_hash(folder) == digest:
            progress(f"{info.name} {p}: unchanged, reusing {folder}")
            kept.append(Bundle(precision=p, path=folder, reused=True))
            continue
        if not settings.reuse:
            refuse_existing(folder, settings.force)
        todo.append(p)
    return kept, todo, targets


def convert_model(model, info, settings, progress=print):
    """Write OUTDIR/NAME_PRECISION/ for each precision; one Bundle each (failures as error Bundles)."""
    kept, todo, targets = plan(info, settings, progress)
    made = []
    if todo:
        with _Conversion(model, info, settings, targets, todo, progress) as run:
            for p in todo:
                try:
                    made.append(run.one(p))
                except EdgekitError as e:  # one precision failing does not stop the others
                    progress(f"{info.name} {p}: error: {e}")
                    made.append(Bundle(precision=p, path=targets[p][0], error=str(e)))
    order = {p: i for i, p in enumerate(settings.precisions)}
    return sorted(kept + made, key=lambda b: order[b.precision])


class _Conversion:
    """One model's conversion: the SavedModel, calibration and fidelity inputs its precisions share."""

    def __init__(self, model, info, settings, targets, todo, progress):
        self.model, self.info, self.settings, self.targets, self.progress = model, info, settings, targets, progress
        self.input_shape = [1, *model.input_shape[1:]]
        self.calibration = self._calibration(todo)
        self.fid_inputs = None
        if settings.check_fidelity:
            self.fid_inputs = (_eval_inputs(settings.eval_dir, self.input_shape, info.preprocessing, progress)
                               if settings.eval_dir else self.calibration)

    def _calibration(self, todo):
        s = self.settings
        if "int8" not in todo and not (s.check_fidelity and s.eval_dir is None and s.calibration_dir is not None):
            return None
        if s.calibration_dir is None:
            raise EdgekitError("int8 needs calibration images: give --calibration DIR")
        self.progress(f"{self.info.name}: loading calibration images from {s.calibration_dir}")
        batches, _ = load_calibration(s.calibration_dir, self.input_shape, self.info.preprocessing,
                                      s.calibration_count, warn=lambda m: self.progress(f"warning: {m}"))
        self.progress(f"{self.info.name}: {len(batches)} calibration images")
        return batches

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="edgekit-convert-")
        self.saved = os.path.join(self.tmp.name, "saved_model")
        self.progress(f"{self.info.name}: exporting SavedModel with input {self.input_shape}")
        with quiet_stderr():
            export_saved_model(self.model, self.saved)
        # The Keras reference runs in a thread while the converter works on the SavedModel (both
        # spend their time in C++ with the GIL released), so the fidelity check adds little wall time.
        self.pool = ThreadPoolExecutor(1)
        self.keras_future = self.pool.submit(_keras_outputs, self.model, self.fid_inputs) if self.fid_inputs else None
        return self

    def __exit__(self, *exc):
        self.pool.shutdown()
        self.tmp.cleanup()

    def one(self, p):
        """Convert, verify, fidelity-check and write the bundle of one precision."""
        name, s = self.info.name, self.settings
        self.progress(f"{name} {p}: converting")
        t0 = time.perf_counter()
        with quiet_stderr():
            data = convert(self.saved, p, representative=(lambda: iter(self.calibration)) if p == "int8" else None,
                           io=s.io, allow_tf_ops=s.allow_tf_ops)
        seconds = time.perf_counter() - t0
        interp = self._verified(data, p)
        fid = self._fidelity(interp)
        folder = self.targets[p][0]
        manifest = self.manifest(p, interp, fid, seconds)
        written = write_bundle(folder, data, manifest, self.info.labels, force=True)
        bundle = Bundle(precision=p, path=folder, file_size=written["file_size"], fidelity=fid,
                        conversion_seconds=manifest["conversion_seconds"])
        if p == "int8" and s.debug_layers:
            from converters.debug import debug_layers
            with quiet_stderr():
                bundle.debug_layers = debug_layers(self.saved, self.calibration,
                                                   os.path.join(folder, "layer_errors.csv"))
        self.progress(f"{name} {p}: wrote {folder} ({bundle.file_size / 1e6:.2f} MB"
                      + (f", top-1 agreement {fid['top1_agreement']:.1%} on {fid['images']} images"
                         if fid and fid["trained_weights"] and not fid["degenerate_output"] else "") + ")")
        return bundle

    def manifest(self, precision, interp, fid, seconds):
        """The manifest of one bundle (edgekit.json, also embedded in model.tflite)."""
        import keras
        import tensorflow as tf
        info, classes = self.info, int(self.model.output_shape[-1])
        float_io = {"dtype": "float32", "scale": None, "zero_point": None}
        return {
            "format": FORMAT, "name": f"{info.name}_{precision}", "precision": precision, "source": info.source,
            "input": dict(tensor_record(interp.input) if interp else dict(float_io, shape=self.input_shape),
                          preprocessing=info.preprocessing),
            "output": tensor_record(interp.output) if interp else dict(float_io, shape=[1, classes]),
            "num_classes": classes, "params": int(info.params), "macs": int(info.macs),
            "fidelity": fid, "settings": dict(self.settings.hashed(precision), precision=precision),
            "settings_hash": self.targets[precision][1], "conversion_seconds": round(seconds, 2),
            "versions": {"edgekit": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                         "numpy": np.__version__, "python": platform.python_version()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _verified(self, data, p):
        """The converted model open in LiteRT, after the broken-conversion checks; None with TF ops."""
        where = f"{self.info.name} {p}"
        if self.settings.allow_tf_ops:
            self.progress(f"warning: {where} may hold TensorFlow ops; a device without TensorFlow cannot run it")
            return None
        raw = os.path.join(self.tmp.name, f"{p}.tflite")
        with open(raw, "wb") as f:
            f.write(data)
        try:
            interp = Predictor(ModelRef(raw))
        except EdgekitError as e:
            raise EdgekitError(f"{where}: the converted model does not load in LiteRT ({e})") from None
        verify_tflite(data, interp.engine, where)
        return interp

    def _fidelity(self, interp):
        if interp is None or self.keras_future is None:
            return None
        tfl = np.stack([interp.predict(x) for x in self.fid_inputs])
        return dict(fidelity(self.keras_future.result(), tfl),
                    trained_weights=bool(self.info.source.get("trained", True)))


def _keras_outputs(model, inputs):
    # predict() traces once and then runs a graph: about 3x faster than eager calls under Keras 3
    return model.predict(np.concatenate(inputs), batch_size=50, verbose=0)


def _existing_hash(folder):
    try:
        with open(os.path.join(folder, MANIFEST_NAME), encoding="utf-8") as f:
            return json.load(f).get("settings_hash")
    except (OSError, ValueError, AttributeError):
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
