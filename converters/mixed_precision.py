"""Automatic mixed precision: win back the top-1 that int8 lost by keeping its worst layers float.

Quantize, evaluate; while top-1 has dropped more than allowed, keep the next few layers of the
per-layer ranking (converters.layer_errors) float, or give them int16 activations, and repeat. A kept
layer's output stays float up to the layers that read it, which therefore run float too: a tensor
quantized on its way out of one layer would lose the same precision on its way into the next.

Each step's top-1, size and latency (on this machine, LiteRT, one thread) is recorded. When int8 is
faster than fp32 here, the search stops at the first mixed build slower than fp32: such a build has
lost what int8 was for. The host CPU is only a stand-in for the device, so --no-latency-limit lifts this.
"""

from converters.layer_errors import REPORT_IMAGES, layer_errors
from converters.tflite_graph import read_graph
from device_bench.errors import EdgekitError
from device_bench.options import BenchParams
from device_bench.silence import quiet_stderr

STEP_LAYERS = 2  # layers kept float at each step
MAX_STEPS = 8
LATENCY_PARAMS = BenchParams(num_runs=30, min_secs=0.3, warmup_runs=2, warmup_min_secs=0.1,
                             ceiling=False)  # latency only: no ceiling kernel


def recover(run, lq):
    """(model bytes, record of the search) for int8 within ``run.settings.recover_accuracy`` points of fp32."""
    s = run.settings
    if not s.eval_dir:
        raise EdgekitError("--recover-accuracy needs --eval DIR: labelled images, one subfolder per class")
    float_bytes, graph = run.float_bytes(), read_graph(run.float_bytes())
    fp32 = _measure(run, float_bytes, "fp32")
    run.progress(f"{run.info.name} int8: recovering accuracy; fp32 top-1 {fp32['top1']:.2%}, "
                 f"{fp32['latency_ms']:.3g} ms")
    builds, steps, overrides, kept, float_ops = {}, [], {}, [], []
    ranking, worst, stopped = None, [], None
    while True:
        data = lq.build("int8", io=s.io, overrides=overrides)
        step = dict(_measure(run, data, f"step{len(steps)}"), step=len(steps), kept=list(kept),
                    float_layers=list(float_ops))
        step["drop_points"] = round(100 * (fp32["top1"] - step["top1"]), 2)
        steps.append(step)
        builds[step["step"]] = data
        run.progress(f"{run.info.name} int8 step {step['step']}: top-1 {step['top1']:.2%} (drop "
                     f"{step['drop_points']:.2f} points), {step['size'] / 1e6:.2f} MB, {step['latency_ms']:.3g} ms"
                     + (f", float: {', '.join(kept)}" if kept else ""))
        stopped = _stop(steps, fp32, s)
        if stopped:
            break
        if ranking is None:
            with quiet_stderr():
                rows = layer_errors(float_bytes, data, run.calibration[:REPORT_IMAGES])
            ranking = [r for r in rows if r["quant_snr_db"] is not None]
            worst = [{k: r[k] for k in ("layer", "op", "quant_snr_db", "snr_db")} for r in ranking[:5]]
        if not ranking:
            stopped = "every quantized layer is already kept float"
            break
        for row in ranking[:STEP_LAYERS]:
            op = graph.ops[row["index"]]
            for o in [op, *(graph.ops[c] for c in op.consumers)]:
                if o.scope(graph) not in overrides:
                    overrides[o.scope(graph)] = s.keep_as
                    float_ops.append(o.name(graph))
            kept.append(row["layer"])
        ranking = ranking[STEP_LAYERS:]
    chosen = _choose(steps, fp32, s)
    record = {"target_drop_points": s.recover_accuracy, "keep_as": s.keep_as, "fp32": fp32, "steps": steps,
              "chosen_step": chosen["step"], "reached": chosen["drop_points"] <= s.recover_accuracy,
              "stopped": stopped, "layers": chosen["kept"], "float_layers": chosen["float_layers"],
              "ranking": worst}
    return builds[chosen["step"]], record


def _stop(steps, fp32, settings):
    """Why the search ends after the latest step, or None to go on."""
    last = steps[-1]
    if latency_limited(steps, fp32, settings.latency_limit):
        return (f"step {last['step']} ran slower than fp32 here ({last['latency_ms']:.3g} against "
                f"{fp32['latency_ms']:.3g} ms): more float layers would not pay")
    if last["drop_points"] <= settings.recover_accuracy:
        return "top-1 within bounds"
    if last["step"] >= MAX_STEPS:
        return f"limit of {MAX_STEPS} steps reached"
    return None


def latency_limited(steps, fp32, limit=True):
    """True when int8 beats fp32 on this machine and the latest mixed build no longer does."""
    return bool(limit and steps[0]["latency_ms"] < fp32["latency_ms"] and len(steps) > 1
                and steps[-1]["latency_ms"] > fp32["latency_ms"])


def _choose(steps, fp32, settings):
    """The first step within bounds that is not slower than fp32 (when int8 is faster here); else the most
    accurate such step, the fewest float layers first."""
    allowed = [st for i, st in enumerate(steps) if not latency_limited(steps[:i + 1], fp32, settings.latency_limit)]
    within = [st for st in allowed if st["drop_points"] <= settings.recover_accuracy]
    return within[0] if within else max(allowed, key=lambda st: (st["top1"], -st["step"]))


def _measure(run, data, name):
    """Top-1 on the evaluation images, file size and median latency (LiteRT, one thread) of one build."""
    from device_bench.bench import run_benchmark
    from device_bench.evaluate import evaluate
    from device_bench.predict import temporary_predictor
    with temporary_predictor(data, labels=run.info.labels, preprocessing=run.info.preprocessing) as predictor:
        result = evaluate(predictor, run.settings.eval_dir)
        with quiet_stderr():
            latency = run_benchmark(predictor.ref.tflite_path, LATENCY_PARAMS).latency_ms["p50"]
    return {"top1": result.top1, "images": result.count, "size": len(data), "latency_ms": round(latency, 4)}
