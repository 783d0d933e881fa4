"""Per-layer int8 error with TensorFlow's own QuantizationDebugger, worst layer first."""

import csv
import io
import math


def debug_layers(saved_model_dir, calibration, csv_path, worst=5):
    """Write a CSV of per-layer error (RMSE relative to scale first) and return the worst rows."""
    import tensorflow as tf

    def dataset():
        for batch in calibration:
            yield [batch]

    c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = dataset
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    debugger = tf.lite.experimental.QuantizationDebugger(converter=c, debug_dataset=dataset)
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    for r in rows:
        scale = float(r.get("scale") or 0)
        mse = float(r.get("mean_squared_error") or 0)
        r["rmse/scale"] = math.sqrt(mse) / scale if scale else float("nan")
    rows.sort(key=lambda r: -r["rmse/scale"] if not math.isnan(r["rmse/scale"]) else 0)
    fields = ["rmse/scale"] + [k for k in rows[0] if k != "rmse/scale"] if rows else ["rmse/scale"]
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return [{"tensor": r.get("tensor_name"), "op": r.get("op_name"), "rmse/scale": r["rmse/scale"]}
            for r in rows[:worst]]
