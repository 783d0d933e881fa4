"""What making any bundle shares, whether from a Keras model (TFLiteConverter) or from a float .tflite
(the LiteRT quantizer): the calibration and fidelity images, checking the file in LiteRT, comparing it
with the reference, the manifest, writing the bundle, the per-layer report and mixed precision.

Nothing here imports TensorFlow: `edgekit quantize` runs this where TensorFlow cannot be installed.
"""

import contextlib
import hashlib
import os
import platform
import tempfile
import time

import numpy as np

from converters.bundle_writer import write_bundle
from converters.calibration import load_calibration
from converters.fidelity import fidelity
from converters.tflite_check import check_quantized, verify_tflite
from device_bench import __version__
from device_bench.errors import EdgekitError
from device_bench.images import list_images, load_input
from device_bench.manifest import FORMAT
from device_bench.options import CALIBRATED
from device_bench.predict import temporary_predictor
from device_bench.records import Bundle
from device_bench.silence import quiet_stderr

WORST_ROWS = 10  # layers of the per-layer report kept in the Bundle record (the CSV has them all)


def build_label(precision, quantizer):
    """How progress lines and errors name one build: 'int8', or 'int8 (LiteRT quantizer)'."""
    return precision + (" (LiteRT quantizer)" if quantizer == "litert" else "")


def calibration_anchor(batch, preprocessing):
    """A copy of ``batch`` holding the pixels 0 and 255: calibrated with it, the input's quantization
    spans the whole pixel range, so a uint8 input takes raw pixels as phone apps feed them."""
    anchor = np.array(batch, np.float32, copy=True)
    channels = anchor.shape[-1]
    mean = np.asarray(preprocessing["mean"][:channels], np.float32)
    std = np.asarray(preprocessing["std"][:channels], np.float32)
    anchor[0, 0, 0, :] = (0.0 - mean) / std
    anchor[0, 0, -1, :] = (255.0 - mean) / std
    return anchor


def tensor_record(detail):
    """A tensor as the manifest records it: shape, dtype and quantization."""
    scale, zero = detail["quantization"]
    return {"shape": [int(v) for v in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale) if scale else None, "zero_point": int(zero) if scale else None}


