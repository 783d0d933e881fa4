"""An Android phone over adb. The `adb` command is the engine (found on PATH or given with --adb); edgekit
installs nothing on the phone but LiteRT's own `benchmark_model`, pushed for the run into a private folder
under /data/local/tmp and removed afterwards, also on failure and Ctrl-C. Every shell command's arguments are
quoted with shlex, as over SSH.
"""

import os
import re
import shlex
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Optional

from device_bench.errors import EdgekitError
from device_bench.sweep import wait_or_stop
from edgekit.targets.base import RUN_TIMEOUT, Target, completed

DEVICE_TMP = "/data/local/tmp"
POLL_SECONDS = 5.0  # between temperature readings while the phone cools down
# One round trip for everything the probe wants: `key=value` lines.
PROBE = ("for p in ro.product.cpu.abi ro.product.model ro.soc.model ro.build.version.release; "
         "do echo \"$p=$(getprop $p)\"; done; "
         "echo \"governor=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null)\"; "
         "echo \"cores=$(ls -d /sys/devices/system/cpu/cpu[0-9]* 2>/dev/null | wc -l)\"")
THERMAL = ("echo \"battery=$(dumpsys battery 2>/dev/null | grep -m1 temperature)\"; "
           "echo \"thermal=$(dumpsys thermalservice 2>/dev/null | grep -m1 'Thermal Status')\"; "
           "echo \"freq=$(cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq 2>/dev/null | tr '\\n' ' ')\"; "
           "echo \"zones=$(cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null | tr '\\n' ' ')\"")
ZONE_RANGE_C = (-40.0, 150.0)  # a thermal zone reading outside this is a sensor that is off or broken, not a heat


@dataclass(frozen=True)
class AdbSettings:
    """How edgekit reaches phones and when it lets a process start: the adb command, the benchmark_model
    binary to push, the temperature to cool below (°C) and the longest wait for it (s)."""
    adb: Optional[str] = None
    benchmark_binary: Optional[str] = None
    max_temp: float = 37.0
    cooldown_max: float = 300.0
    cpu_mask: Optional[str] = None  # taskset mask, e.g. f0 for the big cores


