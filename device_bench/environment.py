"""Where a figure was measured: CPU, cores, frequency, temperature, runtime, versions, emulation."""

import glob
import os
import platform


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _cpuinfo():
    text = _read("/proc/cpuinfo") or ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


def cpu_model(info=None):
    """The CPU's name for results, from whichever /proc/cpuinfo field this architecture fills in."""
    info = info if info is not None else _cpuinfo()
    for key in ("model name", "hardware", "cpu model", "processor"):
        if info.get(key) and not info[key].isdigit():
            return info[key]
    return platform.processor() or None


def vector_bits(info=None):
    """Widest SIMD register the CPU advertises, for the 'fraction of peak' figure."""
    info = info if info is not None else _cpuinfo()
    flags = set((info.get("flags") or info.get("features") or "").split())
    for flag, bits in (("avx512f", 512), ("avx2", 256), ("avx", 256), ("sse2", 128), ("asimd", 128), ("neon", 128)):
        if flag in flags:
            return bits
    return None


def int8_dot(info=None):
    """Whether the CPU has int8 dot-product instructions (4 int8 multiply-adds per 32-bit lane)."""
    info = info if info is not None else _cpuinfo()
    flags = set((info.get("flags") or info.get("features") or "").split())
    return bool(flags & {"avx512_vnni", "avx_vnni", "asimddp"})


def emulated(info=None):
    """True under qemu-user: the machine says ARM but /proc/cpuinfo describes the x86 host (or vice versa)."""
    info = info if info is not None else _cpuinfo()
    machine = platform.machine().lower()
    x86_host = info.get("vendor_id") in ("GenuineIntel", "AuthenticAMD") or "avx" in (info.get("flags") or "")
    arm_host = "cpu implementer" in info or "asimd" in (info.get("features") or "")
    if machine in ("aarch64", "arm64") or machine.startswith("arm"):
        return x86_host
    if machine in ("x86_64", "amd64", "i686"):
        return arm_host
    return False


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


SYS = "/sys"  # the root of sysfs, a parameter so that tests can stand up a Raspberry Pi's files


def frequency_mhz(sys_root=None):
    """The fastest core's current clock, sampled before and after a run so that throttling can be flagged."""
    root = sys_root or SYS
    values = [_read(p) for p in sorted(glob.glob(f"{root}/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"))]
    values = [int(v) for v in values if v and v.isdigit()]
    return round(max(values) / 1000) if values else None


def temperature_c(sys_root=None):
    """Hottest thermal zone, sampled before and after a run so that heating can be flagged."""
    temps = []
    for zone in sorted(glob.glob(f"{sys_root or SYS}/class/thermal/thermal_zone*/temp")):
        value = _read(zone)
        if value and value.lstrip("-").isdigit():
            temps.append(int(value) / 1000)
    return max(temps) if temps else None


def clock(sys_root=None):
    """{frequency_mhz, temperature_c} now, each None where /sys does not expose it (most VMs)."""
    return {"frequency_mhz": frequency_mhz(sys_root), "temperature_c": temperature_c(sys_root)}


def clock_drift(before, after):
    """Warnings when the clock or temperature moved during a run: "throttled: 1.5 -> 0.6 GHz"."""
    notes = []
    f0, f1 = before.get("frequency_mhz"), after.get("frequency_mhz")
    if f0 and f1 and abs(f1 - f0) / f0 > 0.1:
        notes.append(f"{'throttled' if f1 < f0 else 'clock rose'}: {f0 / 1000:.1f} \u2192 {f1 / 1000:.1f} GHz "
                     f"during the run (figures may be skewed)")
    t0, t1 = before.get("temperature_c"), after.get("temperature_c")
    if t0 is not None and t1 is not None and abs(t1 - t0) >= 5:
        notes.append(f"temperature moved: {t0:.0f} \u2192 {t1:.0f} \u00b0C during the run")
    return notes


def nominal_peak_macs_per_s(env, threads, precision):
    """The nominal peak multiply-adds/s, for reference only (the core may boost above the clock it is taken
    from): threads x clock x (vector bits / 32 lanes) x 2 FMA units, and 4x that for int8 and dynamic-range
    kernels on CPUs with int8 dot products (VNNI, ARM dotprod); None if unknown."""
    mhz = env.get("max_frequency_mhz") or env.get("frequency_mhz") or env.get("cpuinfo_mhz")
    bits = env.get("vector_bits")
    if not mhz or not bits:
        return None
    per_lane = 4 if precision in ("int8", "dynamic") and env.get("int8_dot") else 1
    return threads * mhz * 1e6 * (bits / 32) * 2 * per_lane


def collect(runtime=None):
    """Record where a figure was measured (hardware, clocks, versions, emulation) so results compare."""
    import numpy
    info = _cpuinfo()
    emu = emulated(info)
    env = {
        "hostname": platform.node(),
        "cpu": cpu_model(info),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "vector_bits": vector_bits(info),
        "int8_dot": int8_dot(info),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "frequency_mhz": frequency_mhz(),
        "max_frequency_mhz": (lambda v: round(int(v) / 1000) if v and v.isdigit() else None)(
            _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")),
        "cpuinfo_mhz": _float(info.get("cpu mhz")),
        "temperature_c": temperature_c(),
        "board": (_read("/proc/device-tree/model") or "").rstrip("\x00") or None,
        "runtime": runtime.as_dict() if runtime else None,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "libc": " ".join(platform.libc_ver()).strip() or None,
        "emulated": emu,
    }
    if emu:
        env["note"] = "running under emulation (qemu): timings are meaningless for the real device"
    return env


def device_label(env):
    """A short name for a device in tables and chart titles."""
    parts = [env.get("board") or env.get("cpu") or env.get("arch") or "unknown"]
    if env.get("cores"):
        parts.append(f"{env['cores']} cores")
    if env.get("emulated"):
        parts.append("EMULATED")
    return ", ".join(parts)

