"""The edgekit command line: each command parses options, calls one library function, prints.

Nothing heavy is imported at module level, so ``edgekit --help`` starts without TensorFlow.
"""

import json
import os
import sys

import click

from device_bench.errors import EdgekitError
from device_bench.interrupts import install as install_interrupts, interrupted
from device_bench.options import (ALL_PRECISIONS, BENCH_OPTIONS, DEFAULT_CALIBRATION_COUNT, DEFAULT_IO, IO_TYPES,
                                  COMPRESS_METHODS, KEEP_AS, OPEN_OPTIONS, PREDICT_OPTIONS, PREPROCESSING_MODES,
                                  PRECISIONS, QUANTIZERS, option_default, single_choices)


class EdgekitGroup(click.Group):
    """Turn every EdgekitError into one ``Error: ...`` line and exit status 1, in one place."""

    def invoke(self, ctx):
        """Run the command; the user's mistakes become one line, never a traceback."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, Exception) as e:
            if isinstance(e, KeyboardInterrupt) or interrupted():
                click.echo("Error: interrupted", err=True)  # native code may dress the interrupt up
                ctx.exit(130)
            if not isinstance(e, EdgekitError):
                raise  # click's own usage errors, or a bug: its traceback is what a report needs
            click.echo(f"Error: {e}", err=True)
            ctx.exit(1)


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
    from edgekit import api
    rows = api.models()
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
    from edgekit import api
    info = api.build(name, output, alpha=alpha, size=size, classes=classes, weights=weights, force=force)
    click.echo(f"wrote {info['path']}: {info['name']}, {info['params']:,} parameters, "
               f"{info['macs'] / 1e6:.1f}M multiply-adds, input {info['input_size']}")


def progress(message):
    """Progress goes to stderr, so stdout stays clean for tables and JSON."""
    click.echo(message, err=True)


def exit_if_failed(failed):
    """Exit 1 when any row failed (its error was printed with the rest)."""
    if failed:
        sys.exit(1)


def scaling_options(f):
    """How a model file's pixels are scaled (convert, quantize, train and compress share them; a file made by
    `edgekit train` carries its own)."""
    f = click.option("--crop", type=float, help="Centre-crop fraction before resizing (default: what the model "
                                                "file says, else the zoo's for convert, else 1).")(f)
    f = click.option("--preprocessing", type=click.Choice(PREPROCESSING_MODES), help="A zoo preprocessing mode.")(f)
    f = click.option("--std", help="Your model's pixel std, one value or three.")(f)
    f = click.option("--mean", help="Your model's pixel mean, one value or three: it sees (pixel - mean) / std.")(f)
    return f


def pixel_options(f):
    """Pixel scaling and class names (convert and quantize)."""
    f = click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line.")(f)
    return scaling_options(f)


def unsafe_option(f):
    """--unsafe and --custom-objects: how a Keras model file is deserialized (convert, train, compress)."""
    f = click.option("--custom-objects", "custom_objects", multiple=True, metavar="MODULE[:NAME]",
                     help="Import MODULE (from the working folder too) so the custom layers it registers load; "
                          "MODULE:NAME registers NAME. Repeatable.")(f)
    return click.option("--unsafe", is_flag=True, help="Allow unsafe deserialization (Lambda layers) of a .keras "
                                                       "file: only for files you trust.")(f)


def quantize_options(f):
    """Calibration, I/O type, evaluation images, per-layer report and mixed precision (convert and quantize)."""
    f = click.option("--no-latency-limit", "latency_limit", is_flag=True, flag_value=False, default=True,
                     help="Let --recover-accuracy go on when a mixed build runs slower than fp32 on this machine.")(f)
    f = click.option("--keep-as", type=click.Choice(KEEP_AS), default="float", show_default=True,
                     help="What --recover-accuracy makes of the layers it takes out of int8.")(f)
    f = click.option("--recover-accuracy", type=float, metavar="TOP1_DROP",
                     help="Keep the worst layers of an int8 build float, a few at a time, until top-1 on --eval "
                          "is within TOP1_DROP points of fp32 (LiteRT quantizer).")(f)
    f = click.option("--eval", "--eval-dir", "eval_dir", type=click.Path(),
                     help="Images for the fidelity check (default: calibration); labelled class folders for "
                          "--recover-accuracy.")(f)
    f = click.option("--io", default=DEFAULT_IO, show_default=True, type=click.Choice(IO_TYPES),
                     help="Input and output type of an int8 bundle (uint8: raw pixels, as phone apps feed them).")(f)
    f = click.option("--calibration-count", default=DEFAULT_CALIBRATION_COUNT, show_default=True,
                     help="At most this many images.")(f)
    f = click.option("--calibration", type=click.Path(),
                     help="Calibration images for int8 and int16x8 (default: the photographs shipped in edgekit/sample_images/).")(f)
    return f


def bundle_options(precision_help):
    """-p, -o, --force, --json: which bundles, and where (convert and quantize)."""
    def decorate(f):
        f = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")(f)
        f = click.option("--force", is_flag=True, help="Replace existing bundles.")(f)
        f = click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
                         help="Folder that receives OUTDIR/<model>_<precision>/.")(f)
        return click.option("-p", "--precision", "precisions", multiple=True, required=True,
                            type=click.Choice(ALL_PRECISIONS), help=precision_help)(f)
    return decorate


@cli.command()
@click.argument("source")
@bundle_options("Repeat for several bundles (int16x8: --quantizer litert).")
@model_options
@pixel_options
@quantize_options
@click.option("--fold-preprocessing/--no-fold-preprocessing", default=None,
              help="Make the model take raw RGB pixels, its normalization the first op of the graph "
                   "(default: on for zoo models).")
@click.option("--quantizer", "quantizers", multiple=True, type=click.Choice(QUANTIZERS), default=["tflite"],
              show_default=True, help="tflite: TFLiteConverter; litert: the LiteRT quantizer on the fp32 .tflite. "
                                      "Give both to compare them.")
@click.option("--layer-report", is_flag=True,
              help="Per-layer error of each quantized build against fp32: table, CSV, Model Explorer JSON, plot.")
@click.option("--allow-tf-ops", is_flag=True, help="Allow TensorFlow ops (the device then needs TensorFlow).")
@click.option("--debug-layers", is_flag=True, help="Per-layer int8 error with TF's QuantizationDebugger.")
@unsafe_option
def convert(source, **options):
    """Convert SOURCE (a zoo name or a .keras/.h5/SavedModel) to TFLite bundles."""
    from edgekit import api
    _make_bundles(api.convert, source, **options)


@cli.command()
@click.argument("model")
@bundle_options("Repeat for several bundles; fp32 packages MODEL as it is.")
@pixel_options
@quantize_options
@click.option("--report", "--layer-report", "layer_report", is_flag=True,
              help="Per-layer error against the float model: table, CSV, Model Explorer JSON, plot.")
@click.option("--profile", "with_profile", is_flag=True,
              help="With --report: add each layer's time (`edgekit profile` here, OpenVINO's kernels) to its table.")
def quantize(model, with_profile, **options):
    """Quantize MODEL (a float .tflite, or a bundle holding one) with the LiteRT quantizer, without TensorFlow."""
    from edgekit import api
    if with_profile and not options["layer_report"]:
        raise click.UsageError("--profile adds a time column to --report's table: give --report too")
    _make_bundles(api.quantize, model, with_profile=with_profile, **options)


def _make_bundles(function, source, precisions, outdir, as_json, mean, std, with_profile=False, **options):
    """Call convert or quantize with the parsed options, then print what it made."""
    from device_bench.images import parse_floats
    result = function(source, precisions, outdir, mean=parse_floats(mean, "mean"), std=parse_floats(std, "std"),
                      progress=progress, **options)
    if with_profile:
        from edgekit import api
        from edgekit.profiling import add_times
        for b in result.bundles:
            if b.layer_report and not b.error:
                progress(f"{b.path}: profiling each op (OpenVINO's kernels, not LiteRT's)")
                add_times(b.layer_report["worst"], api.profile(b.path))
    _print_bundles(result, as_json)


def _print_bundles(result, as_json):
    """What convert and quantize print: each bundle with its checks, reports and recovery, then the errors."""
    if as_json:
        echo_json(result.to_dict())
    for b in [] if as_json else result.bundles:
        if not b.error:
            click.echo(f"{b.path}  {(b.file_size or 0) / 1e6:.2f} MB{_fidelity_note(b.fidelity)}")
            for row in b.debug_layers or []:
                click.echo(f"  worst layer: {row['tensor']} ({row['op']}): RMSE/scale {row['rmse/scale']:.3f}")
            if b.versus_tflite:
                click.echo(f"  against TFLiteConverter's {b.precision}: top-1 agreement "
                           f"{b.versus_tflite['top1_agreement']:.1%}, cosine {b.versus_tflite['cosine']:.4f}")
            _print_layer_report(b.layer_report)
            _print_recovery(b.recovery)
    for b in result.failed:
        click.echo(f"Error: {b.precision}: {b.error}", err=True)
    exit_if_failed(result.failed)


def _print_layer_report(report):
    if not report:
        return
    from converters.layer_errors import table
    click.echo(f"  worst layers ({report['layers']} compared on {report['images']} calibration images; quant SNR: "
               f"this layer's own rounding, as the next layer reads it):")
    click.echo("\n".join("    " + line for line in table(report["worst"]).splitlines()))
    click.echo("  " + ", ".join(f"{kind}: {path}" for kind, path in report["files"].items()))


def _print_recovery(rec):
    if not rec:
        return
    from device_bench.views import format_table
    fp32 = dict(rec["fp32"], step="fp32", drop_points=0.0, kept=[])
    click.echo(f"  mixed precision (target: top-1 within {rec['target_drop_points']} points of fp32):")
    rows = format_table([fp32, *rec["steps"]], [
        ("step", "step"), ("top-1", lambda r: f"{r['top1']:.2%}"), ("drop", lambda r: f"{r['drop_points']:.2f}"),
        ("MB", lambda r: f"{r['size'] / 1e6:.2f}"), ("ms", "latency_ms"),
        (f"kept {rec['keep_as']}", lambda r: ", ".join(x[-40:] for x in r["kept"]) or "-")])
    click.echo("\n".join("    " + line for line in rows.splitlines()))
    click.echo(f"  chose step {rec['chosen_step']}" + ("" if rec["reached"] else " (target not reached)")
               + f"; stopped: {rec['stopped']}")


def _fidelity_note(fid):
    if not fid:
        return ""
    if fid["trained_weights"] is False:
        return "  (random weights: fidelity figures measure nothing)"
    if fid["degenerate_output"]:
        return "  (near-constant outputs, one class for every image: agreement measures nothing)"
    return f"  top-1 agreement {fid['top1_agreement']:.1%}, cosine {fid['cosine']:.4f}"


def _help(opt, text=None):
    text = text or opt.help
    return text[0].upper() + text[1:] + "."


def bench_options(f, only=None):
    """The benchmark options (or those whose dest is in ``only``: a command that opens one model, so its
    choices exclude 'all'), generated from device_bench.options.BENCH_OPTIONS, their one definition."""
    from device_bench.options import parse_threads

    def threads(ctx, param, value):
        try:
            return parse_threads(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None

    for opt in reversed([o for o in BENCH_OPTIONS if only is None or o.dest in only]):
        default = option_default(opt)
        if opt.kind in ("flag", "no-flag"):
            f = click.option(opt.flag, opt.dest, is_flag=True, flag_value=opt.kind == "flag",
                             default=opt.kind != "flag", help=_help(opt))(f)
        elif opt.kind == "choice":
            f = click.option(opt.flag, opt.dest, type=click.Choice(single_choices(opt) if only else opt.choices),
                             default=default, show_default=default is not None,
                             help=_help(opt) if only else _help(opt, opt.bench_help))(f)
        else:
            kind = {"int": int, "float": float, "str": str, "threads": str}[opt.kind]
            f = click.option(opt.flag, opt.dest, type=kind, default=default, show_default=default is not None,
                             callback=threads if opt.kind == "threads" else None, help=_help(opt))(f)
    return f


def history_options(f):
    """--history [PATH] and --label: append what was measured to a results history (bench, run, evaluate)."""
    f = click.option("--label", help="Tag the history records (a git commit, a version): `edgekit compare "
                                     "history:LABEL ...` selects them.")(f)
    return click.option("--history", "history", is_flag=False, flag_value="", default=None, metavar="[PATH]",
                        help="Append the results to this SQLite history (alone: the default one, "
                             "EDGEKIT_HISTORY or ~/.local/share/edgekit/history.sqlite). Also on when "
                             "EDGEKIT_HISTORY is set.")(f)


def _history(option):
    from edgekit.study.history import wanted
    return wanted(option)


def target_options(f):
    """--target/--targets/--ssh-config/--install-runtime: run on devices instead of here."""
    f = click.option("--install-runtime", is_flag=True,
                     help="Install a TFLite runtime on a target that has none (pip install --user).")(f)
    f = click.option("--ssh-config", type=click.Path(dir_okay=False), help="An ssh_config file (ssh -F).")(f)
    f = click.option("--targets", "targets_file", type=click.Path(dir_okay=False), help="A file of targets, one per line.")(f)
    f = click.option("--target", "targets", multiple=True,
                     help="'local', ssh://[user@]host[:port], a Host alias, or (bench) 'adb' / adb://SERIAL for an "
                          "Android phone; repeat for several devices at once.")(f)
    return f


def phone_options(f):
    """--adb, --benchmark-binary, --max-temp, --cooldown-max, --cpu-mask: how bench runs on an Android phone (left
    out: None, so that edgekit.benchmark fills in AdbSettings' defaults and refuses them without a phone)."""
    from edgekit.targets.adb import AdbSettings
    f = click.option("--cpu-mask", help="Phone: pin benchmark_model to these cores with taskset (e.g. f0).")(f)
    f = click.option("--cooldown-max", type=float, help="Phone: wait at most this long (s) for it to cool before "
                                                         f"each process.  [default: {AdbSettings.cooldown_max:g}]")(f)
    f = click.option("--max-temp", type=float, help="Phone: start each process below this battery temperature (°C) "
                                                     f"and not throttled.  [default: {AdbSettings.max_temp:g}]")(f)
    f = click.option("--benchmark-binary", type=click.Path(dir_okay=False),
                     help="Phone: LiteRT's benchmark_model for its ABI, pushed for the run.")(f)
    f = click.option("--adb", "adb_path", type=click.Path(dir_okay=False), help="The adb command (default: on PATH).")(f)
    return f


def read_target_options(targets, targets_file):
    """The names given with --target/--targets (the API opens them), or None to run here."""
    if not targets and not targets_file:
        return None
    from edgekit.targets import target_specs
    return target_specs(targets, targets_file)


def training_options(f):
    """--epochs, --lr, --seed, ...: generated from edgekit.training.fit.TrainSettings (their one definition)."""
    from dataclasses import MISSING, fields
    from edgekit.training.fit import TrainSettings
    for fld in reversed(fields(TrainSettings)):
        meta = fld.metadata
        kind = click.Choice(meta["choices"]) if "choices" in meta else {"int": int, "float": float}.get(fld.type, fld.type)
        # no click default: an option left out keeps the base settings (compress: the split the model was
        # trained with), so the default is only shown
        shown = f"  [default: {fld.default}]" if fld.default not in (None, MISSING) else ""
        f = click.option(f"--{fld.name.replace('_', '-')}", fld.name, type=kind, default=None,
                         help=meta["help"] + shown)(f)
    return f


def fitting_options(json_help):
    """What train and compress share: pixel scaling, the training settings, --unsafe, --force and --json."""
    def decorate(f):
        f = click.option("--json", "as_json", is_flag=True, help=json_help)(f)
        f = click.option("--force", is_flag=True, help="Replace an existing output.")(f)
        return scaling_options(training_options(unsafe_option(f)))
    return decorate


def _show_bar(as_json):
    """Keras's progress bar on a terminal, not in --json output or a log."""
    return not as_json and sys.stderr.isatty()


@cli.command()
@click.argument("model")
@click.argument("dataset", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output .keras file.")
@click.option("--alpha", type=float, help="Width multiplier (MobileNets).")
@click.option("--size", type=int, help="Input size in pixels (square).")
@click.option("--weights", default="imagenet", show_default=True,
              help="Pretrained backbone: 'imagenet' (used when Keras can fetch it), 'none' or a local weights file.")
@fitting_options("Print the training record as JSON.")
def train(model, dataset, output, mean, std, as_json, **options):
    """Train MODEL (a zoo name or a .keras file) on DATASET (one subfolder per class); the .keras file
    it writes carries its preprocessing and labels, so `edgekit convert` needs neither."""
    from device_bench.images import parse_floats
    from edgekit import api
    result = api.train(model, dataset, output, mean=parse_floats(mean, "mean"), std=parse_floats(std, "std"),
                       progress=progress, progress_bar=_show_bar(as_json), **options)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(f"{result.path}: {result.model}, {len(result.labels)} classes, held-out top-1 "
                   f"{result.val_top1:.2%} on {result.counts['val']} images after {result.epochs_run} epochs"
                   + ("" if result.pretrained else " (trained from scratch)"))


@cli.command()
@click.argument("model", type=click.Path())
@click.argument("dataset", type=click.Path())
@click.option("--method", "methods", multiple=True, required=True, type=click.Choice(COMPRESS_METHODS),
              help="prune, channels, distill or qat; repeat to chain them in the order given (qat last).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output .keras file.")
@click.option("--sparsity", type=float, help="prune: fraction of weights set to zero, in (0, 1)  [default: 0.75].")
@click.option("--student", help="distill: the student, a zoo name (e.g. squeezenet1_1) or a .keras file.")
@click.option("--alpha", type=float, help="distill: the zoo student's width multiplier.")
@click.option("--size", type=int, help="distill: the zoo student's input size (default: the teacher's).")
@click.option("--temperature", type=float, help="distill: softmax temperature  [default: 4].")
@click.option("--label-weight", type=float, help="distill: weight of the hard-label loss, in [0, 1]  [default: 0.1].")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="distill: also train the student alone (same seed and epochs) to compare.")
@click.option("--speedup", type=float, help="channels: make the model this many times faster on --target (> 1).")
@click.option("--target-latency-ms", type=float, help="channels: the p50 latency to reach on --target, in ms.")
@click.option("--target", help="channels: where latency is measured: local, ssh://host or adb://serial "
                               "(default: this machine, in fresh processes).")
@click.option("--ssh-config", type=click.Path(dir_okay=False), help="channels: an OpenSSH config file for --target.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="int8", show_default=True,
              help="channels: the build whose latency is measured.")
@click.option("--max-top1-drop", type=float, help="channels: stop before a step costs more held-out top-1 "
                                                  "than this (points).")
@click.option("--keep", multiple=True, metavar="LAYER", help="channels: keep this Conv2D/Dense layer's channels "
                                                             "whole (and what reads them). Repeatable.")
@fitting_options("Print the record (every step and measurement) as JSON.")
def compress(model, dataset, methods, output, mean, std, as_json, **options):
    """Compress MODEL (.keras) with DATASET's class folders: prune, channels, distill, qat, chained in the order
    given. channels removes whole channels, step by step, by latency measured on the device (NetAdapt).

    Each stage is measured: top-1 on the held-out split (Keras, then its int8 .tflite in LiteRT), the
    .tflite's raw and gzip'd size and its latency. Pruning shrinks only the gzip'd size: the raw file
    stays as large, and XNNPACK runs unstructured sparsity no faster."""
    from device_bench.images import parse_floats
    from edgekit import api
    result = api.compress(model, dataset, output, methods, mean=parse_floats(mean, "mean"),
                          std=parse_floats(std, "std"), progress=progress, progress_bar=_show_bar(as_json), **options)
    if as_json:
        echo_json(result.to_dict())
        return
    from device_bench.views import format_table
    click.echo(format_table([_measurement_row(m) for m in result.measurements], MEASUREMENT_COLUMNS))
    for step in result.steps:
        for line in _step_lines(step):
            click.echo(line)
    click.echo(f"wrote {result.path}")


MEASUREMENT_COLUMNS = [("stage", "stage"), ("top-1", "top1"), ("int8 top-1", "int8_top1"), ("tflite KB", "kb"),
                       ("gzip KB", "gzip_kb"), ("p50 ms", "latency_ms"), ("Q/DQ ops", "quantize_ops"),
                       ("error", "error")]


def _measurement_row(m):
    row = dict(vars(m))
    row["kb"] = m.tflite_bytes and m.tflite_bytes / 1e3
    row["gzip_kb"] = m.gzip_bytes and m.gzip_bytes / 1e3
    return row


def _step_lines(step):
    """The few lines that say what one compression step found."""
    d = step["details"]
    if step["method"] == "prune":
        from device_bench.views import format_table
        rows = [dict(r, kept="pruned" if r["pruned"] else "dense") for r in d["layers"]]
        return [format_table(rows, [("layer", "layer"), ("type", "type"), ("weights", "weights"),
                                    ("zero fraction", "zero_fraction"), ("", "kept")]),
                f"pruned {sum(r['pruned'] for r in d['layers'])} layers: {d['pruned_zero_fraction']:.1%} of their "
                f"{d['pruned_weights']:,} weights are zero (the raw .tflite does not shrink, and XNNPACK runs "
                f"no faster; the gzip'd size does shrink)"]
    if step["method"] == "channels":
        return [f"channels: {len(d['steps'])} steps, {d['precision']} p50 {d['base_ms']:.3f} -> {d['final_ms']:.3f} ms "
                f"(target {d['target_ms']:.3f}, floor {d['floor_ms'] or float('nan'):.3f}) on {d['device']['target']}; held-out top-1 "
                f"{d['base_top1']:.2%} -> {d['top1']:.2%}" + (f"; stopped: {d['stopped']}" if d["stopped"] else "")]
    if step["method"] == "distill":
        alone = d.get("student_alone_top1")
        return [f"distilled {d['student']}: top-1 {d['distilled_top1']:.2%}" +
                (f" against {alone:.2%} trained alone (same seed and epochs)" if alone is not None else "") +
                f"; teacher {d['teacher_top1']:.2%}"]
    return [f"qat: int8 top-1 {step['after']['int8_top1']:.2%} against post-training int8 "
            f"{step['before']['int8_top1']:.2%}" if step["after"].get("int8_top1") is not None
            and step["before"].get("int8_top1") is not None else "qat: int8 accuracy not measured"]


@cli.command()
@click.argument("models", nargs=-1, required=True)
@bench_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of result records.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write a CSV file.")
@click.option("--force", is_flag=True, help="Replace an existing CSV file.")
@target_options
@phone_options
@history_options
def bench(models, as_json, csv_path, force, targets, targets_file, ssh_config, install_runtime, adb_path,
          benchmark_binary, max_temp, cooldown_max, cpu_mask, history, label, **options):
    """Benchmark MODELS (bundles or .tflite files), one fresh process per configuration, here or on --target."""
    from device_bench.options import params_from_options
    from device_bench.safe_write import refuse_existing
    from device_bench.views import bench_warnings, render_bench, write_csv
    from edgekit import api
    if csv_path:
        refuse_existing(csv_path, force)
    params, sweep = params_from_options(options)
    results = api.benchmark(models, sweep.threads, params=params, cooldown=sweep.cooldown, repeat=sweep.repeat,
                            target=read_target_options(targets, targets_file), ssh_config=ssh_config,
                            install_runtime=install_runtime, adb=adb_path, benchmark_binary=benchmark_binary,
                            max_temp=max_temp, cooldown_max=cooldown_max, cpu_mask=cpu_mask,
                            history=_history(history), label=label, progress=None if as_json else progress)
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


def open_options(f):
    """--runtime, --no-verify, --max-memory: how any command opens a model."""
    return bench_options(f, only=OPEN_OPTIONS)


def model_read_options(f):
    """How to read a model: labels, pixel scaling, runtime, API, accelerator, verification (classify and
    evaluate share them)."""
    f = bench_options(f, only=PREDICT_OPTIONS)
    f = click.option("--std", help="Pixel std for a bare .tflite.")(f)
    f = click.option("--mean", help="Pixel mean for a bare .tflite: the model sees (pixel - mean) / std.")(f)
    f = click.option("--labels", type=click.Path(dir_okay=False), help="Class names, one per line.")(f)
    return f


def _read_kwargs(labels, mean, std, targets, targets_file, ssh_config, install_runtime, **open_opts):
    from device_bench.images import parse_floats
    return {"labels": labels, "mean": parse_floats(mean, "mean"), "std": parse_floats(std, "std"), **open_opts,
            "target": read_target_options(targets, targets_file), "ssh_config": ssh_config,
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
    if any(p["label"] is None for i in items for p in i.get("predictions") or []):
        progress(f"note: {model} has no labels, so classes are shown by index (--labels FILE names them)")
    click.echo(json.dumps(items, indent=2) if as_json else render_classification(items))
    exit_if_failed(not result.ok)


@cli.command()
@click.argument("model")
@click.argument("dataset")
@click.option("--compare", help="A second bundle: report top-1 agreement with it.")
@model_read_options
@click.option("--json", "as_json", is_flag=True)
@target_options
@history_options
def evaluate(model, dataset, compare, as_json, history, label, **options):
    """Top-1/top-5 accuracy of MODEL on DATASET (one subfolder per class, or a CSV of path,label)."""
    from device_bench.views import render_evaluation
    from edgekit import api
    results = api.evaluate(model, dataset, compare, history=_history(history), label=label,
                           **_read_kwargs(**options))
    if as_json:  # one record here; a list of them, one per device, with --target
        echo_json([r.to_dict() for r in results] if options["targets"] or options["targets_file"]
                  else results[0].to_dict())
    else:
        click.echo("\n".join(render_evaluation(r.to_dict()) for r in results))
    exit_if_failed(any(not r.ok for r in results))


@cli.command()
@click.argument("model")
@open_options
@click.option("--json", "as_json", is_flag=True)
def inspect(model, as_json, **options):
    """What a phone app or a board will see in MODEL (a bundle or .tflite): tensors, standard metadata,
    edgekit's manifest, the op histogram and the ops XNNPACK takes."""
    from device_bench.views import render_inspection
    from edgekit import api
    result = api.inspect(model, **options)
    click.echo(json.dumps(result, indent=2) if as_json else render_inspection(result))


@cli.command()
@click.argument("model")
@click.option("--accelerator", help="ethos-u55-128 (or another Ethos-U configuration Vela knows): Vela's estimate; "
                                    "with --target adb: cpu, gpu, npu or nnapi.")
@click.option("--threads", default=1, show_default=True, help="Threads (OpenVINO here, benchmark_model on a phone).")
@click.option("--runs", default=50, show_default=True, help="At least this many timed runs.")
@click.option("--min-secs", default=1.0, show_default=True, help="And at least this many seconds.")
@click.option("--compare", type=click.Path(), help="A second build of the same graph: both side by side, op by op.")
@click.option("--target", help="adb or adb://SERIAL: profile on an Android phone with benchmark_model.")
@click.option("--no-verify", "verify", is_flag=True, flag_value=False, default=True,
              help="Skip checking a bundle's model.tflite against its manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the rows as CSV.")
@click.option("--force", is_flag=True, help="Replace an existing CSV file.")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False),
              help="Phone: LiteRT's benchmark_model for its ABI, pushed for the run.")
