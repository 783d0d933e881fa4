"""The edgekit command line: each command parses options, calls one library function, prints.

Nothing heavy is imported at module level, so ``edgekit --help`` starts without TensorFlow.
"""

import json
import os
import sys

import click

from device_bench.errors import EdgekitError
from device_bench.options import (BENCH_OPTIONS, DEFAULT_CALIBRATION_COUNT, IO_TYPES, PRECISIONS, PREPROCESSING_MODES,
                                  RUNTIME_OPTIONS, option_default, runtime_choices)


class EdgekitGroup(click.Group):
    """Turn every EdgekitError into one ``Error: ...`` line and exit status 1, in one place."""

    def invoke(self, ctx):
        """Run the command; the user's mistakes become one line, never a traceback."""
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
@click.version_option(package_name="edgekit-tflite")
def cli(verbose):
    """edgekit: take Keras image classifiers to phones and Raspberry Pis, and measure
    what each build costs on the device (size, multiply-adds, latency, memory, accuracy)."""
    from edgekit.tf_import import set_verbose
    set_verbose(verbose)


def echo_json(obj):
    """--json output: indented, as every command prints it."""
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
        from device_bench.views import format_table
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
    """Progress goes to stderr, so stdout stays clean for tables and JSON."""
    click.echo(message, err=True)


def exit_if_failed(failed):
    """Exit 1 when any row failed (its error was printed with the rest)."""
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("source")
@click.option("-p", "--precision", "precisions", multiple=True, required=True,
              type=click.Choice(PRECISIONS), help="Repeat for several bundles.")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
              help="Folder that receives OUTDIR/<model>_<precision>/.")
@model_options
@click.option("--mean", help="Your model's pixel mean, one value or three: it sees (pixel - mean) / std.")
@click.option("--std", help="Your model's pixel std, one value or three.")
@click.option("--preprocessing", type=click.Choice(PREPROCESSING_MODES), help="A zoo preprocessing mode.")
@click.option("--crop", type=float, help="Centre-crop fraction before resizing (zoo: 0.875).")
@click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line.")
@click.option("--calibration", type=click.Path(), help="int8 calibration images (default: sample_images/).")
@click.option("--calibration-count", default=DEFAULT_CALIBRATION_COUNT, show_default=True,
              help="At most this many images.")
@click.option("--io", default="int8", show_default=True, type=click.Choice(IO_TYPES),
              help="Input and output type of an int8 bundle.")
