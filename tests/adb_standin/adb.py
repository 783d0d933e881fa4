"""A stand-in for Android's `adb`, for tests: serves `devices`, `push`, `pull` and `shell` against a folder that
plays each phone (its /data/local/tmp is PHONES/SERIAL/data/local/tmp).

The phones live on this machine (PHONES is EDGEKIT_STANDIN_ROOT), or, in board mode (EDGEKIT_STANDIN_BOARD: the
ssh_config of the emulated aarch64 board, tests/board/board.sh), on the board (PHONES is
EDGEKIT_STANDIN_BOARD_ROOT there): `push` and `pull` copy the file over ssh, `shell` runs the command in the
board's /bin/sh. Either way files really travel and commands really run, with getprop and dumpsys scripts
(bin/) that answer from the environment. The one thing not run is the aarch64 benchmark_model: where a command
starts a pushed ``.../benchmark_model`` (checked to be there, executable and an ELF file),
benchmark_model_replay.py prints the recorded transcript EDGEKIT_STANDIN_TRANSCRIPT instead, on the board too.

Environment: EDGEKIT_STANDIN_DEVICES "SERIAL:state,..." (state device, unauthorized, offline);
EDGEKIT_STANDIN_ZONES="45000 30000;36500" (the
phone's /sys/class/thermal/thermal_zone*/temp, millidegrees: one reading per temperature read, zones separated by
spaces, readings by ';', the last one repeating; without it the phone has no thermal zones);
EDGEKIT_STANDIN_THERMAL=none (`dumpsys thermalservice` has no such service, as before Android 10);
EDGEKIT_STANDIN_TEMPS=none (`dumpsys battery` gives no temperature); EDGEKIT_STANDIN_FULL=SERIAL (pushes fail: disk full); EDGEKIT_STANDIN_SERVER=down (`adb devices` fails); EDGEKIT_STANDIN_VANISH=SERIAL:N (the phone is gone
once N files were pulled from it); EDGEKIT_STANDIN_TEMPS="41,36" (battery temperatures read in turn, the last one
repeating); EDGEKIT_STANDIN_EXIT (the replayed benchmark_model's exit status); EDGEKIT_STANDIN_LOG (a file
each adb command line is appended to).
"""

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ["EDGEKIT_STANDIN_ROOT"]  # adb's own state (pull counts), and the phones unless on the board
BOARD = os.environ.get("EDGEKIT_STANDIN_BOARD")
BOARD_ROOT = os.environ.get("EDGEKIT_STANDIN_BOARD_ROOT", "/root/adb-standin")
PASSED = ("EDGEKIT_STANDIN_TEMPS", "EDGEKIT_STANDIN_THERMAL", "EDGEKIT_STANDIN_ABI",
          "EDGEKIT_STANDIN_EXIT")  # read by bin/ and the replay
THERMAL_ZONES = "/sys/class/thermal"


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


def phone_root(serial):
    """The folder playing the phone's /, here or on the board."""
    return f"{BOARD_ROOT if BOARD else ROOT}/{serial}"


def on_phone(serial, path):
    return phone_root(serial) + path if path.startswith("/") else path


def on_board(command, data=b"", stdout=subprocess.PIPE):
    """Run a shell command line on the emulated board over ssh, ``data`` on its stdin."""
    return subprocess.run(["ssh", "-F", BOARD, "-o", "BatchMode=yes", "board", command], input=data,
                          stdout=stdout, stderr=subprocess.PIPE, timeout=120)


