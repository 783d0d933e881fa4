"""Finding a runtime for .tflite models and opening a model in its Interpreter, with clear errors
instead of tracebacks. (device_bench.engines puts every runtime and API behind one interface.)

Resolution order: LiteRT (ai-edge-litert), then tflite-runtime, then OpenVINO, then tensorflow.lite
(imported only as the last resort, since it costs seconds and hundreds of MB).
"""

import importlib.util
import os
import platform
import re
import sys
from dataclasses import dataclass, replace

from device_bench.errors import EdgekitError
from device_bench.options import ALL, RUNTIME_APIS, RUNTIMES
from device_bench.silence import quiet_stderr

_PACKAGES = {"litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime", "openvino": "openvino",
             "tensorflow": "tensorflow"}


@dataclass(frozen=True)
class Runtime:
    """Whichever runtime was found and the API to drive it through, with name and version for results."""
    name: str
    version: str
    module: object  # the module holding Interpreter, load_delegate, OpResolverType (openvino: the package)
    api: str = "interpreter"

    def as_dict(self):
        """The runtime's name, version and API for results; the module itself cannot be serialised."""
        return {"name": self.name, "version": self.version, "api": self.api}


def _install_hint(name):
    py = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    arch = platform.machine()
    if name == "litert":
        return f"pip install ai-edge-litert (wheels for Linux x86_64/aarch64 and macOS arm64; this is {py} on {arch})"
    if name == "tflite-runtime":
        return f"pip install tflite-runtime 'numpy<2' (wheels up to Python 3.11; this is {py} on {arch})"
    if name == "openvino":
        return "pip install 'edgekit-tflite[openvino]' (or pip install openvino)"
    return "pip install tensorflow"


def _import(name):
    if name == "litert":
        import ai_edge_litert
        from ai_edge_litert import interpreter as mod
        return Runtime(name, getattr(ai_edge_litert, "__version__", "unknown"), mod)
    if name == "tflite-runtime":
        import tflite_runtime
        from tflite_runtime import interpreter as mod
        return Runtime(name, getattr(tflite_runtime, "__version__", "unknown"), mod)
    if name == "openvino":
        import openvino
        return Runtime(name, openvino.__version__.split("-")[0], openvino, "compiled")
    import tensorflow as tf
    return Runtime(name, tf.__version__, _TFLiteShim(tf))


class _TFLiteShim:
    """tensorflow.lite arranged like the runtime packages' interpreter module."""

    def __init__(self, tf):
        self.Interpreter = tf.lite.Interpreter
        self.load_delegate = tf.lite.experimental.load_delegate
        self.OpResolverType = tf.lite.experimental.OpResolverType


def resolve_runtime(name=None, api=None):
    """The named runtime (or the first one installed that has ``api``) set to drive ``api`` (default: the
    runtime's first); EdgekitError naming what to install."""
    if name == ALL:
        raise EdgekitError("runtime 'all' names a sweep over runtimes; this needs one runtime")
    if name is not None and name not in RUNTIMES:
        raise EdgekitError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    if name is not None and api is not None and api not in RUNTIME_APIS[name]:
        raise EdgekitError(f"runtime {name} has no {api} API; it has {', '.join(RUNTIME_APIS[name])}")
    errors = []
    for candidate in ([name] if name else [r for r in RUNTIMES if api is None or api in RUNTIME_APIS[r]]):
        try:
            runtime = _import(candidate)
            return replace(runtime, api=api or RUNTIME_APIS[candidate][0])
        except ImportError as e:
            if "_ARRAY_API" in str(e) or "numpy.core.multiarray failed" in str(e):
                raise EdgekitError(f"runtime {candidate} was built for NumPy 1.x and this is NumPy "
                                   f"{_numpy_version()}: pip install 'numpy<2'") from None
            errors.append(candidate)
    if name:
        raise EdgekitError(f"runtime {name} is not installed: {_install_hint(name)}")
    raise EdgekitError(f"no TFLite runtime is installed: {_install_hint('litert')}, or {_install_hint('tflite-runtime')}")


def installed_runtimes():
    """(runtime, api) for every runtime installed here, every API of each, tensorflow left out (the last-resort
    fallback, and an old LiteRT); found without importing them, so a broken install shows as an error row."""
    return [(name, api) for name in RUNTIMES if name != "tensorflow" and importlib.util.find_spec(_PACKAGES[name])
            for api in RUNTIME_APIS[name]]


def _numpy_version():
    import numpy
    return numpy.__version__


def parse_delegate(spec):
    """'lib.so:key=value;key2=value2' -> (path, {key: value})."""
    path, _, opts = spec.partition(":")
    options = {}
    for item in filter(None, opts.split(";")):
        key, eq, value = item.partition("=")
        if not eq:
            raise EdgekitError(f"delegate option {item!r} is not key=value (in {spec!r})")
        options[key.strip()] = value.strip()
    return path, options


