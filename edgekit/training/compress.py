"""`edgekit compress`: pruning, distillation and quantization-aware training, chained in the order given,
each stage measured the same way: Keras top-1 on the held-out split, then the int8 .tflite's top-1 in
LiteRT, raw and gzip-compressed size, and median latency (one thread, fresh process). The int8 file is
made by the very pipeline `edgekit convert` runs, on the stage saved as .keras, calibrated on the dataset
folder: the figures belong to the file a user gets.

Every check (methods, sparsity, student and teacher classes, layers QAT cannot wrap) runs before any
training. The output .keras keeps its input's preprocessing and labels, with the chain recorded.
"""

import gzip
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

from device_bench.errors import EdgekitError
from device_bench.options import COMPRESS_METHODS

BENCH_RUNS = 30
# compress_model's keyword options that a study's compress table may give (beside the training settings)
COMPRESS_OPTIONS = ("sparsity", "student", "alpha", "size", "temperature", "label_weight", "baseline", "speedup",
                    "target_latency_ms", "max_top1_drop", "keep")


@dataclass
class Measurement:
    """One model at one stage of the chain: accuracy, int8 size and latency."""
    stage: str
    top1: float  # Keras, float32, held-out split
    int8_top1: float = None  # the int8 .tflite in LiteRT, same images
    tflite_bytes: int = None
    gzip_bytes: int = None
    latency_ms: float = None  # p50, 1 thread, XNNPACK
    quantize_ops: int = None  # QUANTIZE + DEQUANTIZE operators in the int8 graph
    graph_sha256: str = None  # the int8 graph's, as `edgekit convert` of the stage's .keras file records it
    error: str = None


@dataclass
class CompressResult:
    """What `edgekit compress` did: the output file, each step's details, each stage measured."""
    path: str
    source: str
    methods: list
    labels: list
    counts: dict
    steps: list = field(default_factory=list)
    measurements: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    seconds: float = None

    def to_dict(self):
        """A JSON-ready dict (`edgekit compress --json`)."""
        return {"schema": 1, **asdict(self)}


@dataclass
class _Stage:
    """The model the chain holds between steps, with its preprocessing and data."""
    model: object
    prep: dict
    data: object
    label: str


def stage_label(methods, sparsity, speedup=None, target_latency_ms=None):
    """A variant's name as reports show it: 'pruned-75%', 'pruned-channels-1.6x', 'distilled', 'qat', joined
    with '+'."""
    from edgekit.training.channels import ChannelGoal
    names = {"prune": f"pruned-{round(sparsity * 100)}%" if sparsity else "pruned", "distill": "distilled",
             "qat": "qat", "channels": "pruned-channels" if speedup is None and target_latency_ms is None else
             ChannelGoal(target_latency_ms, speedup).label()}
    return "+".join(names[m] for m in methods)


def check_methods(methods, sparsity, student, temperature, label_weight, goal=None):
    """Validate the chain and its options (``goal``: --method channels') before anything loads."""
    from edgekit.training.prune import check_sparsity
    methods = [methods] if isinstance(methods, str) else list(methods or [])
    if not methods:
        raise EdgekitError(f"give at least one --method ({', '.join(COMPRESS_METHODS)})")
    for m in methods:
        if m not in COMPRESS_METHODS:
            raise EdgekitError(f"unknown method {m!r}; choose from {', '.join(COMPRESS_METHODS)}")
    if "qat" in methods and methods.index("qat") != len(methods) - 1:
        raise EdgekitError("qat must be the last --method: later steps would move the weights away from the "
                           "ranges it learned")
    if "prune" in methods:
        sparsity = check_sparsity(0.75 if sparsity is None else sparsity)
    elif sparsity is not None:
        check_sparsity(sparsity)
        raise EdgekitError("--sparsity applies to --method prune")
    if "distill" in methods and not student:
        raise EdgekitError("--method distill needs --student (a zoo name such as squeezenet1_1, or a .keras file)")
    if student and "distill" not in methods:
        raise EdgekitError("--student applies to --method distill")
    if "channels" in methods:
        goal.validate()
    elif goal is not None and goal.given():
        raise EdgekitError("--target-latency-ms, --speedup, --max-top1-drop, --keep and --target apply to "
                           "--method channels")
    if not temperature > 0:
        raise EdgekitError(f"--temperature must be positive, got {temperature}")
    if not 0 <= label_weight <= 1:
        raise EdgekitError(f"--label-weight must be between 0 and 1, got {label_weight}")
    return methods, sparsity


