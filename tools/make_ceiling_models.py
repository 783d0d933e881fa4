"""Build the dense kernels device_bench times for its measured ceiling (device_bench/data/).

The device cannot build them (no TensorFlow there), so they ship in the package. Each is one 1x1
convolution, [1, 16, 16, 512] -> [1, 16, 16, 512] with bias: 67,108,864 multiply-adds, a GEMM of
256 x 512 x 512 that every runtime runs at close to its best rate. Weights are Keras's default
initialiser under seed 0; int8 is full-integer (int8 input and output, per-channel weights),
calibrated on 8 uniform random inputs in [-1, 1] (seed 0).

Usage (host, with TensorFlow): python tools/make_ceiling_models.py [--out device_bench/data]
"""

import argparse
import hashlib
import json
import os
import sys

HW, CHANNELS = 16, 512


def build(out):
    """Write ceiling_fp32.tflite, ceiling_int8.tflite and ceiling.json (MACs, shapes, sha256, how made)."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((HW, HW, CHANNELS), batch_size=1),
                              keras.layers.Conv2D(CHANNELS, 1, name="dense_kernel")])
    files = {}
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    files["fp32"] = converter.convert()

    def calibration():
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, HW, HW, CHANNELS)).astype(np.float32)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    files["int8"] = converter.convert()
    os.makedirs(out, exist_ok=True)
    kernels = {}
    for precision, data in files.items():
        name = f"ceiling_{precision}.tflite"
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        kernels[precision] = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    info = {"kernel": f"1x1 conv [1,{HW},{HW},{CHANNELS}] -> {CHANNELS}", "macs": HW * HW * CHANNELS * CHANNELS,
            "kernels": kernels,
            "made_by": f"tools/make_ceiling_models.py, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
                       f"Python {sys.version.split()[0]}"}
    with open(os.path.join(out, "ceiling.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return info


def main():
    """Build the kernels into --out and print ceiling.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "device_bench", "data"))
    info = build(ap.parse_args().out)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
