"""Every option name and default, defined once.

`BenchParams` is the single source of the benchmark's options: device_bench's argparse flags,
edgekit's click options and the command line sent to a child process or a remote board are all
generated from `BENCH_OPTIONS` below, and parsed back into a `BenchParams` and the `SweepSettings` of
a sweep (thread counts, processes per configuration, cooldown).
"""

from dataclasses import dataclass, fields

from device_bench.errors import EdgekitError

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")  # what TFLiteConverter makes (edgekit convert)
# ...and int8 weights with int16 activations, which only the LiteRT quantizer makes (edgekit quantize)
ALL_PRECISIONS = (*PRECISIONS, "int16x8")
CALIBRATED = ("int8", "int16x8")  # precisions that need calibration images
QUANTIZERS = ("tflite", "litert")  # TFLiteConverter (needs TensorFlow), the LiteRT quantizer (does not)
KEEP_AS = ("float", "int16")  # what mixed precision makes of the layers it takes out of int8
# Runtimes in the order one is picked when none is named; tensorflow (tf.lite) is the last resort.
RUNTIMES = ("litert", "tflite-runtime", "openvino", "tensorflow")
ALL = "all"  # --runtime all: every installed runtime and API (but tensorflow); --accelerator all: cpu, gpu, npu
# interpreter: the tf.lite-style Interpreter; compiled: compile for a device, then run (LiteRT's CompiledModel,
# OpenVINO's compile_model). The first API of a runtime is its default.
APIS = ("interpreter", "compiled")
RUNTIME_APIS = {"litert": ("interpreter", "compiled"), "tflite-runtime": ("interpreter",),
                "openvino": ("compiled",), "tensorflow": ("interpreter",)}
ACCELERATORS = ("cpu", "gpu", "npu")
# Accelerators only LiteRT's benchmark_model on an Android phone has: nnapi, its NNAPI delegate (as npu is there).
PHONE_ACCELERATORS = ("nnapi",)
DEFAULT_REPEAT = 3
SPREAD_WARNING = 0.05  # process medians further apart than this (relative) are flagged as not repeatable
IO_TYPES = ("uint8", "int8", "float32")  # of an int8 build's input and output; uint8 is what phone apps feed
DEFAULT_IO = "uint8"
PREPROCESSING_MODES = ("tf", "torch", "caffe")
DEFAULT_CALIBRATION_COUNT = 200
# edgekit train / compress (host side; defined here with the other option names)
AUGMENTATIONS = ("none", "light", "flip")  # light: shift, rotate, zoom; flip: light + horizontal mirror
COMPRESS_METHODS = ("prune", "channels", "distill", "qat")


@dataclass(frozen=True)
class BenchParams:
    """One benchmark configuration; defaults as in TFLite's benchmark_model."""
    threads: int = 1
    warmup_runs: int = 1
    warmup_min_secs: float = 0.5
    num_runs: int = 50
    min_secs: float = 1.0
    max_secs: float = 150.0
    run_delay: float = 0.0
    xnnpack: bool = True
    delegate: str = None
    runtime: str = None
    input: str = None  # None (random), an image, or a .npy file
    poll_memory: bool = False
    verify: bool = True  # check a bundle's model.tflite against its manifest's sha256
    max_memory_mb: float = None  # refuse larger declared tensors; None: half the physical memory
    api: str = None  # None: the runtime's default API
    accelerator: str = "cpu"
    ceiling: bool = True  # also time the dense kernel that gives the measured ceiling (MAC/s)
    op_profile: bool = False  # per-operator times, as LiteRT's benchmark_model profiles them (a phone)

    def validate(self, native=False):
        """Raise EdgekitError naming the first field out of range; returns self. ``native``: LiteRT's own
        benchmark_model runs these (an Android phone), whose --accelerator picks a delegate whatever the API,
        and the only runner that profiles operators."""
        if self.threads < 1:
            raise EdgekitError(f"threads must be at least 1, got {self.threads}")
        if self.num_runs < 1:
            raise EdgekitError(f"num_runs must be at least 1, got {self.num_runs}")
        if self.warmup_runs < 0:
            raise EdgekitError(f"warmup_runs must be >= 0, got {self.warmup_runs}")
        for name in ("warmup_min_secs", "min_secs", "max_secs", "run_delay"):
            if getattr(self, name) < 0:
                raise EdgekitError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_secs < self.min_secs:
            raise EdgekitError(f"max_secs ({self.max_secs}) is below min_secs ({self.min_secs})")
        if self.max_memory_mb is not None and not self.max_memory_mb > 0:
            raise EdgekitError(f"max_memory_mb must be above 0, got {self.max_memory_mb}")
        _check_choice("runtime", self.runtime, RUNTIMES + (ALL,))
        _check_choice("api", self.api, APIS)
        _check_choice("accelerator", self.accelerator, ACCELERATORS + PHONE_ACCELERATORS + (ALL,))
        if not native and self.accelerator in PHONE_ACCELERATORS:
            raise EdgekitError(f"--accelerator {self.accelerator} is for an Android phone: add --target adb "
                               f"(or adb://SERIAL)")
        if self.runtime in RUNTIME_APIS and self.api and self.api not in RUNTIME_APIS[self.runtime]:
            raise EdgekitError(f"runtime {self.runtime} has no {self.api} API; it has {', '.join(RUNTIME_APIS[self.runtime])}")
        if not native and self.accelerator in ("gpu", "npu") and (
                self.api == "interpreter" or (self.api is None and self.runtime in (None, "litert"))):
            raise EdgekitError(f"accelerator {self.accelerator} needs --api compiled (LiteRT's CompiledModel) or "
                               f"--runtime openvino; the Interpreter API runs on the CPU (or a --delegate)")
        if self.op_profile and not native:
            raise EdgekitError("--op-profile needs LiteRT's benchmark_model: bench on an Android phone "
                               "(--target adb)")
        return self