def build_student(student, teacher, teacher_prep, teacher_name, *, alpha=None, size=None, seed=0, unsafe=False):
    """(student model, its preprocessing, its name): a fresh zoo network or a model file, checked against
    the teacher's classes before any training."""
    from device_bench.images import make_preprocessing
    from edgekit.training.distill import check_pair
    from edgekit.sources import is_model_path, load_source
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    if not is_model_path(student):
        from edgekit.zoo import create_model, resolve_args
        classes = int(teacher.output_shape[-1])
        spec, alpha, size, _, _ = resolve_args(student, alpha, size or teacher.input_shape[1], classes, "none")
        keras.utils.set_random_seed(seed)
        model = create_model(student, alpha=alpha, size=size, classes=classes)
        prep = make_preprocessing(spec.preprocessing, crop_fraction=teacher_prep.get("crop_fraction", 1.0))
        return model, prep, spec.variant_name(alpha, size)
    if alpha is not None or size is not None:
        raise EdgekitError(f"--alpha and --size apply to a zoo student, not to the file {student}")
    from edgekit.zoo.meta import read_model_meta
    meta = read_model_meta(student) or {}
    prep = None if meta.get("preprocessing") else teacher_prep  # a bare file is taken to see the teacher's pixels
    model, info = load_source(student, unsafe=unsafe, mean=prep and prep["mean"], std=prep and prep["std"])
    check_pair(teacher, model, teacher_name, student)
    return model, info.preprocessing, info.name


def measure(model, stage, stage_meta, data, calibration, workdir, progress, unsafe=False):
    """Keras top-1, then the int8 bundle `edgekit convert` makes of the stage's .keras file (same pipeline,
    same calibration folder, so the same file): LiteRT top-1, raw and gzip size, quantize ops, p50 latency."""
    import numpy as np
    from converters.tflite_graph import op_counts
    from device_bench.options import BenchParams
    from device_bench.predict import open_predictor
    from device_bench.sweep import run_isolated
    from edgekit.conversion import convert
    from edgekit.zoo.meta import save_model
    from edgekit.training.fit import top1
    m = Measurement(stage=stage, top1=top1(model, data.xv, data.yv))
    step = os.path.join(workdir, str(len(os.listdir(workdir))))
    path = save_model(model, f"{step}.keras", stage_meta)
    bundle = convert(path, ["int8"], step, calibration=calibration, unsafe=unsafe)["int8"]
    if bundle.error:
        m.error = f"int8 conversion failed: {bundle.error}"
        progress(f"{stage}: {m.error}")
        return m
    with open_predictor(bundle.path) as predictor:
        hits = [int(np.argmax(predictor.predict(x[None]))) == int(y) for x, y in zip(data.xv, data.yv)]
        with open(predictor.ref.tflite_path, "rb") as f:
            blob = f.read()
        m.graph_sha256 = predictor.ref.manifest.get("graph_sha256")
    counts = op_counts(blob)
    bench = run_isolated(bundle.path, BenchParams(num_runs=BENCH_RUNS, min_secs=0.2, warmup_min_secs=0.1,
                                                  ceiling=False))  # latency only: no ceiling kernel
    m.int8_top1, m.tflite_bytes, m.gzip_bytes = float(np.mean(hits)), len(blob), len(gzip.compress(blob, 9))
    m.quantize_ops = counts.get("QUANTIZE", 0) + counts.get("DEQUANTIZE", 0)
    m.latency_ms = bench.latency_ms["p50"] if bench.ok else None
    progress(f"{stage}: top-1 {m.top1:.2%} (Keras), int8 {m.int8_top1:.2%}, {m.tflite_bytes / 1e3:.0f} KB, "
             f"gzip {m.gzip_bytes / 1e3:.0f} KB, p50 {m.latency_ms or float('nan'):.2f} ms")
    return m