@click.option("--eval", "eval_dir", type=click.Path(), help="Images for the fidelity check (default: calibration).")
@click.option("--allow-tf-ops", is_flag=True, help="Allow TensorFlow ops (the device then needs TensorFlow).")
@click.option("--debug-layers", is_flag=True, help="Per-layer int8 error with TF's QuantizationDebugger.")
@click.option("--unsafe", is_flag=True, help="Allow unsafe deserialization (Lambda layers) of a .keras file.")
@click.option("--force", is_flag=True, help="Replace existing bundles.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def convert(source, precisions, outdir, as_json, mean, std, **options):
    """Convert SOURCE (a zoo name or a .keras/.h5/SavedModel) to TFLite bundles."""
    from device_bench.images import parse_floats
    from edgekit import api
    result = api.convert(source, precisions, outdir, mean=parse_floats(mean, "mean"), std=parse_floats(std, "std"),
                         progress=progress, **options)
    if as_json:
        echo_json(result.to_dict())
    for b in [] if as_json else result.bundles:
        if not b.error:
            click.echo(f"{b.path}  {(b.file_size or 0) / 1e6:.2f} MB{_fidelity_note(b.fidelity)}")
            for row in b.debug_layers or []:
                click.echo(f"  worst layer: {row['tensor']} ({row['op']}): RMSE/scale {row['rmse/scale']:.3f}")
    for b in result.failed:
        click.echo(f"Error: {b.precision}: {b.error}", err=True)
    exit_if_failed(result.failed)


def _fidelity_note(fid):
    if not fid:
        return ""
    if not fid["trained_weights"]:
        return "  (random weights: fidelity figures measure nothing)"
    if fid["degenerate_output"]:
        return "  (every output equal: agreement measures nothing)"
    return f"  top-1 agreement {fid['top1_agreement']:.1%}, cosine {fid['cosine']:.4f}"


def _help(opt, text=None):
    text = text or opt.help
    return text[0].upper() + text[1:] + "."


def runtime_options(f):
    """--runtime, --api and --accelerator for classify and evaluate (one each, not 'all'), with the names
    and help of their one definition in BENCH_OPTIONS."""
    for opt in reversed([o for o in BENCH_OPTIONS if o.dest in RUNTIME_OPTIONS]):
        f = click.option(opt.flag, opt.dest, type=click.Choice(runtime_choices(opt)), default=option_default(opt),
                         show_default=option_default(opt) is not None, help=_help(opt))(f)
    return f


def bench_options(f):
    """The benchmark options, generated from device_bench.options.BENCH_OPTIONS (their one definition)."""
    from device_bench.options import parse_threads

    def threads(ctx, param, value):
        try:
            return parse_threads(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None

    for opt in reversed(BENCH_OPTIONS):
        default = option_default(opt)
        if opt.kind in ("flag", "no-flag"):
            f = click.option(opt.flag, opt.dest, is_flag=True, flag_value=opt.kind == "flag",
                             default=opt.kind != "flag", help=_help(opt))(f)
        elif opt.kind == "choice":
            f = click.option(opt.flag, opt.dest, type=click.Choice(opt.choices), default=default,
                             show_default=default is not None, help=_help(opt, opt.bench_help))(f)
        else:
            kind = {"int": int, "float": float, "str": str, "threads": str}[opt.kind]
            f = click.option(opt.flag, opt.dest, type=kind, default=default, show_default=default is not None,
                             callback=threads if opt.kind == "threads" else None, help=_help(opt))(f)
    return f


def target_options(f):
    """--target/--targets/--ssh-config/--install-runtime: run on devices instead of here."""
    f = click.option("--install-runtime", is_flag=True,
                     help="Install a TFLite runtime on a target that has none (pip install --user).")(f)
    f = click.option("--ssh-config", type=click.Path(dir_okay=False), help="An ssh_config file (ssh -F).")(f)
    f = click.option("--targets", "targets_file", type=click.Path(dir_okay=False), help="A file of targets, one per line.")(f)
    f = click.option("--target", "targets", multiple=True,
                     help="'local', ssh://[user@]host[:port] or a Host alias; repeat for several devices at once.")(f)
    return f


def read_target_options(targets, targets_file, ssh_config):
    """The targets named by --target/--targets, or None to run here."""
    if not targets and not targets_file:
        return None
    from edgekit.targets import read_targets
    return read_targets(targets, targets_file, ssh_config)


@cli.command()
@click.argument("models", nargs=-1, required=True)
@bench_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of result records.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write a CSV file.")
@click.option("--force", is_flag=True, help="Replace an existing CSV file.")
@target_options
def bench(models, as_json, csv_path, force, targets, targets_file, ssh_config, install_runtime, **options):
    """Benchmark MODELS (bundles or .tflite files), one fresh process per configuration, here or on --target."""
    from device_bench.options import params_from_options
    from device_bench.safe_write import refuse_existing
    from device_bench.views import bench_warnings, render_bench, write_csv
    from edgekit import api
    if csv_path:
        refuse_existing(csv_path, force)
    params, sweep = params_from_options(options)
    results = api.benchmark(models, sweep.threads, params=params, cooldown=sweep.cooldown, repeat=sweep.repeat,
                            target=read_target_options(targets, targets_file, ssh_config),
                            install_runtime=install_runtime, progress=None if as_json else progress)
    rows = [r.to_dict() for r in results]
    if csv_path:
        write_csv(csv_path, rows, force)
    if as_json:
        echo_json(rows)
    else:
        click.echo(render_bench(rows))
        for line in bench_warnings(rows):
            progress(line)
    exit_if_failed(any(not r.ok for r in results))


def model_read_options(f):
    """How to read a bare .tflite: labels, pixel scaling, runtime (classify and evaluate share them)."""
    f = runtime_options(f)
    f = click.option("--std", help="Pixel std for a bare .tflite.")(f)
    f = click.option("--mean", help="Pixel mean for a bare .tflite: the model sees (pixel - mean) / std.")(f)
    f = click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line.")(f)
    return f


def _read_kwargs(labels, mean, std, runtime, api, accelerator, targets, targets_file, ssh_config, install_runtime):
    from device_bench.images import parse_floats
    return {"labels": labels, "mean": parse_floats(mean, "mean"), "std": parse_floats(std, "std"),
            "runtime": runtime, "api": api, "accelerator": accelerator,
            "target": read_target_options(targets, targets_file, ssh_config),
            "install_runtime": install_runtime, "progress": progress}


@cli.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True)
@click.option("--top-k", type=int, help="Labels per image (default: 5, or every class if fewer).")
@model_read_options
@click.option("--json", "as_json", is_flag=True)
@target_options
def classify(model, images, top_k, as_json, **options):
    """Top-k labels for IMAGES (files or folders) with MODEL (a bundle or .tflite), here or on --target."""
    from device_bench.views import render_classification
    from edgekit import api
    result = api.classify(model, images, top_k, **_read_kwargs(**options))
    items = [i.to_dict() for i in result]
    click.echo(json.dumps(items, indent=2) if as_json else render_classification(items))
    exit_if_failed(not result.ok)


@cli.command()
@click.argument("model")
@click.argument("dataset")
@click.option("--compare", help="A second bundle: report top-1 agreement with it.")
@model_read_options
@click.option("--json", "as_json", is_flag=True)
@target_options
def evaluate(model, dataset, compare, as_json, **options):
    """Top-1/top-5 accuracy of MODEL on DATASET (one subfolder per class, or a CSV of path,label)."""
    from device_bench.views import render_evaluation
    from edgekit import api
    result = api.evaluate(model, dataset, compare, **_read_kwargs(**options))
    results = result if isinstance(result, list) else [result]
    if as_json:
        echo_json([r.to_dict() for r in results] if isinstance(result, list) else result.to_dict())
    else:
        click.echo("\n".join(render_evaluation(r.to_dict()) for r in results))
    exit_if_failed(any(not r.ok for r in results))


@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("--dir", "folder", default="edgekit", show_default=True,
              help="Folder on the device (relative to the login's home) that keeps the runner and bundles.")
@click.option("--json", "as_json", is_flag=True)
@target_options
def deploy(bundles, folder, as_json, targets, targets_file, ssh_config, install_runtime):
    """Copy BUNDLES and device_bench.pyz to a named folder on each --target, and leave them there."""
    from edgekit.targets.jobs import deploy as run
    remote = read_target_options(targets, targets_file, ssh_config)
    if not remote:
        raise EdgekitError("deploy needs --target or --targets")
    results = run(remote, bundles, folder, install_runtime, progress)
    if as_json:
        echo_json(results)
    else:
        for r in results:
            click.echo(f"[{r['target']}] " + (f"error: {r['error']}" if "error" in r else
                                              f"{r['folder']}: {', '.join(r['files'])}"))
    exit_if_failed(any("error" in r for r in results))


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
    from edgekit.study import run_study
    from edgekit.study_config import demo_study
    _finish(run_study(demo_study(), outdir, force=force, progress=progress))


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), help="Default: the config's output.")
@click.option("--force", is_flag=True, help="Rebuild every bundle instead of reusing unchanged ones.")
def run(config, outdir, force):
    """Run the study a TOML CONFIG describes (models, precisions, threads, calibration, evaluation)."""
    from edgekit.study import run_study
    _finish(run_study(config, outdir, force=force, progress=progress))


