"""From one model to one bundle per precision, each checked against the model it came from.

`plan` decides which bundles to make (or reuse), `build_bundles` makes each through a BundleRun
(converters.bundle_run: verify, fidelity check, manifest, write); `_Conversion` is the Keras model's
run, through TFLiteConverter (and the LiteRT quantizer with `--quantizer litert`). Importing this
module does not import TensorFlow.
"""

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from converters.bundle_run import BundleRun, build_label
from converters.keras_to_tflite import convert, export_saved_model
from converters.progress import to_stderr
from device_bench.errors import EdgekitError
from device_bench.images import list_images
from device_bench.manifest import MANIFEST_NAME
from device_bench.options import (ALL_PRECISIONS, CALIBRATED, DEFAULT_CALIBRATION_COUNT, DEFAULT_IO, PRECISIONS,
                                  QUANTIZERS)
from device_bench.predict import temporary_predictor
from device_bench.records import Bundle
from device_bench.safe_write import refuse_existing
from device_bench.silence import quiet_stderr


@dataclass
class ModelInfo:
    """What is known of the model being converted: its name, pixels, origin, size and classes."""
    name: str
    preprocessing: dict
    source: dict  # at least {"sha256": ...}; "trained": True, False (random weights), or absent/None: not known
    params: int
    macs: int
    labels: list = None


@dataclass
class ConvertSettings:
    """How to convert: the options `edgekit convert` (and `edgekit quantize`) take, with their defaults."""
    precisions: list = field(default_factory=lambda: ["fp32"])
    outdir: str = "."
    calibration_dir: str = None
    calibration_count: int = DEFAULT_CALIBRATION_COUNT
    io: str = DEFAULT_IO
    allow_tf_ops: bool = False
    eval_dir: str = None
    check_fidelity: bool = True
    debug_layers: bool = False
    force: bool = False
    reuse: bool = False  # keep a bundle whose settings hash matches (the demo's second run)
    quantizers: list = field(default_factory=lambda: ["tflite"])  # "tflite" (TFLiteConverter), "litert"
    layer_report: bool = False  # per-layer error of each quantized build against the float model
    recover_accuracy: float = None  # largest top-1 drop (points) int8 may have; layers are kept float until it holds
    keep_as: str = "float"  # what recovered layers become: "float" or "int16" activations
    latency_limit: bool = True  # stop recovering once a mixed build is slower than fp32 here

    def builds(self):
        """(precision, quantizer) of each bundle to make: fp32 is the float model itself (quantizer None);
        every other precision once per quantizer asked for that makes it (int16x8: the LiteRT quantizer)."""
        for q in self.quantizers:
            if q not in QUANTIZERS:
                raise EdgekitError(f"unknown quantizer {q!r}; choose from {', '.join(QUANTIZERS)}")
        out = []
        for p in self.precisions:
            if p not in ALL_PRECISIONS:
                raise EdgekitError(f"unknown precision {p!r}; choose from {', '.join(ALL_PRECISIONS)}")
            makers = [None] if p == "fp32" else [q for q in self.quantizers if p in PRECISIONS or q == "litert"]
            if not makers:
                raise EdgekitError(f"{p} is made by the LiteRT quantizer only: add --quantizer litert")
            out += [(p, q) for q in makers]
        return out

    def hashed(self, precision, quantizer=None):
        """The settings a bundle depends on (int8 alone depends on I/O; calibrated builds on the images)."""
        calibrated = precision in CALIBRATED
        out = {"io": self.io if precision == "int8" else None, "allow_tf_ops": self.allow_tf_ops,
               "calibration_count": self.calibration_count,
               "calibration": _folder_digest(self.calibration_dir) if calibrated else None}
        if quantizer == "litert":  # added only here, so that TFLiteConverter bundles keep their hashes
            out["quantizer"] = quantizer
            if precision == "int8" and self.recover_accuracy is not None:
                out.update(recover_accuracy=self.recover_accuracy, keep_as=self.keep_as,
                           latency_limit=self.latency_limit, eval=_folder_digest(self.eval_dir))
        return out

    def folder(self, name, precision, quantizer):
        """OUTDIR/NAME_PRECISION, plus the I/O type of an int8 build when it is not the default, and _litert
        when both quantizers make this precision: no two builds collide."""
        both = quantizer == "litert" and "tflite" in self.quantizers and precision in PRECISIONS
        io = f"_{self.io}io" if precision == "int8" and self.io != DEFAULT_IO else ""
        return os.path.join(self.outdir, f"{name}_{precision}{io}" + ("_litert" if both else ""))


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