def _load_input(source, dataset, options, mean, std, preprocessing, crop, unsafe):
    """The input model, its preprocessing and labels, the training settings (split defaults to the one the
    model was trained with) and the dataset listing, all checked against one another."""
    from edgekit.training.data import list_dataset
    from edgekit.zoo.meta import read_model_meta
    from edgekit.sources import load_source
    from edgekit.training.fit import TrainSettings, train_settings
    meta = (read_model_meta(source) if isinstance(source, (str, os.PathLike)) else None) or {}
    trained = meta.get("training") or {}
    settings = train_settings(options, TrainSettings(seed=trained.get("seed", 0),
                                                      val_split=trained.get("val_split", 0.2)))
    listing = list_dataset(dataset, settings.val_split, settings.seed)
    model, info = load_source(source, mean=mean, std=std, preprocessing=preprocessing, crop=crop, unsafe=unsafe)
    if int(model.output_shape[-1]) != len(listing.labels):
        raise EdgekitError(f"{source} has {model.output_shape[-1]} outputs but {listing.root} has "
                           f"{len(listing.labels)} class folders")
    if info.labels and list(info.labels) != listing.labels:
        raise EdgekitError(f"{listing.root}: class folders {', '.join(listing.labels[:5])} ... do not match the "
                           f"model's labels {', '.join(info.labels[:5])} ...")
    return model, info, meta, settings, listing


def _precheck(methods, model, student_model, goal, progress, ssh_config=None):
    """Everything that can fail before training: QAT's layers, pruning's targets, channel pruning's surgery and
    target latency (on the model each meets). Returns channel pruning's measured start, or None."""
    from edgekit.training.prune import MIN_PRUNED_WEIGHTS, prunable
    from edgekit.training.qat import plan
    current, start = model, None
    for m in methods:
        if m == "distill":
            current = student_model
        elif m == "qat":
            plan(current)
        elif m == "prune" and not prunable(current):
            raise EdgekitError(f"{current.name}: no Conv2D or Dense kernel of at least {MIN_PRUNED_WEIGHTS} weights "
                               f"to prune")
        elif m == "channels":
            from edgekit.training.channels import check_reachable
            start = check_reachable(current, goal, progress, ssh_config)
    return start


def _distill_step(stage, student, student_prep, listing, settings, opts, progress, bar):
    """Train the student alone (the baseline, when asked) and from the teacher, from the same initial weights."""
    from edgekit.training.distill import distill
    from edgekit.tf_import import import_tf
    from edgekit.training.fit import load_data, top1, train_classifier
    _, keras = import_tf()
    data = stage.data if (student_prep == stage.prep and student.input_shape == stage.model.input_shape) else \
        load_data(listing, student.input_shape[1:], student_prep, progress)
    details = {"student": student.name, "temperature": opts["temperature"], "label_weight": opts["label_weight"],
               "teacher_top1": top1(stage.model, stage.data.xv, stage.data.yv)}
    initial = student.get_weights()
    if opts["baseline"]:
        progress(f"distill: training the student {student.name} alone first (the baseline), same seed and epochs")
        keras.utils.set_random_seed(settings.seed)
        details["baseline_history"] = train_classifier(student, data, settings, progress, bar=bar)
        details["student_alone_top1"] = top1(student, data.xv, data.yv)
        student.set_weights(initial)
    keras.utils.set_random_seed(settings.seed)
    details["history"] = distill(student, stage.model, student_prep, stage.prep, data, settings, progress,
                                 temperature=opts["temperature"], label_weight=opts["label_weight"], bar=bar)
    details["distilled_top1"] = top1(student, data.xv, data.yv)
    details["loss_min"] = min(h["loss"] for h in details["history"])
    return _Stage(student, student_prep, data, stage.label), details