@click.option("--adb", "adb_path", type=click.Path(dir_okay=False), help="The adb command (default: on PATH).")
def profile(model, as_json, csv_path, force, adb_path, **options):
    """Where the time goes in MODEL (a bundle or .tflite): one row per op of its graph, worst first, with the
    Keras layer, multiply-adds, time and their shares. Here: OpenVINO's kernels (not LiteRT's); --accelerator
    ethos-u55-128: Vela's estimate; --target adb: LiteRT's benchmark_model on the phone."""
    from device_bench.safe_write import refuse_existing
    from device_bench.views import write_csv
    from edgekit import api
    from edgekit.profiling.views import csv_rows, render_profile
    if csv_path:
        refuse_existing(csv_path, force)
    result = api.profile(model, adb=adb_path, progress=None if as_json else progress, **options).to_dict()
    if csv_path:
        write_csv(csv_path, csv_rows(result), force)
    click.echo(json.dumps(result, indent=2) if as_json else render_profile(result))


@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("--dir", "folder", default="edgekit", show_default=True,
              help="Folder on the device (relative to the login's home) that keeps the runner and bundles.")
@click.option("--json", "as_json", is_flag=True)
@target_options
def deploy(bundles, folder, as_json, targets, targets_file, ssh_config, install_runtime):
    """Copy BUNDLES and device_bench.pyz to a named folder on each --target, and leave them there."""
    from edgekit import api
    results = api.deploy(bundles, read_target_options(targets, targets_file), folder=folder, ssh_config=ssh_config,
                         install_runtime=install_runtime, progress=progress)
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
    from edgekit import api
    path = api.pack_runner(output, force=force)
    click.echo(f"wrote {path}: run `python3 {output} bench BUNDLE` on a device with numpy and a TFLite runtime")


