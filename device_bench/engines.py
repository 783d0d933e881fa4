"""Every runtime and API behind one small interface, so bench, classify and evaluate run anywhere.

An Engine is a .tflite model open in one runtime, through one API, on one accelerator:
  - the tf.lite-style Interpreter of LiteRT, tflite-runtime or TensorFlow;
  - LiteRT's CompiledModel (``ai_edge_litert.compiled_model``) on its CPU, GPU or NPU;
  - OpenVINO, which reads the .tflite file itself and compiles it for its CPU, GPU or NPU device.
Each gives its inputs and outputs in the Interpreter's terms (index, name, shape, dtype, quantization).
An accelerator a runtime cannot find here raises AcceleratorUnavailable, which a benchmark turns into
a row that says so.
"""

import re

import numpy as np

from device_bench.errors import AcceleratorUnavailable, EdgekitError
from device_bench.runtime import check_memory, delegated_nodes, describe_load_error, open_interpreter
from device_bench.silence import quiet_stderr, silence_at_exit


class Engine:
    """A model open in one runtime: set the input, invoke, read the output; the same calls everywhere."""

    input_details = ()
    output_details = ()

    def __init__(self, runtime, accelerator="cpu"):
        self.runtime, self.accelerator = runtime, accelerator
        self.extras = {}  # what else a row should say about how the model ran (OpenVINO's inference precision)
        self.notes = []  # warnings for a result row

    def set_input(self, array, i=0):
        """Copy one input tensor in (already in the tensor's dtype and shape)."""
        raise NotImplementedError

    def invoke(self):
        """Run the model once on the inputs set."""
        raise NotImplementedError

    def get_output(self, i=0):
        """One output tensor, as an array of its own dtype and shape."""
        raise NotImplementedError

    def delegation(self):
        """How much of the graph the accelerator (XNNPACK, GPU, NPU) took, where the runtime says."""
        return {"delegated_nodes": None, "total_nodes": None, "fully_delegated": None}

    def describe(self):
        """Runtime name, version, API and accelerator (plus extras) for a result row."""
        return dict(self.runtime.as_dict(), accelerator=self.accelerator, **self.extras)

    def close(self):
        """Release the runtime's objects now, quietly (LiteRT logs each accelerator it tears down to fd 2)."""
        import gc
        with quiet_stderr():
            for name in [k for k in vars(self) if k not in ("runtime", "accelerator", "extras", "notes")]:
                delattr(self, name)
            gc.collect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InterpreterEngine(Engine):
    """The tf.lite Interpreter API (LiteRT, tflite-runtime, TensorFlow); XNNPACK or a delegate on the CPU."""

    def __init__(self, path, runtime, threads=1, xnnpack=True, delegate=None):
        super().__init__(runtime)
        self.interpreter = open_interpreter(path, runtime, threads, xnnpack, delegate)
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()
        self.delegated = bool(xnnpack or delegate)

    def set_input(self, array, i=0):
        self.interpreter.set_tensor(self.input_details[i]["index"], array)

    def invoke(self):
        self.interpreter.invoke()

    def get_output(self, i=0):
        return self.interpreter.get_tensor(self.output_details[i]["index"])

    def delegation(self):
        taken, total = delegated_nodes(self.interpreter)
        full = (taken == total) if taken is not None and self.delegated else None
        return {"delegated_nodes": taken, "total_nodes": total, "fully_delegated": full}