def compress_model(source, dataset, output, methods, options=None, *, sparsity=None, student=None, alpha=None,
                   size=None, temperature=None, label_weight=None, baseline=True, mean=None, std=None,
                   preprocessing=None, crop=None, unsafe=False, force=False, progress=None, bar=False,
                   measure_stages=True, speedup=None, target_latency_ms=None, target=None, precision="int8",
                   max_top1_drop=None, keep=(), ssh_config=None):
    """Run the chain of ``methods`` on the model ``source`` with the class folders ``dataset``; write
    ``output`` (.keras, preprocessing and labels kept). Returns a CompressResult.

    ``measure_stages=False``: no stage measured (a study measures the output). ``speedup`` etc.: --method channels."""
    from edgekit.training.channels import ChannelGoal
    from edgekit.training.distill import DEFAULT_LABEL_WEIGHT, DEFAULT_TEMPERATURE
    from edgekit.zoo.meta import check_keras_output, save_model
    from edgekit.tf_import import import_tf
    from edgekit.training.fit import load_data
    progress = progress or (lambda message: None)
    opts = {"temperature": DEFAULT_TEMPERATURE if temperature is None else temperature,
            "label_weight": DEFAULT_LABEL_WEIGHT if label_weight is None else label_weight, "baseline": baseline}
    goal = ChannelGoal(target_latency_ms, speedup, target, precision, max_top1_drop,
                       (keep,) if isinstance(keep, str) else tuple(keep or ()))
    methods, sparsity = check_methods(methods, sparsity, student, opts["temperature"], opts["label_weight"], goal)
    output = check_keras_output(output, force)
    t0 = time.time()
    model, info, meta, settings, listing = _load_input(source, dataset, options or {}, mean, std, preprocessing, crop,
                                                       unsafe)
    student_model, student_prep, start = _before_training(methods, model, info, source, student, alpha, size,
                                                          settings, goal, progress, ssh_config, unsafe)
    _, keras = import_tf()
    stage = _Stage(model, info.preprocessing, load_data(listing, model.input_shape[1:], info.preprocessing, progress),
                   "input")
    channels = {"channels": asdict(goal)} if "channels" in methods else {}
    result = CompressResult(path=output, source=str(source), methods=methods, labels=listing.labels,
                            counts=listing.counts(), settings=dict(asdict(settings), sparsity=sparsity, **opts, **channels))
    kept = {k: v for k, v in meta.items() if k not in ("format", "compression", "preprocessing", "labels")}

    def stage_meta(stage, history):
        return dict(kept, preprocessing=stage.prep, labels=listing.labels, compression=history)

    with tempfile.TemporaryDirectory(prefix="edgekit-compress-") as work:
        def measured(stage, label):
            if measure_stages:
                result.measurements.append(measure(stage.model, label, stage_meta(stage, meta.get("compression") or []),
                                                   stage.data, listing.root, work, progress, unsafe))

        measured(stage, "input")
        for i, method in enumerate(methods):
            label = stage_label(methods[:i + 1], sparsity, speedup, target_latency_ms)
            keras.utils.set_random_seed(settings.seed)
            stage, details = _run_step(method, stage, label, student_model, student_prep, listing, settings, sparsity,
                                       dict(opts, goal=goal, start=start), progress, bar)
            stage.label = label
            measured(stage, label)
            result.steps.append({"method": method, "stage": label, "details": details})
            if measure_stages:
                result.steps[-1].update(before=asdict(result.measurements[-2]), after=asdict(result.measurements[-1]))
    history = list(meta.get("compression") or []) + [{"methods": methods, "stage": stage.label, "source": str(source),
                                                      "settings": result.settings}]
    save_model(stage.model, output, stage_meta(stage, history), force=force)
    progress(f"wrote {output}")
    result.seconds = round(time.time() - t0, 1)
    return result


def _before_training(methods, model, info, source, student, alpha, size, settings, goal, progress, ssh_config,
                     unsafe):
    """(distillation student, its preprocessing, channel pruning's measured start): all built and checked
    before any training."""
    student_model = student_prep = None
    if "distill" in methods:
        student_model, student_prep, _ = build_student(student, model, info.preprocessing, str(source), alpha=alpha,
                                                       size=size, seed=settings.seed, unsafe=unsafe)
    elif alpha is not None or size is not None:
        raise EdgekitError("--alpha and --size describe the --student of --method distill")
    return student_model, student_prep, _precheck(methods, model, student_model, goal, progress, ssh_config)


def _run_step(method, stage, label, student_model, student_prep, listing, settings, sparsity, opts, progress, bar):
    """One method of the chain on the current stage; returns (the new stage, the step's details)."""
    if method == "prune":
        from edgekit.training.prune import prune
        return stage, prune(stage.model, stage.data, settings, sparsity, progress, bar)
    if method == "channels":
        from edgekit.training.channels import netadapt
        model, details = netadapt(stage.model, stage.data, settings, opts["start"], opts["goal"], progress, bar)
        return _Stage(model, stage.prep, stage.data, label), details
    if method == "distill":
        return _distill_step(stage, student_model, student_prep, listing, settings, opts, progress, bar)
    from edgekit.training.qat import qat
    qmodel, details = qat(stage.model, stage.data, settings, progress, bar)
    return _Stage(qmodel, stage.prep, stage.data, label), details