def _finish(result):
    from edgekit.recommendation import recommend as choose
    from edgekit.recommendation import render
    from edgekit.report import render_table, table_rows
    rows = table_rows(result.to_dict())
    click.echo(render_table(rows))
    click.echo(f"report: {os.path.join(result.meta['output'], 'report.md')}")
    try:
        click.echo("\nRecommendation for this machine (edgekit recommend results.json):\n"
                   + render(choose(result.to_dict())))
    except EdgekitError as e:  # nothing was measured: the rows above say why
        click.echo(f"\nNo recommendation: {e}")
    exit_if_failed(any(r.get("error") for r in rows))


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--max-latency-ms", type=float,
              help="Latency budget (median): pick the most accurate build within it.")
@click.option("--max-top1-drop", type=float, default=0.5, show_default=True,
              help="Accuracy floor, in points below the best top-1 measured for the model.")
@click.option("--max-memory-mb", type=float, help="Leave out builds whose benchmark process peaked above this.")
@click.option("--device", help="Only the results of the device whose name, host, board or target contains this.")
@click.option("--json", "as_json", is_flag=True, help="Print the recommendations as JSON.")
def recommend(results, max_latency_ms, max_top1_drop, max_memory_mb, device, as_json):
    """Pick the build to ship (runtime x API x precision x threads) from measured RESULTS.json files only:
    the fastest within the accuracy floor, or the most accurate within --max-latency-ms; says so when the data
    cannot decide."""
    from edgekit import api
    from edgekit.recommendation import render
    recs = api.recommend(results, max_latency_ms=max_latency_ms, max_top1_drop=max_top1_drop,
                         max_memory_mb=max_memory_mb, device=device)
    click.echo(json.dumps(recs.to_dict(), indent=2) if as_json else render(recs))


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace a report already in OUTDIR.")
def report(results, outdir, force):
    """Rebuild report.md, results.csv and tradeoff.png from saved RESULTS.json files (several devices too)."""
    from edgekit.report import load_results, write_report
    from device_bench.safe_write import refuse_existing
    refuse_existing(os.path.join(outdir, "report.md"), force)
    write_report(load_results(results), outdir, progress=progress)


def main():
    """The `edgekit` console script."""
    cli(prog_name="edgekit")


if __name__ == "__main__":
    main()