class AdbTarget(Target):
    """`adb` (the one phone attached) or adb://SERIAL."""

    native_runner = "benchmark_model"

    def __init__(self, spec, settings=None):
        self.spec = spec.strip()
        self.settings = settings or AdbSettings()
        m = re.fullmatch(r"adb(?:://([\w.:-]+))?/?", self.spec)
        if not m:
            raise EdgekitError(f"target {spec!r} is neither 'adb' nor adb://SERIAL")
        self.serial = m.group(1)

    def adb(self):
        """The adb command: --adb (a path, or a name on PATH), else the one on PATH."""
        found = shutil.which(self.settings.adb or "adb")
        if self.settings.adb and not found:
            raise EdgekitError(f"--adb {self.settings.adb}: no such command (give adb's path or its name on PATH)")
        if not found:
            raise EdgekitError("adb is not installed: install Android's platform-tools (sdkmanager "
                               "'platform-tools', or apt install adb) or pass --adb PATH")
        return found

    def adb_run(self, args, timeout=RUN_TIMEOUT):
        """adb [-s SERIAL] ARGS, as a CompletedProcess with bytes."""
        serial = ["-s", self.serial] if self.serial else []
        proc = completed([self.adb(), *serial, *args], None, timeout, self.spec)
        if proc.returncode in (-signal.SIGINT, 128 + signal.SIGINT):
            raise KeyboardInterrupt  # adb died of the user's Ctrl-C: an interrupted run, not a failed step
        return proc

    def connect(self):
        """Pick the phone: the serial asked for, or the only one attached; one line when it cannot be used."""
        proc = self.adb_run(["devices"], timeout=30)
        if proc.returncode != 0:  # the adb server failed: not the same as no phone
            raise EdgekitError(f"`adb devices` failed: {self.describe_failure(proc)}")
        lines = proc.stdout.decode("utf-8", "replace").splitlines()
        states = dict(m.groups() for m in (re.fullmatch(r"(\S+)\t(\S+)", line.strip()) for line in lines) if m)
        if not states:
            raise EdgekitError("no Android device attached: plug the phone in and enable USB debugging "
                               "(Settings > Developer options)")
        if self.serial is None:
            if len(states) > 1:
                raise EdgekitError(f"{len(states)} Android devices attached ({', '.join(sorted(states))}): "
                                   f"name one with --target adb://SERIAL")
            self.serial = next(iter(states))
        state = states.get(self.serial)
        if state is None:
            raise EdgekitError(f"no Android device {self.serial!r} attached (attached: {', '.join(sorted(states))})")
        if state == "unauthorized":
            raise EdgekitError(f"{self.serial}: USB debugging is not authorized: accept the prompt on the phone")
        if state != "device":
            raise EdgekitError(f"{self.serial}: the device is {state}, not ready: reconnect it")
        return self.serial

    def shell(self, command, what, timeout=RUN_TIMEOUT):
        """Run a shell command line on the phone and return its stdout; EdgekitError naming the step on failure."""
        proc = self.adb_run(["shell", command], timeout)
        if proc.returncode != 0:
            raise EdgekitError(f"{self.spec}: {what} failed: {self.describe_failure(proc)}")
        return proc.stdout.decode("utf-8", "replace")

    def run(self, argv, stdin=None, timeout=RUN_TIMEOUT):
        raise EdgekitError(f"{self.spec}: an Android phone runs LiteRT's benchmark_model only, not device_bench "
                           f"commands ({shlex.join(map(str, argv[:2]))} ...)")

    def probe(self, install_runtime=False):
        """ABI, model, SoC, Android version, CPU governor and cores, as the phone reports them."""
        self.connect()
        values = _key_values(self.shell(PROBE, "probe", timeout=60))
        info = {"arch": values.get("ro.product.cpu.abi") or None, "board": values.get("ro.product.model") or None,
                "soc": values.get("ro.soc.model") or None, "android": values.get("ro.build.version.release") or None,
                "governor": values.get("governor") or None, "serial": self.serial,
                "cores": int(values.get("cores", "").strip() or 0) or None}
        info.update(self.thermal())
        return info

    def thermal(self):
        """Battery temperature (°C), thermal status (0: none ... 6: shutdown), the hottest thermal zone (°C,
        /sys/class/thermal, millidegrees there) and CPU clocks (MHz) now. Where dumpsys gives no battery
        temperature, the hottest zone stands in for it (``temperature_source`` says which was read)."""
        values = _key_values(self.shell(THERMAL, "reading the temperature", timeout=60))
        battery = re.search(r"temperature:\s*(-?\d+)", values.get("battery", ""))
        status = re.search(r"Thermal Status:\s*(\d+)", values.get("thermal", ""))
        freqs = [int(f) // 1000 for f in values.get("freq", "").split() if f.isdigit()]
        zones = [int(z) / 1000 for z in values.get("zones", "").split() if z.lstrip("-").isdigit()]
        zones = [z for z in zones if ZONE_RANGE_C[0] <= z <= ZONE_RANGE_C[1]]
        zone = max(zones) if zones else None
        return {"temperature_c": int(battery.group(1)) / 10 if battery else zone,
                "temperature_source": "battery" if battery else ("thermal zone" if zones else None),
                "thermal_status": int(status.group(1)) if status else None,
                "zone_c": zone, "frequency_mhz": max(freqs) if freqs else None}

    def too_hot(self, now):
        """Why the phone may not start a process yet, or None: above --max-temp, or throttled. Throttling is
        the thermal status above 0; where `dumpsys thermalservice` gives none (older Android, or no such
        service), the hottest /sys/class/thermal zone above --max-temp counts as throttled."""
        limit = self.settings.max_temp
        if now["temperature_c"] is not None and now["temperature_c"] > limit:
            return f"{now['temperature_c']} °C ({now['temperature_source']})"
        if now["thermal_status"] is not None:
            return f"thermal status {now['thermal_status']}" if now["thermal_status"] > 0 else None
        if now["zone_c"] is not None and now["zone_c"] > limit:
            return f"hottest thermal zone {now['zone_c']} °C (no thermal status from dumpsys)"
        return None

    def wait_cool(self, say, cancel=None):
        """Wait (at most --cooldown-max) until the phone is below --max-temp and not throttled; returns the
        last reading and a warning when it never got there. KeyboardInterrupt once ``cancel`` is set."""
        deadline = time.monotonic() + self.settings.cooldown_max
        while True:
            now = self.thermal()
            hot = self.too_hot(now)
            if not hot:
                return now, None
            if time.monotonic() >= deadline:
                return now, (f"started hot: {hot} after waiting {self.settings.cooldown_max:.0f} s (--cooldown-max)")
            say(f"cooling down: {hot}")
            wait_or_stop(cancel, min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def upload(self, items, keep_dir=None):
        if keep_dir:
            raise EdgekitError(f"{self.spec}: deploy is not supported on an Android phone")
        folder = self.shell(f"mktemp -d {DEVICE_TMP}/edgekit-XXXXXX", "creating a private folder").strip()
        try:
            for path, name in items:
                proc = self.adb_run(["push", path, f"{folder}/{name}"])
                if proc.returncode != 0:
                    raise EdgekitError(f"{self.spec}: pushing {os.path.basename(path)} failed: "
                                       f"{self.describe_failure(proc)}")
        except BaseException:
            self.cleanup(folder)
            raise
        return folder

    def pull(self, remote, local):
        """Copy a file from the phone."""
        proc = self.adb_run(["pull", remote, local], timeout=120)
        if proc.returncode != 0:
            raise EdgekitError(f"{self.spec}: pulling {remote} failed: {self.describe_failure(proc)}")

    def cleanup(self, folder):
        try:
            self.adb_run(["shell", f"rm -rf {shlex.quote(folder)}"], timeout=60)
        except EdgekitError:
            pass

    def describe_failure(self, proc):
        text = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
        lines = [l for l in text.splitlines() if l.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        if "No space left on device" in text:
            return f"{DEVICE_TMP} on the phone is full: free some space ({last})"
        if "unauthorized" in text:
            return "USB debugging is not authorized: accept the prompt on the phone"
        if re.search(r"device '?[\w.:-]*'? not found|no devices/emulators found|device offline", text):
            return f"the phone is gone (unplugged or rebooted): {last}"
        return last[:400]


def _key_values(text):
    """`key=value` lines, both sides stripped (older Android ends shell lines with \\r\\n)."""
    return {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in text.splitlines() if "=" in line)}