@cli.command()
@click.option("-o", "--output", "outdir", default="demo-out", show_default=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Rebuild every bundle instead of reusing unchanged ones, and replace "
                                          "another study's report in OUTDIR.")
def demo(outdir, force):
    """The built-in study: SqueezeNet 1.1, MobileNet V1 and V2 at 224, every precision, benchmarked here."""
    from edgekit import api
    _finish(api.demo(outdir, force=force, progress=progress))


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), help="Default: the config's output.")
@click.option("--force", is_flag=True, help="Rebuild every bundle instead of reusing unchanged ones, and replace "
                                          "another study's report in OUTDIR.")
@click.option("--cluster", metavar="ADDRESS", help="Run the steps on a Dask cluster: local[:N] (N worker processes "
                                                    "here) or tcp://host:8786 (a scheduler). Needs edgekit-tflite[cluster].")
@history_options
def run(config, outdir, force, cluster, history, label):
    """Run the study a TOML CONFIG describes (models, precisions, threads, calibration, evaluation)."""
    from edgekit import api
    _finish(api.run(config, outdir, force=force, history=_history(history), label=label, progress=progress,
                    cluster=cluster))


def _finish(result):
    from edgekit.study.recommend import render
    from edgekit.study.report import render_table
    click.echo(render_table(result.table))
    page = os.path.join(result.meta["output"], "report.html")
    click.echo(f"report: {os.path.join(result.meta['output'], 'report.md')}"
               + (f", {page} (open it in a browser)" if os.path.exists(page) else ""))
    if isinstance(result.recommendations, EdgekitError):  # nothing was measured: the rows above say why
        click.echo(f"\nNo recommendation: {result.recommendations}")
    else:
        click.echo("\nRecommendation for this machine (edgekit recommend results.json):\n"
                   + render(result.recommendations))
    exit_if_failed(any(r.get("error") for r in result.table))


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
    from edgekit.study.recommend import render
    recs = api.recommend(results, max_latency_ms=max_latency_ms, max_top1_drop=max_top1_drop,
                         max_memory_mb=max_memory_mb, device=device)
    click.echo(json.dumps(recs.to_dict(), indent=2) if as_json else render(recs))


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace a report already in OUTDIR.")
def report(results, outdir, force):
    """Rebuild report.md, report.html, results.csv and tradeoff.png from saved RESULTS.json files (several devices
    too)."""
    from edgekit import api
    api.report(results, outdir, force=force, progress=progress)