def plan(info, settings, progress=to_stderr):
    """(bundles kept as they are, builds to make, {(precision, quantizer): (folder, settings hash)})."""
    targets = {(p, q): (settings.folder(info.name, p, q),
                        settings_hash(info.source["sha256"], p, info.preprocessing, settings.hashed(p, q)))
               for p, q in settings.builds()}
    kept, todo = [], []
    for (p, q), (folder, digest) in targets.items():
        if settings.reuse and _existing_hash(folder) == digest:
            progress(f"{info.name} {build_label(p, q)}: unchanged, reusing {folder}")
            kept.append(Bundle(precision=p, path=folder, reused=True, quantizer=q))
            continue
        if not settings.reuse:
            refuse_existing(folder, settings.force)
        todo.append((p, q))
    return kept, todo, targets


def build_bundles(info, settings, open_run, progress=to_stderr):
    """One Bundle per build (failures as error Bundles, the other builds still made); ``open_run(targets,
    todo)`` gives the BundleRun that makes them."""
    kept, todo, targets = plan(info, settings, progress)
    made = []
    if todo:
        with open_run(targets, todo) as run:
            for build in todo:
                try:
                    made.append(run.one(build))
                except EdgekitError as e:  # one build failing does not stop the others
                    progress(f"{info.name} {build_label(*build)}: error: {e}")
                    made.append(Bundle(precision=build[0], path=targets[build][0], error=str(e), quantizer=build[1]))
    order = {b: i for i, b in enumerate(settings.builds())}
    return sorted(kept + made, key=lambda b: order[(b.precision, b.quantizer)])


def convert_model(model, info, settings, progress=to_stderr, folding=None):
    """Write OUTDIR/NAME_PRECISION/ for each precision of a Keras model; one Bundle each. With ``folding``
    (converters.folding.Folding) ``model`` is its model on raw pixels, and TFLiteConverter's full-integer
    builds of a one-mean-one-std normalization hold it in their input's quantization instead."""
    return build_bundles(info, settings, lambda targets, todo: _Conversion(model, info, settings, targets, todo,
                                                                          progress, folding), progress)


