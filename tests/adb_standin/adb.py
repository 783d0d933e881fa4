"""A stand-in for Android's `adb`, for tests: serves `devices`, `push`, `pull` and `shell` against a folder of
this machine acting as the phones (EDGEKIT_STANDIN_ROOT/SERIAL/ is each phone's /).

Files really travel and shell commands really run (in /bin/sh here, with getprop and dumpsys scripts that
answer from the environment). The one thing not run is the aarch64 benchmark_model: where a command starts a
pushed ``.../benchmark_model`` (checked to be there, executable and an ELF file), benchmark_model_replay.py
prints the recorded transcript EDGEKIT_STANDIN_TRANSCRIPT instead.

Environment: EDGEKIT_STANDIN_DEVICES "SERIAL:state,..." (state device, unauthorized, offline);
EDGEKIT_STANDIN_FULL=SERIAL (pushes fail: disk full); EDGEKIT_STANDIN_VANISH=SERIAL:N (the phone is gone
once N files were pulled from it); EDGEKIT_STANDIN_TEMPS="41,36" (battery temperatures read in turn, the last one
repeating); EDGEKIT_STANDIN_LOG (a file each adb command line is appended to).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ["EDGEKIT_STANDIN_ROOT"]


def devices():
    pairs = [d.split(":") for d in os.environ.get("EDGEKIT_STANDIN_DEVICES", "").split(",") if d]
    return {serial: state for serial, state in pairs if not _vanished(serial)}


def _vanished(serial):
    who, _, after = os.environ.get("EDGEKIT_STANDIN_VANISH", "").partition(":")
    return who == serial and _count(serial, "pulls") >= int(after)


def _count(serial, name, add=0):
    path = os.path.join(ROOT, f".{serial}.{name}")
    n = int(open(path).read()) if os.path.exists(path) else 0
    if add:
        open(path, "w").write(str(n + add))
    return n + add


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def on_phone(serial, path):
    return os.path.join(ROOT, serial) + path if path.startswith("/") else path


def shell(serial, command):
    """Run the command in /bin/sh with the phone's folder as its root for /data/local/tmp paths."""
    phone = os.path.join(ROOT, serial)
    os.makedirs(phone + "/data/local/tmp", exist_ok=True)
    command = command.replace("/data/local/tmp", phone + "/data/local/tmp")
    replay = f"{shlex.quote(sys.executable)} {shlex.quote(os.path.join(HERE, 'benchmark_model_replay.py'))}"
    command, _ = re.subn(r"(^|[;&|]\s*|taskset \w+ )('?[^\s';&|]*/benchmark_model'?)(?= )", rf"\1{replay} \2", command)
    env = dict(os.environ, PATH=os.path.join(HERE, "bin") + os.pathsep + os.environ["PATH"], EDGEKIT_STANDIN_SERIAL=serial)
    proc = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True)
    sys.stdout.write(proc.stdout.replace(phone, ""))  # paths as the phone names them
    sys.stderr.write(proc.stderr.replace(phone, ""))
    return proc.returncode


def main(args):
    if os.environ.get("EDGEKIT_STANDIN_LOG"):
        with open(os.environ["EDGEKIT_STANDIN_LOG"], "a") as f:
            f.write(" ".join(args) + "\n")
    serial = None
    if args[:1] == ["-s"]:
        serial, args = args[1], args[2:]
    attached = devices()
    if args == ["devices"]:
        print("List of devices attached")
        for s, state in attached.items():
            print(f"{s}\t{state}")
        return 0
    if serial is None:
        if not attached:
            fail("adb: no devices/emulators found")
        if len(attached) > 1:
            fail("adb: more than one device/emulator")
        serial = next(iter(attached))
    if serial not in attached:
        fail(f"adb: device '{serial}' not found")
    if attached[serial] == "unauthorized":
        fail("adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set")
    verb, rest = args[0], args[1:]
    if verb == "push":
        if os.environ.get("EDGEKIT_STANDIN_FULL") == serial:
            fail(f"adb: error: failed to copy '{rest[0]}' to '{rest[1]}': remote No space left on device")
        dest = on_phone(serial, rest[1])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(rest[0], dest)
        print(f"{rest[0]}: 1 file pushed, 0 skipped.")
        return 0
    if verb == "pull":
        shutil.copyfile(on_phone(serial, rest[0]), rest[1])
        _count(serial, "pulls", add=1)
        return 0
    if verb == "shell":
        return shell(serial, " ".join(rest))
    fail(f"adb: unknown command {verb}")


if __name__ == "__main__":
    os.makedirs(ROOT, exist_ok=True)
    sys.exit(main(sys.argv[1:]))