@cli.command()
@click.argument("base")
@click.argument("new")
@click.option("--fail-above", metavar="PCT",
              help="Exit 1 when a configuration is slower by more than PCT percent and the change is significant.")
@click.option("--history",
              help="The history that history:LABEL reads (default: EDGEKIT_HISTORY or the user's data folder).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(base, new, fail_above, history, as_json):
    """Compare results BASE and NEW (results.json, `edgekit bench --json` output, or history:LABEL) for every
    configuration on both sides: p50 change with its 95% interval and significance (per-process medians),
    memory, top-1."""
    from edgekit import api
    from edgekit.study.compare import regression_lines, render
    result = api.compare(base, new, history=history, fail_above=_percent(fail_above))
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else render(result))
    for line in regression_lines(result):
        progress(line)
    exit_if_failed(not result.ok)


def _percent(text):
    """--fail-above's value: a number of percent, 0 or more; anything else is a one-line error."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise EdgekitError(f"--fail-above must be a number of percent (0 or more), got {text!r}") from None
    if not value >= 0:
        raise EdgekitError(f"--fail-above must be a number of percent (0 or more), got {text!r}")
    return value


@cli.group()
def history():
    """The results history that bench, run and evaluate append to with --history (or EDGEKIT_HISTORY)."""


def history_path_option(f):
    return click.option("--history", "path",
                        help="The history file (default: EDGEKIT_HISTORY, else the user's data folder).")(f)


HISTORY_COLUMNS = [("id", "id"), ("created", "created"), ("label", "label"), ("kind", "kind"), ("device", "device"),
                   ("model", "model"), ("precision", "precision"), ("runtime", "runtime"), ("threads", "threads"),
                   ("p50 ms", "p50_ms"), ("peak MB", "peak_rss_mb"), ("top-1", "top1")]


@history.command("list")
@history_path_option
@click.option("--label", help="Only the records with this label.")
@click.option("--model", help="Only the records of this model.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N records.")
@click.option("--json", "as_json", is_flag=True, help="Print the records' columns as JSON.")
def history_list(path, label, model, limit, as_json):
    """List the history's records, oldest first."""
    from device_bench.views import format_table
    from edgekit import api
    from edgekit.study.history import COLUMNS
    rows = [{k: r[k] for k in COLUMNS} for r in api.history_records(path, label=label, model=model, limit=limit)]
    click.echo(json.dumps(rows, indent=2) if as_json else format_table(rows, HISTORY_COLUMNS))