class BundleRun:
    """One model's bundles. Subclasses say how a precision is made (``make``), what the float .tflite is
    (``float_bytes``), what the builds are compared with (``reference``) and which tools made them
    (``versions``)."""

    making = "converting"  # what progress says ``make`` does

    def __init__(self, info, settings, targets, todo, progress, input_shape, num_classes):
        self.info, self.settings, self.targets, self.progress = info, settings, targets, progress
        self.input_shape, self.num_classes = input_shape, num_classes
        self.calibration = self._calibration(todo)
        self.fid_inputs = None
        if settings.check_fidelity:
            self.fid_inputs = (_eval_inputs(settings.eval_dir, input_shape, info.preprocessing, progress)
                               if settings.eval_dir else self.calibration)
        self._litert = None
        self._outputs = {}  # build -> its outputs on the fidelity images, to compare the two quantizers

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="edgekit-convert-")
        return self

    def __exit__(self, *exc):
        self.tmp.cleanup()

    def _calibration(self, todo):
        s = self.settings
        needed = (any(p in CALIBRATED for p, _ in todo) or (s.layer_report and any(p != "fp32" for p, _ in todo))
                  or (s.check_fidelity and s.eval_dir is None and s.calibration_dir is not None))
        if not needed:
            return None
        if s.calibration_dir is None:
            raise EdgekitError(f"{' and '.join(CALIBRATED)} builds and --layer-report need calibration images: "
                               f"give --calibration DIR")
        self.progress(f"{self.info.name}: loading calibration images from {s.calibration_dir}")
        batches, _ = load_calibration(s.calibration_dir, self.input_shape, self.info.preprocessing,
                                      s.calibration_count, warn=lambda m: self.progress(f"warning: {m}"))
        self.progress(f"{self.info.name}: {len(batches)} calibration images")
        return batches

    def anchored_calibration(self):
        """The calibration images plus the 0-and-255 anchor, as both quantizers calibrate."""
        return self.calibration + [calibration_anchor(self.calibration[0], self.info.preprocessing)]

    def make(self, precision):
        """The .tflite bytes of ``precision`` made without the LiteRT quantizer."""
        raise NotImplementedError

    def float_bytes(self):
        """The float .tflite every other precision is measured against."""
        raise NotImplementedError

    def reference(self):
        """The reference's outputs on the fidelity images (or None when there is nothing to compare)."""
        raise NotImplementedError

    def build_preprocessing(self, build):
        """How pixels become ``build``'s input (the model's own preprocessing, unless a subclass says)."""
        return self.info.preprocessing

    def build_inputs(self, inputs, build):
        """``inputs`` (made with the model's preprocessing) as ``build``'s preprocessing makes them."""
        before, after = self.info.preprocessing, self.build_preprocessing(build)
        if (before["mean"], before["std"]) == (after["mean"], after["std"]):
            return inputs
        c = self.input_shape[-1]
        m0, s0, m1, s1 = (np.asarray(v[:c], np.float32) for v in (before["mean"], before["std"], after["mean"],
                                                                   after["std"]))
        return [((x * s0 + m0) - m1) / s1 for x in inputs]

    def versions(self):
        """The tools that made the bundles, for the manifest."""
        out = {"edgekit": __version__, "numpy": np.__version__, "python": platform.python_version()}
        if "litert" in self.settings.quantizers:
            from converters.litert_quantize import quantizer_version
            out["ai_edge_quantizer"] = quantizer_version()
        return out

    def litert(self):
        """The LiteRT quantizer on the float model, calibrated once for every build that needs it."""
        if self._litert is None:
            from converters.litert_quantize import LitertQuantizer
            from device_bench.manifest import META_MANIFEST
            from device_bench.tflite_metadata import without_entries
            # the float file's own manifest would be stale in every quantized build made from it
            self._litert = LitertQuantizer(without_entries(self.float_bytes(), [META_MANIFEST]),
                                           self.anchored_calibration() if self.calibration else None)

        return self._litert

    def one(self, build):
        """Make, verify, fidelity-check and write the bundle of one (precision, quantizer)."""
        p, q = build
        where = f"{self.info.name} {build_label(p, q)}"
        self.progress(f"{where}: {'quantizing' if q == 'litert' else self.making}")
        t0 = time.perf_counter()
        extra = {}
        data = self._litert_build(p, extra) if q == "litert" else self.make(p)
        seconds = time.perf_counter() - t0
        extra["graph_sha256"] = hashlib.sha256(data).hexdigest()  # the converter's output, before any metadata
        if p != "fp32":
            check_quantized(data, p, where)
        with self._verified(data, where) as interp:
            fid = self._fidelity(interp, build)
            if q == "litert" and (p, "tflite") in self._outputs and build in self._outputs:
                extra["versus_tflite"] = fidelity(self._outputs[(p, "tflite")], self._outputs[build])
            folder = self.targets[build][0]
            manifest = self.manifest(build, interp, fid, seconds, extra)
        written = write_bundle(folder, data, manifest, self.info.labels, force=True,
                               warn=lambda m: self.progress(f"warning: {m}"))
        bundle = Bundle(precision=p, path=folder, file_size=written["file_size"], fidelity=fid,
                        conversion_seconds=manifest["conversion_seconds"], quantizer=q,
                        recovery=extra.get("mixed_precision"), versus_tflite=extra.get("versus_tflite"))
        self.after_write(bundle, build)
        if self.settings.layer_report and p != "fp32":
            bundle.layer_report = self._layer_report(folder, data, where)
        self.progress(f"{where}: wrote {folder} ({bundle.file_size / 1e6:.2f} MB"
                      + (f", top-1 agreement {fid['top1_agreement']:.1%} on {fid['images']} images"
                         if fid and fid["trained_weights"] is not False and not fid["degenerate_output"] else "")
                      + ")")
        return bundle

    def after_write(self, bundle, build):
        """A subclass's extra work on a written bundle (TensorFlow's own layer debugger)."""

    def _litert_build(self, precision, extra):
        s = self.settings
        if precision == "int8" and s.recover_accuracy is not None:
            from converters.mixed_precision import recover
            data, extra["mixed_precision"] = recover(self, self.litert())
            return data
        return self.litert().build(precision, io=s.io)

    def _layer_report(self, folder, data, where):
        from converters.layer_errors import REPORT_IMAGES, layer_errors, write_report
        self.progress(f"{where}: per-layer error against the float model")
        with quiet_stderr():
            rows = layer_errors(self.float_bytes(), data, self.calibration[:REPORT_IMAGES])
        files = write_report(folder, rows, f"{os.path.basename(folder)}: error by depth")
        return {"files": files, "images": min(len(self.calibration), REPORT_IMAGES), "layers": len(rows),
                "worst": [{k: v for k, v in r.items() if k != "scope"} for r in rows[:WORST_ROWS]]}

    def manifest(self, build, interp, fid, seconds, extra=None):
        """The manifest of one bundle (edgekit.json, also embedded in model.tflite)."""
        (precision, quantizer), info, classes = build, self.info, self.num_classes
        float_io = {"dtype": "float32", "scale": None, "zero_point": None}
        out = {
            "format": FORMAT, "name": os.path.basename(self.targets[build][0]), "precision": precision,
            "source": info.source,
            "input": dict(tensor_record(interp.input) if interp else dict(float_io, shape=self.input_shape),
                          preprocessing=self.build_preprocessing(build)),
            "output": tensor_record(interp.output) if interp else dict(float_io, shape=[1, classes]),
            "num_classes": classes, "params": int(info.params), "macs": int(info.macs),
            "fidelity": fid, "settings": dict(self.settings.hashed(precision, quantizer), precision=precision),
            "settings_hash": self.targets[build][1], "conversion_seconds": round(seconds, 2),
            "versions": self.versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if quantizer:
            out["quantizer"] = quantizer
        return dict(out, **(extra or {}))

    @contextlib.contextmanager
    def _verified(self, data, where):
        """The model open in LiteRT for the block, after the broken-conversion checks; None with TF ops."""
        if self.settings.allow_tf_ops:
            self.progress(f"warning: {where} may hold TensorFlow ops; a device without TensorFlow cannot run it")
            yield None
            return
        with contextlib.ExitStack() as stack:
            try:
                interp = stack.enter_context(temporary_predictor(data))
            except EdgekitError as e:
                raise EdgekitError(f"{where}: the converted model does not load in LiteRT ({e})") from None
            verify_tflite(data, interp.engine, where)
            yield interp

    def _fidelity(self, interp, build):
        if interp is None or self.fid_inputs is None:
            return None
        reference = self.reference()
        if reference is None:
            return None
        tfl = self._outputs[build] = np.stack([interp.predict(x) for x in self.build_inputs(self.fid_inputs, build)])
        # True or False when the source says (a zoo model's weights), else None: not known
        return dict(fidelity(reference, tfl), trained_weights=self.info.source.get("trained"))


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
