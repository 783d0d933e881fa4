"""python -m device_bench (or python3 device_bench.pyz): the device-side command line, on argparse.

Subcommands bench, classify, evaluate and inspect, each a thin face over device_bench.api. Errors print one
line `Error: ...` and exit non-zero.
"""

import argparse
import json
import sys

from device_bench.errors import EdgekitError
from device_bench.options import OPEN_OPTIONS, PREDICT_OPTIONS, add_argparse_options


def _print_json(obj):
    print(json.dumps(obj, indent=2))


def _failed(rows):
    return 1 if any(not r.ok for r in rows) else 0


def cmd_bench(a):
    """device_bench bench: a sweep, printed as a table or JSON (and CSV)."""
    from device_bench import api
    from device_bench.options import params_from_options
    from device_bench.safe_write import refuse_existing
    from device_bench.views import bench_warnings, render_bench, write_csv
    if a.csv:
        refuse_existing(a.csv, a.force)
    params, sweep = params_from_options(vars(a))
    progress = None if (a.json or a.in_process) else (lambda m: print(m, file=sys.stderr))
    results = api.benchmark(a.models, sweep.threads, params, sweep.cooldown, isolate=not a.in_process,
                            progress=progress, repeat=sweep.repeat)
    rows = [r.to_dict() for r in results]
    if a.csv:
        write_csv(a.csv, rows, a.force)
    if a.json:
        _print_json(rows)
    else:
        print(render_bench(rows))
        for line in bench_warnings(rows):
            print(line, file=sys.stderr)
    return _failed(results)


def _model_kwargs(a):
    from device_bench.images import parse_floats
    return {"labels": a.labels, "mean": parse_floats(a.mean, "mean"), "std": parse_floats(a.std, "std"),
            **{k: getattr(a, k) for k in PREDICT_OPTIONS}}


def cmd_classify(a):
    """device_bench classify: top-k labels per image."""
    from device_bench import api
    from device_bench.views import render_classification
    result = api.classify(a.model, a.images, a.top_k, **_model_kwargs(a))
    items = [i.to_dict() for i in result]
    _print_json(items) if a.json else print(render_classification(items))
    return _failed(result)


def cmd_evaluate(a):
    """device_bench evaluate: accuracy on a labelled folder or CSV."""
    from device_bench import api
    from device_bench.views import render_evaluation
    result = api.evaluate(a.model, a.dataset, a.compare, **_model_kwargs(a))
    _print_json(result.to_dict()) if a.json else print(render_evaluation(result.to_dict()))
    return _failed([result])


def cmd_inspect(a):
    """device_bench inspect: what a device sees in the model file."""
    from device_bench import api
    from device_bench.views import render_inspection
    result = api.inspect(a.model, **{k: getattr(a, k) for k in OPEN_OPTIONS})
    _print_json(result) if a.json else print(render_inspection(result))
    return 0


def add_model_args(p):
    """What classify and evaluate share: the model and how to read it."""
    p.add_argument("model", help="bundle folder or .tflite file")
    p.add_argument("--labels", help="class names, one per line (overrides the bundle's)")
    p.add_argument("--mean", help="pixel mean for a bare .tflite: it sees (pixel - mean) / std")
    p.add_argument("--std", help="pixel std for a bare .tflite")
    add_argparse_options(p, only=PREDICT_OPTIONS)
    p.add_argument("--json", action="store_true")


def build_parser():
    """The argparse parser; the bench flags come from device_bench.options."""
    parser = argparse.ArgumentParser(prog="device_bench", description=(
        "edgekit's device side: benchmark a TFLite model or bundle, classify images, measure accuracy. "
        "Needs only numpy and a TFLite runtime (ai-edge-litert, or tflite-runtime)."))
    parser.add_argument("--verbose", action="store_true", help="let the runtime's own log lines through")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="latency and memory, like TFLite's benchmark_model")
    bench.add_argument("models", nargs="+", help="bundle folders or .tflite files")
    add_argparse_options(bench)
    bench.add_argument("--in-process", action="store_true",
                       help="run in this process instead of one fresh process per configuration")
    bench.add_argument("--json", action="store_true", help="print a JSON list of result records")
    bench.add_argument("--csv", help="also write the results to this CSV file")
    bench.add_argument("--force", action="store_true", help="replace an existing CSV file")
    classify = sub.add_parser("classify", help="top-k labels for images")
    add_model_args(classify)
    classify.add_argument("images", nargs="+", help="image files or folders")
    classify.add_argument("--top-k", type=int, help="labels per image (default: 5, or every class if fewer)")
    evaluate = sub.add_parser("evaluate", help="top-1/top-5 accuracy on a labelled folder")
    add_model_args(evaluate)
    evaluate.add_argument("dataset", help="a folder with one subfolder per class, or a CSV of path,label")
    evaluate.add_argument("--compare", help="a second bundle: report top-1 agreement with it")
    inspect = sub.add_parser("inspect", help="tensors, standard metadata, manifest, ops and what XNNPACK takes")
    inspect.add_argument("model", help="bundle folder or .tflite file")
    add_argparse_options(inspect, only=OPEN_OPTIONS)
    inspect.add_argument("--json", action="store_true")
    return parser


def main(argv=None):
    """Run one subcommand; errors become one line and a non-zero exit status."""
    from device_bench import interrupts
    interrupts.install()
    a = build_parser().parse_args(argv)
    from device_bench import silence
    silence.VERBOSE = a.verbose
    try:
        status = {"bench": cmd_bench, "classify": cmd_classify, "evaluate": cmd_evaluate,
                  "inspect": cmd_inspect}[a.command](a)
        sys.stdout.flush()  # here, so that a closed pipe is met inside this try and not at exit
        interrupts.finished()
        return status
    except EdgekitError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`... --json | head -1`)
        interrupts.quiet_broken_pipe()
        return 1


if __name__ == "__main__":
    sys.exit(main())
