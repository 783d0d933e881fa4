"""python -m device_bench (or python3 device_bench.pyz): the device-side command line, on argparse.

Subcommands: bench, classify, evaluate. Errors print one line `Error: ...` and exit non-zero.
"""

import argparse
import json
import sys

from device_bench.errors import EdgekitError


def _threads(text):
    from device_bench.bench import parse_threads
    try:
        return parse_threads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_bench_args(p):
    p.add_argument("models", nargs="+", help="bundle folders or .tflite files")
    p.add_argument("--threads", type=_threads, default=[1], help="thread counts to sweep, e.g. 1,2,4 (default 1)")
    p.add_argument("--runs", type=int, default=50, help="timed runs, at least (default 50)")
    p.add_argument("--min-secs", type=float, default=1.0, help="timed runs last at least this long (default 1)")
    p.add_argument("--max-secs", type=float, default=150.0, help="and at most this long (default 150)")
    p.add_argument("--warmup-runs", type=int, default=1, help="warm-up runs, at least (default 1)")
    p.add_argument("--warmup-secs", type=float, default=0.5, help="warm-up lasts at least this long (default 0.5)")
    p.add_argument("--run-delay", type=float, default=0.0, help="seconds to sleep between timed runs")
    p.add_argument("--runtime", choices=["litert", "tflite-runtime", "tensorflow"], help="force a runtime")
    p.add_argument("--no-xnnpack", action="store_true", help="run without default delegates (XNNPACK)")
    p.add_argument("--delegate", help="external delegate: PATH[:key=value;...]")
    p.add_argument("--input", help="an image or a .npy file (default: random input)")
    p.add_argument("--poll-memory", action="store_true", help="also poll RSS every 50 ms (affects timing)")
    p.add_argument("--cooldown", type=float, default=0.0, help="seconds to sleep between configurations")
    p.add_argument("--in-process", action="store_true",
                   help="run in this process instead of one fresh process per configuration")
    p.add_argument("--json", action="store_true", help="print a JSON list of result records")
    p.add_argument("--csv", help="also write the results to this CSV file")
    p.add_argument("--force", action="store_true", help="replace an existing CSV file")


def params_from_args(a):
    from device_bench.bench import BenchParams
    return BenchParams(threads=a.threads[0], warmup_runs=a.warmup_runs, warmup_min_secs=a.warmup_secs,
                       num_runs=a.runs, min_secs=a.min_secs, max_secs=a.max_secs, run_delay=a.run_delay,
                       xnnpack=not a.no_xnnpack, delegate=a.delegate, runtime=a.runtime, input=a.input,
                       poll_memory=a.poll_memory).validate()


def cmd_bench(a):
    from device_bench.bench import run_sweep
    from device_bench.output import BENCH_COLUMNS, check_new, format_table, write_csv
    if a.csv:
        check_new(a.csv, a.force)
    progress = None if (a.json or a.in_process) else (lambda m: print(m, file=sys.stderr))
    results = run_sweep(a.models, params_from_args(a), a.threads, a.cooldown, isolate=not a.in_process,
                        progress=progress)
    if a.csv:
        write_csv(a.csv, results, a.force)
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results, BENCH_COLUMNS))
        for r in results:
            for w in r.get("warnings", []):
                print(f"warning: {r['model']}: {w}", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


def add_model_args(p):
    """What classify and evaluate share: the model and how to read it."""
    p.add_argument("model", help="bundle folder or .tflite file")
    p.add_argument("--labels", help="class names, one per line (overrides the bundle's)")
    p.add_argument("--mean", help="pixel mean for a bare .tflite: it sees (pixel - mean) / std")
    p.add_argument("--std", help="pixel std for a bare .tflite")
    p.add_argument("--runtime", choices=["litert", "tflite-runtime", "tensorflow"])
    p.add_argument("--json", action="store_true")


def add_classify_args(p):
    add_model_args(p)
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--top-k", type=int, help="labels per image (default: 5, or every class if fewer)")


def print_classification(results, as_json):
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        if "error" in r:
            print(f"{r['image']}: error: {r['error']}")
            continue
        print(r["image"])
        for p in r["predictions"]:
            print(f"  {p['score']:7.2%}  {p['label']}  ({p['index']})")


def _predictor(a, model=None):
    from device_bench.classify import open_predictor
    from device_bench.images import parse_floats
    from device_bench.predict import preprocessing_override
    from device_bench.runtime import resolve_runtime
    prep = preprocessing_override(parse_floats(a.mean, "mean"), parse_floats(a.std, "std"))
    return open_predictor(model or a.model, labels=a.labels, preprocessing=prep, runtime=resolve_runtime(a.runtime))


def cmd_classify(a):
    from device_bench.classify import classify
    results = classify(_predictor(a), a.images, a.top_k)
    print_classification(results, a.json)
    return 1 if any("error" in r for r in results) else 0


def add_evaluate_args(p):
    add_model_args(p)
    p.add_argument("dataset", help="a folder with one subfolder per class, or a CSV of path,label")
    p.add_argument("--compare", help="a second bundle: report top-1 agreement with it")


def print_evaluation(r, as_json):
    if as_json:
        print(json.dumps(r, indent=2))
        return
    print(f"{r['model']}: top-1 {r['top1']:.2%}, top-5 {r['top5']:.2%} on {r['count']} images "
          f"({r['images_per_s']:.1f} images/s)")
    if "compare" in r:
        print(f"top-1 agreement with {r['compare']['model']}: {r['compare']['top1_agreement']:.2%}")
    for name, c in r["per_class"].items():
        print(f"  {c['accuracy']:7.2%}  {name}  ({c['count']} images)")
    for e in r["errors"]:
        print(f"error: {e['error']}")


def cmd_evaluate(a):
    from device_bench.classify import evaluate
    predictor = _predictor(a)
    compare = _predictor(a, a.compare) if a.compare else None
    result = evaluate(predictor, a.dataset, compare)
    print_evaluation(result, a.json)
    return 1 if result["errors"] else 0


def build_parser():
    parser = argparse.ArgumentParser(prog="device_bench", description=(
        "edgekit's device side: benchmark a TFLite model or bundle, classify images, measure accuracy. "
        "Needs only numpy and a TFLite runtime (ai-edge-litert, or tflite-runtime)."))
    parser.add_argument("--verbose", action="store_true", help="let the runtime's own log lines through")
    sub = parser.add_subparsers(dest="command", required=True)
    add_bench_args(sub.add_parser("bench", help="latency and memory, like TFLite's benchmark_model"))
    add_classify_args(sub.add_parser("classify", help="top-k labels for images"))
    add_evaluate_args(sub.add_parser("evaluate", help="top-1/top-5 accuracy on a labelled folder"))
    return parser


def main(argv=None):
    a = build_parser().parse_args(argv)
    from device_bench import quiet
    quiet.VERBOSE = a.verbose
    try:
        return {"bench": cmd_bench, "classify": cmd_classify, "evaluate": cmd_evaluate}[a.command](a)
    except EdgekitError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
