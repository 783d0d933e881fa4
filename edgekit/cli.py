"""The edgekit command line: each command parses options, calls one library function, prints.

Nothing heavy is imported at module level, so ``edgekit --help`` starts without TensorFlow.
"""

import json
import os
import sys

import click

from device_bench.errors import EdgekitError


class EdgekitGroup(click.Group):
    """Turn every EdgekitError into one ``Error: ...`` line and exit status 1, in one place."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgekitError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=EdgekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Show TensorFlow's own start-up and log output.")
@click.version_option(package_name="edgekit")
def cli(verbose):
    """edgekit: take Keras image classifiers to phones and Raspberry Pis, and measure
    what each build costs on the device (size, multiply-adds, latency, memory, accuracy)."""
    from edgekit.tf import set_verbose
    set_verbose(verbose)


def echo_json(obj):
    click.echo(json.dumps(obj, indent=2))


def model_options(f):
    """Zoo build options shared by build and convert."""
    f = click.option("--alpha", type=float, help="Width multiplier (MobileNets).")(f)
    f = click.option("--size", type=int, help="Input size in pixels (square).")(f)
    f = click.option("--classes", type=int, help="Number of classes (default 1000).")(f)
    f = click.option("--weights", default="none", show_default=True,
                     help="'imagenet' (Keras's download and cache), 'none' (random) or a local weights file.")(f)
    return f


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models(as_json):
    """List the model zoo: parameters, multiply-adds, input size, preprocessing, weights."""
    from edgekit.zoo_info import describe_zoo
    rows = describe_zoo()
    if as_json:
        echo_json(rows)
    else:
        from device_bench.output import format_table
        click.echo(format_table(rows, [("name", "name"), ("params", "params"), ("MACs", "macs"),
                                       ("input", "input_size"), ("alphas", "alphas"),
                                       ("preprocessing", "preprocessing"), ("ImageNet weights", "weights")]))


@cli.command()
@click.argument("name")
@model_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output .keras file.")
@click.option("--force", is_flag=True, help="Replace an existing output.")
def build(name, alpha, size, classes, weights, output, force):
    """Build zoo model NAME and save it as a .keras file."""
    from edgekit.zoo_info import build_to_file
    info = build_to_file(name, output, alpha=alpha, size=size, classes=classes, weights=weights, force=force)
    click.echo(f"wrote {info['path']}: {info['name']}, {info['params']:,} parameters, "
               f"{info['macs'] / 1e6:.1f}M multiply-adds, input {info['input_size']}")


def progress(message):
    click.echo(message, err=True)


@cli.command()
@click.argument("source")
@click.option("-p", "--precision", "precisions", multiple=True, required=True,
              type=click.Choice(["fp32", "fp16", "dynamic", "int8"]), help="Repeat for several bundles.")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
              help="Folder that receives OUTDIR/<model>_<precision>/.")
@model_options
@click.option("--mean", help="Your model's pixel mean, one value or three: it sees (pixel - mean) / std.")
@click.option("--std", help="Your model's pixel std, one value or three.")
@click.option("--preprocessing", type=click.Choice(["tf", "torch", "caffe"]), help="A zoo preprocessing mode.")
@click.option("--crop", "crop_fraction", type=float, help="Centre-crop fraction before resizing (zoo: 0.875).")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--calibration", type=click.Path(), help="int8 calibration images (default: sample_images/).")
@click.option("--calibration-count", default=200, show_default=True, help="At most this many images.")
@click.option("--io", default="int8", show_default=True, type=click.Choice(["int8", "uint8", "float32"]),
              help="Input and output type of an int8 bundle.")
@click.option("--eval", "eval_dir", type=click.Path(), help="Images for the fidelity check (default: calibration).")
@click.option("--allow-tf-ops", is_flag=True, help="Allow TensorFlow ops (the device then needs TensorFlow).")
@click.option("--debug-layers", is_flag=True, help="Per-layer int8 error with TF's QuantizationDebugger.")
@click.option("--unsafe", is_flag=True, help="Allow unsafe deserialization (Lambda layers) of a .keras file.")
@click.option("--force", is_flag=True, help="Replace existing bundles.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def convert(source, precisions, outdir, alpha, size, classes, weights, mean, std, preprocessing, crop_fraction,
            labels, calibration, calibration_count, io, eval_dir, allow_tf_ops, debug_layers, unsafe, force, as_json):
    """Convert SOURCE (a zoo name or a .keras/.h5/SavedModel) to TFLite bundles."""
    from device_bench.images import parse_floats
    from edgekit.convert_cmd import run_convert
    summary = run_convert(source, precisions, outdir, alpha=alpha, size=size, classes=classes, weights=weights,
                          unsafe=unsafe, mean=parse_floats(mean, "mean"), std=parse_floats(std, "std"),
                          preprocessing=preprocessing, crop_fraction=crop_fraction, labels=labels,
                          calibration=calibration, calibration_count=calibration_count, io=io,
                          allow_tf_ops=allow_tf_ops, eval_dir=eval_dir, debug_layers=debug_layers,
                          force=force, progress=progress)
    failed = [b for b in summary["bundles"] if "error" in b]
    if as_json:
        echo_json(summary)
    for b in [] if as_json else summary["bundles"]:
        if "error" in b:
            continue
        fid = b.get("fidelity")
        if fid and (not fid["trained_weights"] or fid["degenerate_output"]):
            note = "  (random weights: fidelity figures measure nothing)" if not fid["trained_weights"] else \
                "  (every output equal: agreement measures nothing)"
        else:
            note = f"  top-1 agreement {fid['top1_agreement']:.1%}, cosine {fid['cosine']:.4f}" if fid else ""
        click.echo(f"{b['bundle']}  {b.get('file_size', 0) / 1e6:.2f} MB{note}")
        for row in b.get("debug_layers") or []:
            click.echo(f"  worst layer: {row['tensor']} ({row['op']}): RMSE/scale {row['rmse/scale']:.3f}")
    for b in failed:
        click.echo(f"Error: {b['precision']}: {b['error']}", err=True)
    if failed:
        sys.exit(1)


def runtime_option(f):
    return click.option("--runtime", type=click.Choice(["litert", "tflite-runtime", "tensorflow"]),
                        help="Force a TFLite runtime (default: LiteRT, then tflite-runtime, then TensorFlow).")(f)


def threads_list(ctx, param, value):
    from device_bench.bench import parse_threads
    try:
        return parse_threads(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def target_options(f):
    """--target/--targets/--ssh-config/--install-runtime: run on devices over SSH instead of here."""
    f = click.option("--install-runtime", is_flag=True,
                     help="Install a TFLite runtime on a target that has none (pip install --user).")(f)
    f = click.option("--ssh-config", type=click.Path(dir_okay=False), help="An ssh_config file (ssh -F).")(f)
    f = click.option("--targets", "targets_file", type=click.Path(dir_okay=False), help="A file of targets, one per line.")(f)
    f = click.option("--target", "targets", multiple=True,
                     help="ssh://[user@]host[:port] or a Host alias; repeat for several devices at once.")(f)
    return f


def remote_targets(targets, targets_file, ssh_config):
    if not targets and not targets_file:
        return None
    from edgekit.remote import read_targets
    return read_targets(targets, targets_file, ssh_config)


@cli.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--threads", default="1", show_default=True, callback=threads_list, help="Sweep, e.g. 1,2,4.")
@click.option("--runs", default=50, show_default=True, help="Timed runs, at least.")
@click.option("--min-secs", default=1.0, show_default=True, help="Timed runs last at least this long.")
@click.option("--max-secs", default=150.0, show_default=True, help="And at most this long.")
@click.option("--warmup-runs", default=1, show_default=True)
@click.option("--warmup-secs", default=0.5, show_default=True)
@runtime_option
@click.option("--no-xnnpack", is_flag=True, help="Run without default delegates.")
@click.option("--delegate", help="External delegate: PATH[:key=value;...].")
@click.option("--input", "input_", help="An image or .npy input (default: random).")
@click.option("--poll-memory", is_flag=True, help="Also poll RSS every 50 ms (affects timing).")
@click.option("--cooldown", default=0.0, help="Seconds to sleep between configurations.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of result records.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write a CSV file.")
@click.option("--force", is_flag=True, help="Replace an existing CSV file.")
@target_options
def bench(models, threads, runs, min_secs, max_secs, warmup_runs, warmup_secs, runtime, no_xnnpack, delegate,
          input_, poll_memory, cooldown, as_json, csv_path, force, targets, targets_file, ssh_config, install_runtime):
    """Benchmark MODELS (bundles or .tflite files), one fresh process per configuration, here or on --target."""
    from device_bench.bench import BenchParams, params_to_args, run_sweep
    from device_bench.output import BENCH_COLUMNS, check_new, format_table, write_csv
    if csv_path:
        check_new(csv_path, force)
    params = BenchParams(threads=threads[0], warmup_runs=warmup_runs, warmup_min_secs=warmup_secs, num_runs=runs,
                         min_secs=min_secs, max_secs=max_secs, xnnpack=not no_xnnpack, delegate=delegate,
                         runtime=runtime, input=input_, poll_memory=poll_memory).validate()
    remote = remote_targets(targets, targets_file, ssh_config)
    if remote:
        from edgekit.remote import remote_bench
        args = params_to_args(params)
        args[1] = ",".join(map(str, threads))
        results = remote_bench(remote, models, args + ["--cooldown", str(cooldown)], install_runtime, progress)
    else:
        results = run_sweep(models, params, threads, cooldown, progress=None if as_json else progress)
    if csv_path:
        write_csv(csv_path, results, force)
    if as_json:
        echo_json(results)
    else:
        columns = ([("target", "target")] if remote else []) + BENCH_COLUMNS
        if any((r.get("environment") or {}).get("emulated") for r in results):
            columns.append(("timings", lambda r: "EMULATED: meaningless" if (r.get("environment") or {}).get(
                "emulated") else None))
        click.echo(format_table(results, columns))
        for r in results:
            for w in r.get("warnings", []):
                progress(f"warning: {r['model']}: {w}")
    if any("error" in r for r in results):
        sys.exit(1)


@cli.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option("--top-k", type=int, help="Labels per image (default: 5, or every class if fewer).")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--mean", help="Pixel mean for a bare .tflite: the model sees (pixel - mean) / std.")
@click.option("--std", help="Pixel std for a bare .tflite.")
@runtime_option
@click.option("--json", "as_json", is_flag=True)
@target_options
def classify(model, images, top_k, labels, mean, std, runtime, as_json, targets, targets_file, ssh_config,
             install_runtime):
    """Top-k labels for IMAGES (files or folders) with MODEL (a bundle or .tflite), here or on --target."""
    from device_bench.__main__ import print_classification
    remote = remote_targets(targets, targets_file, ssh_config)
    if remote:
        from edgekit.remote import remote_classify
        if labels:
            raise EdgekitError("--labels with --target: put the labels in the bundle (edgekit convert --labels)")
        extra = (["--top-k", str(top_k)] if top_k else []) + (["--runtime", runtime] if runtime else [])
        for flag, value in (("--mean", mean), ("--std", std)):
            if value:
                extra += [flag, value]
        results = remote_classify(remote, model, images, extra, install_runtime, progress)
        print_classification(results, as_json)
        if any("error" in r for r in results):
            sys.exit(1)
        return
    from device_bench.classify import classify as run, open_predictor
    from device_bench.images import parse_floats
    from device_bench.predict import preprocessing_override
    from device_bench.runtime import resolve_runtime
    predictor = open_predictor(model, labels, preprocessing_override(parse_floats(mean, "mean"),
                                                                     parse_floats(std, "std")),
                               resolve_runtime(runtime))
    results = run(predictor, images, top_k)
    print_classification(results, as_json)
    if any("error" in r for r in results):
        sys.exit(1)


@cli.command()
@click.argument("model")
@click.argument("dataset")
@click.option("--compare", help="A second bundle: report top-1 agreement with it.")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line.")
@runtime_option
@click.option("--json", "as_json", is_flag=True)
@target_options
def evaluate(model, dataset, compare, labels, runtime, as_json, targets, targets_file, ssh_config, install_runtime):
    """Top-1/top-5 accuracy of MODEL on DATASET (one subfolder per class, or a CSV of path,label)."""
    from device_bench.__main__ import print_evaluation
    remote = remote_targets(targets, targets_file, ssh_config)
    if remote:
        from edgekit.remote import remote_evaluate
        if labels:
            raise EdgekitError("--labels with --target: put the labels in the bundle (edgekit convert --labels)")
        results = remote_evaluate(remote, model, dataset, ["--runtime", runtime] if runtime else [], compare,
                                  install_runtime, progress)
        if as_json:
            echo_json(results)
        for r in results:
            if not as_json:
                click.echo(f"[{r['target']}] " + ("error: " + r["error"] if "error" in r else
                                                  f"top-1 {r['top1']:.2%}, top-5 {r['top5']:.2%} on {r['count']} images"))
        if any("error" in r or r.get("errors") for r in results):
            sys.exit(1)
        return
    from device_bench.classify import evaluate as run, open_predictor
    from device_bench.runtime import resolve_runtime
    rt = resolve_runtime(runtime)
    predictor = open_predictor(model, labels, runtime=rt)
    other = open_predictor(compare, labels, runtime=rt) if compare else None
    result = run(predictor, dataset, other)
    print_evaluation(result, as_json)
    if result["errors"]:
        sys.exit(1)


@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("--dir", "folder", default="edgekit", show_default=True,
              help="Folder on the device (relative to the login's home) that keeps the runner and bundles.")
@click.option("--json", "as_json", is_flag=True)
@target_options
def deploy(bundles, folder, as_json, targets, targets_file, ssh_config, install_runtime):
    """Copy BUNDLES and device_bench.pyz to a named folder on each --target, and leave them there."""
    from edgekit.remote import deploy as run
    remote = remote_targets(targets, targets_file, ssh_config)
    if not remote:
        raise EdgekitError("deploy needs --target or --targets")
    results = run(remote, bundles, folder, install_runtime, progress)
    if as_json:
        echo_json(results)
    else:
        for r in results:
            click.echo(f"[{r['target']}] " + (f"error: {r['error']}" if "error" in r else
                                              f"{r['folder']}: {', '.join(r['files'])}"))
    if any("error" in r for r in results):
        sys.exit(1)


@cli.command("pack-runner")
@click.option("-o", "--output", default="device_bench.pyz", show_default=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace an existing file.")
def pack_runner(output, force):
    """Build device_bench.pyz, the one-file device runner (stdlib zipapp)."""
    from edgekit.runner_pack import pack_runner as pack
    path = pack(output, force)
    click.echo(f"wrote {path}: run `python3 {output} bench BUNDLE` on a device with numpy and a TFLite runtime")


@cli.command()
@click.option("-o", "--output", "outdir", default="demo-out", show_default=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Rebuild every bundle instead of reusing unchanged ones.")
def demo(outdir, force):
    """The built-in study: SqueezeNet 1.1, MobileNet V1 and V2 at 224, every precision, benchmarked here."""
    import copy
    from edgekit.study import DEMO_CONFIG, run_study
    _finish(run_study(copy.deepcopy(DEMO_CONFIG), outdir, force=force, progress=progress), outdir)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), help="Default: the config's output.")
@click.option("--force", is_flag=True, help="Rebuild every bundle instead of reusing unchanged ones.")
def run(config, outdir, force):
    """Run the study a TOML CONFIG describes (models, precisions, threads, calibration, evaluation)."""
    from edgekit.study import load_config, run_study
    cfg = load_config(config)
    outdir = outdir or cfg.get("output") or "edgekit-out"
    _finish(run_study(cfg, outdir, force=force, progress=progress), outdir)


def _finish(results, outdir):
    from edgekit.report import render_table, table_rows
    rows = table_rows(results)
    click.echo(render_table(rows))
    click.echo(f"report: {os.path.join(os.path.abspath(outdir), 'report.md')}")
    if any(r.get("error") for r in rows):
        sys.exit(1)


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace a report already in OUTDIR.")
def report(results, outdir, force):
    """Rebuild report.md, results.csv and tradeoff.png from saved RESULTS.json files (several devices too)."""
    from edgekit.report import load_results, write_report
    from device_bench.output import check_new
    check_new(os.path.join(outdir, "report.md"), force)
    write_report(load_results(results), outdir, progress=progress)


def main():
    cli(prog_name="edgekit")


if __name__ == "__main__":
    main()