class LiteRTCompiledEngine(Engine):
    """LiteRT's CompiledModel: compiled once for CPU (XNNPACK), GPU (with CPU fallback) or NPU, run on buffers."""

    def __init__(self, path, runtime, threads=1, xnnpack=True, accelerator="cpu"):
        super().__init__(runtime, accelerator)
        from ai_edge_litert import compiled_model as cm
        from device_bench.manifest import io_tensors
        ha = cm.HardwareAccelerator
        # An NPU with CPU fallback compiles "successfully" with no NPU at all (everything silently on the CPU),
        # so the NPU is asked to take the whole graph; the GPU falls back to the CPU only for ops it lacks.
        accel = {"cpu": ha.CPU, "gpu": ha.GPU | ha.CPU, "npu": ha.NPU}[accelerator]
        cpu = cm.CpuOptions(num_threads=int(threads), kernel_mode=None if xnnpack else cm.CpuKernelMode.BUILTIN)
        silence_at_exit()  # its teardown at exit logs every accelerator again
        failure = None
        with quiet_stderr():  # LiteRT logs every accelerator it registers, and again as a failed compile's
            try:              # frames are freed (at the end of this except clause: still quiet)
                self.model = cm.CompiledModel.from_file(str(path), options=cm.Options(accel, cpu_options=cpu))
            except (RuntimeError, ValueError) as e:
                failure = last_line(e), describe_load_error(e, runtime)
        if failure and accelerator != "cpu":
            raise AcceleratorUnavailable(
                f"LiteRT {accelerator.upper()} not available here" + (", or it cannot take every op of this "
                                                                      "model" if accelerator == "npu" else "")
                + f" ({failure[0]})")
        if failure:
            raise EdgekitError(f"{path}: {failure[1]}")
        self.input_details, self.output_details = io_tensors(path)
        self.inputs = self.model.create_input_buffers(0)
        self.outputs = self.model.create_output_buffers(0)
        self.sizes = [int(np.prod(d["shape"])) for d in self.output_details]
        with quiet_stderr():  # the first buffer write sets up a process-wide LiteRT environment, loudly
            self.set_input(np.zeros(self.input_details[0]["shape"], self.input_details[0]["dtype"]))

    def set_input(self, array, i=0):
        self.inputs[i].write(np.ascontiguousarray(array))

    def invoke(self):
        self.model.run_by_index(0, self.inputs, self.outputs)

    def get_output(self, i=0):
        d = self.output_details[i]
        return self.outputs[i].read(self.sizes[i], d["dtype"]).reshape(d["shape"])

    def delegation(self):
        return {"delegated_nodes": None, "total_nodes": None, "fully_delegated": self.model.is_fully_accelerated()}


class OpenVINOEngine(Engine):
    """OpenVINO reading the .tflite file directly, compiled for latency on its CPU, GPU or NPU device."""

    def __init__(self, path, runtime, threads=1, xnnpack=True, accelerator="cpu"):
        super().__init__(runtime, accelerator)
        from device_bench.manifest import io_tensors
        if not xnnpack:
            self.notes.append("--no-xnnpack does not apply to OpenVINO, which has kernels of its own")
        ov = runtime.module
        core = ov.Core()
        device = accelerator.upper()
        if not any(d.split(".")[0] == device for d in core.available_devices):
            raise AcceleratorUnavailable(f"OpenVINO finds no {device} device here (it has "
                                         f"{', '.join(core.available_devices) or 'none'})")
        self.input_details, self.output_details = io_tensors(path)
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            model = core.read_model(str(path))
            model.reshape({port: d["shape"] for port, d in zip(model.inputs, self.input_details)})  # same order
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as e:
            raise EdgekitError(f"{path}: {describe_load_error(e, runtime)}") from None
        self.request = self.compiled.create_infer_request()
        self.extras = {"inference_precision": _precision_name(self.compiled)}

    def set_input(self, array, i=0):
        self.request.get_input_tensor(i).data[...] = array

    def invoke(self):
        self.request.infer()

    def get_output(self, i=0):
        return self.request.get_output_tensor(i).data.copy()


def last_line(e):
    """LiteRT's errors end with the cause ("└ Some ops are not accelerated ..."), after a line of source location."""
    lines = [line.strip("└ \t") for line in str(e).splitlines()]
    lines = [line for line in lines if line and not re.fullmatch(r"ERROR: \[[^]]*\]", line)]
    return (lines[-1] if lines else "LiteRT gives no reason")[:300]


def _precision_name(compiled):
    """The precision OpenVINO computes in: it may run a float32 model in bf16 or f16 on its own."""
    try:
        return str(compiled.get_property("INFERENCE_PRECISION_HINT")).replace("<Type: '", "").rstrip("'>")
    except RuntimeError:
        return None


def open_engine(path, runtime, threads=1, xnnpack=True, delegate=None, accelerator="cpu", max_memory_mb=None):
    """The model at ``path`` open in ``runtime`` (a Runtime, with its API) on ``accelerator``, after the
    check that its tensors fit in ``max_memory_mb``."""
    check_memory(path, max_memory_mb)
    if delegate and runtime.api != "interpreter":
        raise EdgekitError(f"--delegate loads a TFLite delegate into an Interpreter; {runtime.name} "
                           f"{runtime.api} takes --accelerator instead")
    if runtime.name == "openvino":
        return OpenVINOEngine(path, runtime, threads, xnnpack, accelerator)
    if runtime.api == "compiled":
        return LiteRTCompiledEngine(path, runtime, threads, xnnpack, accelerator)
    if accelerator != "cpu":
        raise EdgekitError(f"accelerator {accelerator} needs --api compiled; the Interpreter runs on the CPU")
    return InterpreterEngine(path, runtime, threads, xnnpack, delegate)
