"""Per-operator cycle and memory estimates for an Arm Ethos-U microNPU from the Vela compiler (the optional
``[ethos-u]`` extra, ``ethos-u-vela``), run as a subprocess: offline, no hardware, an estimate.

Vela writes one CSV row per operator it schedules, named by the TFLite output tensor name; an operator it
lowers into several (SOFTMAX) has rows with derived names, tied to the next operator of that type."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile

from device_bench.errors import EdgekitError
from edgekit.profiling.table import Profile

EXTRA = "pip install 'edgekit-tflite[ethos-u]'"


def vela_command():
    """The `vela` script of this environment (beside this Python first), or the one-line error naming the extra."""
    here = os.path.join(os.path.dirname(sys.executable), "vela")
    found = here if os.access(here, os.X_OK) else shutil.which("vela")
    if not found:
        raise EdgekitError(f"the Ethos-U profile needs Arm's Vela compiler: {EXTRA}")
    return found


def _reason(text):
    """Vela's own reason in one line: its last line, without a Python exception's class name."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    last = lines[-1] if lines else "(no output)"
    return re.sub(r"^\w+(Error|Exception): ", "", last)[:300]


def run_vela(path, accelerator, outdir):
    """Compile ``path`` for ``accelerator`` into ``outdir``; one-line errors for an unknown accelerator or a
    model Vela cannot compile."""
    argv = [vela_command(), path, "--accelerator-config", accelerator, "--output-dir", outdir, "--verbose-performance"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        known = re.search(r"invalid choice: .*\(choose from (.*)\)", done.stderr)
        if known:
            raise EdgekitError(f"--accelerator {accelerator}: Vela does not know it; it knows "
                               f"{known.group(1).replace(chr(39), '')}")
        raise EdgekitError(f"{path}: Vela cannot compile it for {accelerator}: {_reason(done.stderr + done.stdout)}")
    return done.stdout


def _read_csv(outdir, suffix):
    names = [f for f in os.listdir(outdir) if f.endswith(suffix)]
    if not names:
        return None
    with open(os.path.join(outdir, names[0]), newline="") as f:
        return list(csv.DictReader(f))


def _norm(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _tie_rows(layers, graph):
    """Vela row -> graph operator index: by output tensor name, else the next operator of that type."""
    by_name = {graph.tensors[o]["name"]: op.index for op in graph.ops for o in op.outputs}
    out, last = [], None
    for row in layers:
        index = by_name.get(row["Name"])
        if index is None:
            kind = _norm(row["Original Operator"])
            later = [op.index for op in graph.ops if _norm(op.type) == kind and (last is None or op.index >= last)]
            index = later[0] if later else last
        out.append(index)
        last = index if index is not None else last
    return out


def vela_profile(path, graph, rows, accelerator):
    """Vela's estimate for ``path`` on ``accelerator`` (e.g. ethos-u55-128): rows filled with cycles, ms at the
    NPU clock and staging memory; operators Vela leaves to the CPU are marked not delegated."""
    with tempfile.TemporaryDirectory(prefix="edgekit-vela-") as outdir:
        run_vela(path, accelerator, outdir)
        layers = _read_csv(outdir, "_per-layer.csv")
        summary = _summary(outdir)
    if not any(row["Target"] == "NPU" for row in layers or []):
        raise EdgekitError(f"{path}: Vela puts none of its {len(graph.ops)} ops on the {accelerator} NPU "
                           f"(Ethos-U runs int8/int16 ops only): profile an int8 build")
    clock = float(summary["core_clock"])
    by_index = {r.index: r for r in rows}
    for row, index in zip(layers, _tie_rows(layers, graph)):
        if index is None:
            continue
        r = by_index[index]
        cycles = int(float(row["Op Cycles"]))
        r.cycles = (r.cycles or 0) + cycles
        r.ms += cycles / clock * 1e3
        r.memory_bytes = max(r.memory_bytes or 0, int(float(row["Staging Usage"])))
        r.delegated = row["Target"] == "NPU"
    for r in rows:
        if r.cycles is None:
            r.delegated, r.note = False, "left to the CPU by Vela (no NPU estimate)"
    return Profile(model=path, source="vela", rows=rows, estimate=True,
                   end_to_end_ms=float(summary["inference_time"]) * 1e3,
                   label=f"estimate: Arm Vela's cycle estimate for {summary['accelerator_configuration']} at "
                         f"{clock / 1e6:.0f} MHz ({summary['system_config']}, {summary['memory_mode']}); "
                         f"not a measurement",
                   delegated_label="on the NPU (else the Cortex-M CPU)",
                   settings={"accelerator": accelerator, "cycles_total": int(float(summary["cycles_total"])),
                             "sram_kib": float(summary["sram_memory_used"]),
                             "off_chip_flash_kib": float(summary["off_chip_flash_memory_used"])})


def _summary(outdir):
    """The first row of Vela's network summary CSV (totals, clock, memory)."""
    names = [f for f in os.listdir(outdir) if "_summary_" in f and f.endswith(".csv")]
    if not names:
        raise EdgekitError("Vela wrote no summary CSV: is this ethos-u-vela 5.x?")
    with open(os.path.join(outdir, names[0]), newline="") as f:
        return next(csv.DictReader(f))