def _helpers():
    """bin/getprop, bin/dumpsys, the replay script and the transcript as a tar stream, for the board."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("bin/getprop", "bin/dumpsys", "benchmark_model_replay.py"):
            tar.add(os.path.join(HERE, name), name)
        if os.environ.get("EDGEKIT_STANDIN_TRANSCRIPT"):
            tar.add(os.environ["EDGEKIT_STANDIN_TRANSCRIPT"], "transcript.txt")
    return buf.getvalue()


def zone_readings(serial, phone):
    """A command line that writes the phone's next thermal zone reading (EDGEKIT_STANDIN_ZONES) into its
    folder's sys/class/thermal, run before a command that reads the zones; in the same shell, so on the board
    too. Empty when the phone has no zones."""
    readings = [r.split() for r in os.environ.get("EDGEKIT_STANDIN_ZONES", "").split(";") if r.strip()]
    if not readings:
        return ""
    zones = readings[min(_count(serial, "zones", add=1), len(readings)) - 1]
    return "".join(f"mkdir -p {phone}{THERMAL_ZONES}/thermal_zone{i} && echo {int(t)} > "
                   f"{phone}{THERMAL_ZONES}/thermal_zone{i}/temp; " for i, t in enumerate(zones))


def shell(serial, command):
    """Run the command in /bin/sh, here or on the board, with the phone's folder in place of /data/local/tmp
    and of /sys/class/thermal (the phone's own zones, never this machine's)."""
    phone = phone_root(serial)
    command = command.replace("/data/local/tmp", phone + "/data/local/tmp")
    if THERMAL_ZONES in command:
        command = zone_readings(serial, phone) + command.replace(THERMAL_ZONES, phone + THERMAL_ZONES)
    env = {k: os.environ[k] for k in PASSED if k in os.environ}
    env["EDGEKIT_STANDIN_SERIAL"] = serial
    if BOARD:
        helpers = f"{phone}/.standin"
        replay = f"python3 {helpers}/benchmark_model_replay.py"
        env.update(EDGEKIT_STANDIN_ROOT=BOARD_ROOT, EDGEKIT_STANDIN_TRANSCRIPT=f"{helpers}/transcript.txt")
    else:
        helpers = HERE
        replay = f"{shlex.quote(sys.executable)} {shlex.quote(os.path.join(HERE, 'benchmark_model_replay.py'))}"
    command, _ = re.subn(r"(^|[;&|]\s*|taskset \w+ )('?[^\s';&|]*/benchmark_model'?)(?= )", rf"\1{replay} \2", command)
    if BOARD:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        proc = on_board(f"mkdir -p {phone}/data/local/tmp {helpers} && tar -xf - -C {helpers} && "
                        f"PATH={helpers}/bin:$PATH {exports} sh -c {shlex.quote(command)}", _helpers())
    else:
        os.makedirs(phone + "/data/local/tmp", exist_ok=True)
        env = dict(os.environ, **env, PATH=os.path.join(helpers, "bin") + os.pathsep + os.environ["PATH"])
        proc = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True)
    sys.stdout.write(proc.stdout.decode("utf-8", "replace").replace(phone, ""))  # paths as the phone names them
    sys.stderr.write(proc.stderr.decode("utf-8", "replace").replace(phone, ""))
    return proc.returncode


def push(local, remote):
    """Copy a file into the phone's folder (over ssh to the board)."""
    if BOARD:
        with open(local, "rb") as f:
            data = f.read()
        proc = on_board(f"mkdir -p {shlex.quote(os.path.dirname(remote))} && cat > {shlex.quote(remote)}", data)
        if proc.returncode:
            fail(f"adb: error: failed to copy '{local}' to '{remote}': {proc.stderr.decode().strip()}")
    else:
        os.makedirs(os.path.dirname(remote), exist_ok=True)
        shutil.copyfile(local, remote)


def pull(remote, local):
    """Copy a file out of the phone's folder (over ssh from the board)."""
    if BOARD:
        with open(local, "wb") as f:
            proc = on_board(f"cat {shlex.quote(remote)}", stdout=f)
        if proc.returncode:
            fail(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
    else:
        shutil.copyfile(remote, local)


def main(args):
    if os.environ.get("EDGEKIT_STANDIN_LOG"):
        with open(os.environ["EDGEKIT_STANDIN_LOG"], "a") as f:
            f.write(" ".join(args) + "\n")
    serial = None
    if args[:1] == ["-s"]:
        serial, args = args[1], args[2:]
    attached = devices()
    if args == ["devices"] and os.environ.get("EDGEKIT_STANDIN_SERVER") == "down":
        fail("* daemon not running; starting now at tcp:5037\nADB server didn't ACK\n* failed to start daemon\n"
             "adb: cannot connect to daemon")
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
        push(rest[0], on_phone(serial, rest[1]))
        print(f"{rest[0]}: 1 file pushed, 0 skipped.")
        return 0
    if verb == "pull":
        pull(on_phone(serial, rest[0]), rest[1])
        _count(serial, "pulls", add=1)
        return 0
    if verb == "shell":
        return shell(serial, " ".join(rest))
    fail(f"adb: unknown command {verb}")


if __name__ == "__main__":
    os.makedirs(ROOT, exist_ok=True)
    sys.exit(main(sys.argv[1:]))