@history.command("show")
@click.argument("record_id", type=int)
@history_path_option
def history_show(record_id, path):
    """Print everything one record keeps (per-process figures, bundle settings, environment) as JSON."""
    from edgekit import api
    found = api.history_records(path, ids=[record_id])
    if not found:
        raise EdgekitError(f"no record {record_id} in the history")
    echo_json(found[0])


@history.command("export")
@history_path_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="A .csv or .json file.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: the output's extension.")
@click.option("--label", help="Only the records with this label.")
@click.option("--force", is_flag=True, help="Replace an existing output.")
def history_export(path, output, fmt, label, force):
    """Export the history's records: CSV (the columns) or JSON (everything kept)."""
    from edgekit import api
    fmt = api.history_export(output, path, format=fmt, label=label, force=force)
    click.echo(f"wrote {output} ({fmt})")


@history.command("plot")
@history_path_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="An .html file.")
@click.option("--label", help="Only the records with this label.")
@click.option("--force", is_flag=True, help="Replace an existing output.")
def history_plot(path, output, label, force):
    """Write an HTML page (no network needed) of p50 over time, one line per configuration."""
    from edgekit import api
    click.echo(f"wrote {api.history_plot(output, path, label=label, force=force)}")


def main():
    """The `edgekit` console script."""
    from device_bench.interrupts import finished, quiet_broken_pipe
    install_interrupts()
    try:
        try:
            status = cli(prog_name="edgekit", standalone_mode=False)  # ctx.exit(N) comes back as N
        except SystemExit as e:  # exit_if_failed: the output is printed, and must still be flushed here
            status = e.code
        sys.stdout.flush()  # here, so that a closed pipe is met inside this try and not at exit
        finished()  # the work is done and printed: a signal during the runtime's teardown stops nothing
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("Error: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # the reader left (`edgekit ... --json | head -1`)
        quiet_broken_pipe()
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