def _check_choice(name, value, choices):
    if value is not None and value not in choices:
        raise EdgekitError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep varies beyond one configuration: thread counts, fresh processes per configuration
    (interleaved across configurations, as pyperf repeats in fresh processes) and the pause between them."""
    threads: tuple = (1,)
    repeat: int = DEFAULT_REPEAT
    cooldown: float = 0.0

    def validate(self):
        """Raise EdgekitError naming the setting out of range; returns self."""
        try:
            parse_threads(list(self.threads))
        except ValueError as e:
            raise EdgekitError(str(e)) from None
        if not isinstance(self.repeat, int) or isinstance(self.repeat, bool) or self.repeat < 1:
            raise EdgekitError(f"repeat must be at least 1, got {self.repeat!r}")
        if self.cooldown < 0:
            raise EdgekitError(f"cooldown must be >= 0, got {self.cooldown}")
        return self


@dataclass(frozen=True)
class Option:
    """A command-line face of one setting: its flag, value kind and help; the default comes from
    BenchParams (or ``default`` for the sweep-level settings repeat and cooldown)."""
    dest: str
    flag: str
    kind: str  # "int", "float", "str", "flag", "no-flag" (sets the field False), "threads", "choice"
    help: str
    default: object = None
    choices: tuple = None  # for "choice"; ALL is accepted by the bench options that list it
    all_help: str = None  # what ALL means, for bench (classify and evaluate take one choice)

    @property
    def bench_help(self):
        """The help text of the bench flag: ``help``, and what 'all' does where it is a choice."""
        return f"{self.help}; {self.all_help}" if self.all_help else self.help


BENCH_OPTIONS = (
    Option("threads", "--threads", "threads", "thread counts to sweep, e.g. 1,2,4"),
    Option("num_runs", "--runs", "int", "timed runs, at least"),
    Option("min_secs", "--min-secs", "float", "timed runs last at least this long (s)"),
    Option("max_secs", "--max-secs", "float", "and at most this long (s)"),
    Option("warmup_runs", "--warmup-runs", "int", "warm-up runs, at least"),
    Option("warmup_min_secs", "--warmup-secs", "float", "warm-up lasts at least this long (s)"),
    Option("run_delay", "--run-delay", "float", "seconds to sleep between timed runs"),
    Option("runtime", "--runtime", "choice", "runtime to run the model in (default: LiteRT, else tflite-runtime, "
                                             "OpenVINO, TensorFlow)", choices=RUNTIMES + (ALL,),
           all_help="'all': every installed runtime and API but tensorflow"),
    Option("api", "--api", "choice", "the runtime's API: interpreter (LiteRT, tflite-runtime, TensorFlow) or "
                                     "compiled (LiteRT CompiledModel, OpenVINO) (default: the runtime's first)",
           choices=APIS),
    Option("accelerator", "--accelerator", "choice", "device for the compiled API (on an Android phone: "
                                                     "benchmark_model's delegate; nnapi there only)",
           choices=ACCELERATORS + PHONE_ACCELERATORS + (ALL,),
           all_help="'all': cpu, gpu and npu, absent ones reported as such"),
    Option("xnnpack", "--no-xnnpack", "no-flag", "run without default delegates (XNNPACK)"),
    Option("delegate", "--delegate", "str", "external delegate: PATH[:key=value;...]"),
    Option("input", "--input", "str", "an image or .npy input (default: random)"),
    Option("poll_memory", "--poll-memory", "flag", "also poll RSS every 50 ms (affects timing)"),
    Option("verify", "--no-verify", "no-flag", "skip the check of a bundle's model.tflite against its manifest"),
    Option("max_memory_mb", "--max-memory", "float", "refuse a model whose tensors need more than this many MB "
                                                     "(default: half the physical memory)"),
    Option("ceiling", "--no-ceiling", "no-flag", "skip timing the dense kernel that gives the measured ceiling "
                                                 "(an Android phone never times it: nothing to skip there)"),
    Option("op_profile", "--op-profile", "flag", "per-operator times (on an Android phone: benchmark_model's "
                                                 "--enable_op_profiling)"),
    Option("repeat", "--repeat", "int", "fresh processes per configuration, interleaved across configurations",
           DEFAULT_REPEAT),
    Option("cooldown", "--cooldown", "float", "seconds to sleep between benchmark processes", 0.0),
)
_SWEEP_FIELDS = ("threads", "repeat", "cooldown")

OPEN_OPTIONS = ("runtime", "verify", "max_memory_mb")  # how every command opens a model
PREDICT_OPTIONS = (*OPEN_OPTIONS, "api", "accelerator")  # classify and evaluate run it, through any API

_PARAM_DEFAULTS = {f.name: f.default for f in fields(BenchParams)}


def option_default(opt):
    """An option's default: BenchParams' own for its fields."""
    return _PARAM_DEFAULTS.get(opt.dest, opt.default)


def parse_threads(text):
    """'1,2,4' -> [1, 2, 4]; ValueError with a message for anything else."""
    if isinstance(text, (list, tuple)):
        values = list(text)
    else:
        try:
            values = [int(v) for v in str(text).split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"threads must be integers separated by commas, got {text!r}") from None
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"threads must be at least 1, got {text!r}")
    return values


def params_from_options(values):
    """(BenchParams, SweepSettings) from parsed option values keyed by ``Option.dest``. The params are checked
    where they run (``BenchParams.validate``: a phone allows what this machine does not), the sweep here."""
    known = {f.name for f in fields(BenchParams)}
    threads = parse_threads(values.get("threads") or [1])
    kwargs = {k: v for k, v in values.items() if k in known and v is not None and k != "threads"}
    params = BenchParams(threads=threads[0], **kwargs)
    repeat = values.get("repeat")
    sweep = SweepSettings(tuple(threads), DEFAULT_REPEAT if repeat is None else repeat,
                          float(values.get("cooldown") or 0.0))
    return params, sweep.validate()


def params_to_argv(params, sweep=None, only=None):
    """The command line that gives back ``params`` and ``sweep`` (for a child process or a remote board);
    with ``only``, just those options."""
    sweep = sweep or SweepSettings((params.threads,), 1)
    values = {f.name: getattr(params, f.name) for f in fields(BenchParams)}
    values.update({name: getattr(sweep, name) for name in _SWEEP_FIELDS})
    argv = []
    for opt in (o for o in BENCH_OPTIONS if only is None or o.dest in only):
        value = values[opt.dest]
        if opt.kind == "flag":
            argv += [opt.flag] if value else []
        elif opt.kind == "no-flag":
            argv += [] if value else [opt.flag]
        elif opt.kind == "threads":
            argv += [opt.flag, ",".join(map(str, value))]
        elif value is not None and value != option_default(opt):
            argv += [opt.flag, str(value)]
    return argv


def single_choices(opt):
    """What a command that opens one model (classify, evaluate, inspect) accepts for a choice: never 'all', nor
    an accelerator only a phone's benchmark_model has (those commands run here)."""
    return tuple(c for c in opt.choices if c != ALL and c not in PHONE_ACCELERATORS)


def add_argparse_options(parser, only=None):
    """Add every benchmark option (or those whose dest is in ``only``: a command that opens one model, so
    its choices exclude 'all') to an argparse parser."""
    import argparse

    def threads(text):
        try:
            return parse_threads(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    for opt in (o for o in BENCH_OPTIONS if only is None or o.dest in only):
        default = option_default(opt)
        shown = default is not None and not isinstance(default, bool)
        help_text = opt.bench_help + (f" (default {','.join(map(str, default)) if isinstance(default, list) else default})"
                                if shown else "")
        metavar = opt.flag[2:].upper().replace("-", "_")
        if opt.kind in ("flag", "no-flag"):
            parser.add_argument(opt.flag, dest=opt.dest, action="store_true" if opt.kind == "flag" else "store_false",
                                help=opt.help)
        elif opt.kind == "choice":
            parser.add_argument(opt.flag, dest=opt.dest, default=default, help=opt.help if only else opt.bench_help,
                                choices=single_choices(opt) if only else opt.choices)
        else:
            convert = {"int": int, "float": float, "str": str, "threads": threads}[opt.kind]
            parser.add_argument(opt.flag, dest=opt.dest, type=convert, default=default, metavar=metavar, help=help_text)