def tensor_bytes(model_path):
    """The bytes of every tensor the model declares (an upper bound of its arena); None if unknown."""
    from device_bench.manifest import tflite_schema
    schema = tflite_schema()
    if schema is None:
        return None
    with open(model_path, "rb") as f:
        buf = f.read()
    sizes = {getattr(schema.TensorType, n): s for n, s in (("FLOAT32", 4), ("FLOAT16", 2), ("INT32", 4),
             ("UINT8", 1), ("INT64", 8), ("INT16", 2), ("INT8", 1), ("FLOAT64", 8), ("BOOL", 1))}
    try:
        model = schema.Model.GetRootAs(buf, 0)
        total = 0
        for g in range(model.SubgraphsLength()):
            sg = model.Subgraphs(g)
            for t in range(sg.TensorsLength()):
                tensor = sg.Tensors(t)
                count = 1
                for d in range(tensor.ShapeLength()):
                    count *= max(1, tensor.Shape(d))
                total += count * sizes.get(tensor.Type(), 4)
        return total
    except Exception:  # a damaged flatbuffer: the runtime's own load names the problem
        return None


def check_memory(model_path, max_memory_mb=None):
    """Refuse, before allocating, a model whose declared tensors would not fit (the OOM killer is no error)."""
    limit = max_memory_mb or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 / 1e6
    need = tensor_bytes(model_path)
    if need is not None and need > limit * 1e6:  # compared as int and float: a damaged shape's 10^400 bytes
        size = f"{need // 10**6:,} MB" if need < 10**18 else "an impossible size (a damaged shape?)"
        raise EdgekitError(f"{model_path}: its tensors declare {size}, more than the {limit:,.0f} MB allowed "
                           f"(--max-memory changes the limit)")


def open_interpreter(model_path, runtime, threads=1, xnnpack=True, delegate=None):
    """Load and allocate a model (after the caller's check_memory). Returns the interpreter; raises
    EdgekitError naming the file."""
    mod = runtime.module
    kwargs = {"model_path": str(model_path), "num_threads": int(threads)}
    if not xnnpack:
        kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if delegate:
        path, options = parse_delegate(delegate)
        try:
            kwargs["experimental_delegates"] = [mod.load_delegate(path, options)]
        except (ValueError, OSError, RuntimeError) as e:
            raise EdgekitError(f"delegate {path} will not load: {first_line(e)}") from None
    try:
        with quiet_stderr():  # the runtime's own "INFO: Created ... XNNPACK delegate" line
            interpreter = mod.Interpreter(**kwargs)
            interpreter.allocate_tensors()
    except (ImportError, SystemError) as e:
        # tflite-runtime 2.14 under NumPy 2: "_ARRAY_API not found", surfacing as a SystemError
        text = f"{e} {e.__cause__ or ''} {e.__context__ or ''}"
        if "_ARRAY_API" in text or "numpy.core.multiarray" in text:
            raise EdgekitError(f"runtime {runtime.name} {runtime.version} was built for NumPy 1.x and this is "
                               f"NumPy {_numpy_version()}: pip install 'numpy<2'") from None
        raise
    except (ValueError, RuntimeError, OSError, TypeError) as e:
        raise EdgekitError(f"{model_path}: {describe_load_error(e, runtime)}") from None
    return interpreter


def describe_load_error(e, runtime):
    """Explain why a model will not load (old runtime, not a TFLite file) instead of the raw error."""
    text = str(e)
    op = re.search(r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'", text)
    if op:
        return (f"the model needs a newer runtime: {runtime.name} {runtime.version} has no "
                f"{op.group(1)} version {op.group(2)}")
    if "identifier" in text or "not a valid flatbuffer" in text.lower() or "Could not open" in text:
        return f"not a TFLite model, or a damaged one ({first_line(e)})"
    return f"cannot load the model in {runtime.name} {runtime.version} ({first_line(e)})"


def first_line(e):
    """The first non-empty line of an exception, at most 300 characters, for one-line errors."""
    lines = [l for l in str(e).strip().splitlines() if l.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def delegated_nodes(interpreter):
    """(nodes taken by delegates, total nodes of the original graph), or (None, None) if unknown."""
    ops = delegation(interpreter)
    return (None, None) if ops is None else (sum(o["delegated"] for o in ops), len(ops))


def delegation(interpreter):
    """The original graph's nodes as [{"index", "op", "delegated"}], or None if the runtime cannot say.

    The interpreter lists the original nodes plus one DELEGATE node per partition; a partition is
    everything between its DELEGATE node's input and output tensors.
    """
    try:
        ops = interpreter._get_ops_details()
    except Exception:
        return None
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {t: o["index"] for o in original for t in o["outputs"]}
    by_index = {o["index"]: o for o in original}
    taken = set()
    for d in (o for o in ops if o["op_name"] == "DELEGATE"):
        stop = set(d["inputs"])
        stack = list(d["outputs"])
        while stack:
            t = stack.pop()
            n = producer.get(t)
            if t in stop or n is None or n in taken:
                continue
            taken.add(n)
            stack.extend(by_index[n]["inputs"])
    return [{"index": o["index"], "op": o["op_name"], "delegated": o["index"] in taken} for o in original]