class _Conversion(BundleRun):
    """One Keras model's conversion: the SavedModel, and the Keras outputs every build is compared with."""

    def __init__(self, model, info, settings, targets, todo, progress, folding=None):
        self.model, self.folding = model, folding
        super().__init__(info, settings, targets, todo, progress, [1, *model.input_shape[1:]],
                         int(model.output_shape[-1]))
        self._fp32 = None
        # the per-layer report compares tensors fed the same float pixels: it keeps the folded graph
        self.input_quantized = (folding is not None and folding.scalar and settings.io != "float32"
                                and ("int8", "tflite") in todo and not settings.layer_report)
        self._input_records = {}

    def __enter__(self):
        super().__enter__()
        self.saved = os.path.join(self.tmp.name, "saved_model")
        self.progress(f"{self.info.name}: exporting SavedModel with input {self.input_shape}")
        try:
            with quiet_stderr():
                export_saved_model(self.model, self.saved)
                if self.input_quantized:
                    self.saved_unfolded = os.path.join(self.tmp.name, "saved_model_unfolded")
                    export_saved_model(self.folding.unfolded, self.saved_unfolded)
        except BaseException as e:
            self.tmp.cleanup()
            if isinstance(e, (EdgekitError, KeyboardInterrupt)) or not isinstance(e, Exception):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise EdgekitError(f"{self.info.name}: cannot export the model for conversion ({first})") from None
        # The Keras reference runs in a thread while the converter works on the SavedModel (both
        # spend their time in C++ with the GIL released), so the fidelity check adds little wall time.
        self.pool = ThreadPoolExecutor(1)
        self.keras_future = self.pool.submit(_keras_outputs, self.model, self.fid_inputs) if self.fid_inputs else None
        return self

    def __exit__(self, *exc):
        self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)  # an interrupt does not wait
        super().__exit__(*exc)

    def make(self, precision):
        """TFLiteConverter at ``precision`` (fp32 converted once, also for the LiteRT quantizer)."""
        if precision == "fp32" and self._fp32 is not None:
            return self._fp32
        if precision == "int8" and self.input_quantized:
            return self._input_quantized_int8()
        with quiet_stderr():
            data = convert(self.saved, precision, representative=(lambda: iter(self.anchored_calibration()))
                           if precision == "int8" else None,
                           io=self.settings.io, allow_tf_ops=self.settings.allow_tf_ops)
        if precision == "fp32":
            self._fp32 = data
        return data

    def _input_quantized_int8(self):
        """The model without its normalization, calibrated on normalized pixels (0 and 255 among them): its
        input holds the normalization in its scale and zero point, raw pixels in and no op spent on them."""
        from converters.folding import input_quantization
        f = self.folding
        mean, std = np.float32(f.mean[0]), np.float32(f.std[0])
        with quiet_stderr():
            data = convert(self.saved_unfolded, "int8", representative=lambda: ((b - mean) / std for b in
                                                                                 self.anchored_calibration()),
                           io=self.settings.io, allow_tf_ops=self.settings.allow_tf_ops)
        with temporary_predictor(data) as interp:
            scale, zero = interp.input["quantization"]
        self._input_records[("int8", "tflite")] = input_quantization(scale, zero, f.mean[0], f.std[0],
                                                                     self.settings.io)
        return data

    def build_preprocessing(self, build):
        """How pixels become this build's input: raw pixels for every folded build; for an input-quantized
        one, (pixel - zero point) * scale, which its uint8 input takes back to the raw pixel exactly."""
        prep = self.info.preprocessing
        if self.folding is None:
            return prep
        folded = dict(prep["folded"], method=self.folding.method)
        if self.folding.reason:
            folded["not_in_first_conv"] = self.folding.reason
        record = self._input_records.get(build)
        if record is None:
            return dict(prep, folded=folded)
        folded.update(method=record["method"], zero_point_error_pixels=record["zero_point_error_pixels"])
        n = len(prep["mean"])
        return dict(prep, mean=[float(record["pixel_zero_point"])] * n, std=[self.folding.std[0]] * n,
                    folded=folded)

    def float_bytes(self):
        """The fp32 conversion, which the LiteRT quantizer and the per-layer report start from."""
        return self.make("fp32")

    def reference(self):
        """The Keras model's own outputs on the fidelity images."""
        return self.keras_future.result() if self.keras_future else None

    def versions(self):
        """TensorFlow and Keras besides the rest."""
        import keras
        import tensorflow as tf
        return dict(super().versions(), tensorflow=tf.__version__, keras=keras.__version__)

    def after_write(self, bundle, build):
        """--debug-layers: TensorFlow's QuantizationDebugger on TFLiteConverter's int8."""
        if build == ("int8", "tflite") and self.settings.debug_layers:
            from converters.debug import debug_layers
            with quiet_stderr():
                bundle.debug_layers = debug_layers(self.saved, self.calibration,
                                                   os.path.join(bundle.path, "layer_errors.csv"))


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
