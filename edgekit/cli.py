"""The edgekit command line: each command parses options, calls one library function, prints.

Nothing heavy is imported at module level, so ``edgekit --help`` starts without TensorFlow.
"""

import json
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


def parse_floats(text, what):
    if text is None:
        return None
    try:
        return [float(v) for v in str(text).replace(",", " ").split()]
    except ValueError:
        raise EdgekitError(f"--{what} takes numbers separated by commas, got {text!r}") from None


def model_options(f):
    """Zoo build options shared by build and convert."""
    f = click.option("--alpha", type=float, help="Width multiplier (MobileNets).")(f)
    f = click.option("--size", type=int, help="Input size in pixels (square).")(f)
    f = click.option("--classes", type=int, help="Number of classes (default 1000).")(f)
    f = click.option("--weights", default="none", show_default=True,
                     help="'imagenet' (Keras's download and cache), 'none' (random) or a local weights file.")(f)
    return f


def render_table(rows, columns):
    """A plain-text table: columns is a list of (header, key) pairs."""
    cells = [[h for h, _ in columns]] + [[_fmt(r.get(k)) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models(as_json):
    """List the model zoo: parameters, multiply-adds, input size, preprocessing, weights."""
    from edgekit.zoo_info import describe_zoo
    rows = describe_zoo()
    if as_json:
        echo_json(rows)
    else:
        click.echo(render_table(rows, [("name", "name"), ("params", "params"), ("MACs", "macs"),
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
    from edgekit.convert_cmd import run_convert
    summary = run_convert(source, precisions, outdir, alpha=alpha, size=size, classes=classes, weights=weights,
                          unsafe=unsafe, mean=parse_floats(mean, "mean"), std=parse_floats(std, "std"),
                          preprocessing=preprocessing, crop_fraction=crop_fraction, labels=labels,
                          calibration=calibration, calibration_count=calibration_count, io=io,
                          allow_tf_ops=allow_tf_ops, eval_dir=eval_dir, debug_layers=debug_layers,
                          force=force, progress=progress)
    if as_json:
        echo_json(summary)
        return
    for b in summary["bundles"]:
        fid = b.get("fidelity")
        click.echo(f"{b['bundle']}  {b.get('file_size', 0) / 1e6:.2f} MB"
                   + (f"  top-1 agreement {fid['top1_agreement']:.1%}, cosine {fid['cosine']:.4f}" if fid else ""))
        for row in b.get("debug_layers") or []:
            click.echo(f"  worst layer: {row['tensor']} ({row['op']}): RMSE/scale {row['rmse/scale']:.3f}")


def main():
    cli(prog_name="edgekit")


if __name__ == "__main__":
    main()
