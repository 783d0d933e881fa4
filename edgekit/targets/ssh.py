"""A board over SSH. OpenSSH is the engine (the user's config, agent and known_hosts apply); edgekit
builds no agent of its own. Every remote command is a list of arguments joined with shlex.quote, so
paths and names with spaces, quotes or $() arrive intact and run nothing. Files travel as a tar
stream on ssh's stdin, unpacked by the device's own python3, so the device needs nothing beyond it.
"""

import io
import re
import shlex
import tarfile

from device_bench.errors import EdgekitError
from edgekit.targets.base import RUN_TIMEOUT, Target, completed

CONNECT_TIMEOUT = 10
UNPACK = "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|').extractall(sys.argv[1])"
MKTEMP = "import tempfile; print(tempfile.mkdtemp(prefix='edgekit-'))"
MKDIR = "import os, sys; os.makedirs(sys.argv[1], exist_ok=True); print(os.path.abspath(sys.argv[1]))"
REMOVE = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"


class SshTarget(Target):
    """ssh://[user@]host[:port] or a Host alias from ~/.ssh/config."""

    def __init__(self, spec, ssh_config=None):
        self.spec = spec.strip()
        self.ssh_config = ssh_config
        m = re.fullmatch(r"ssh://(?:([^@/]+)@)?([^:/]+)(?::(\d+))?/?", self.spec)
        if self.spec.startswith("ssh://") and not m:
            raise EdgekitError(f"target {spec!r} is not ssh://[user@]host[:port]")
        if m:
            self.user, self.host, self.port = m.group(1), m.group(2), m.group(3)
        else:
            if not re.fullmatch(r"[\w.@-]+", self.spec) or self.spec.startswith("-"):
                raise EdgekitError(f"target {spec!r} is neither ssh://[user@]host[:port] nor a Host alias")
            self.user, self.host, self.port = None, self.spec, None

    def ssh_args(self):
        """ssh in batch mode with timeouts and keep-alives: a dead board fails fast instead of hanging."""
        args = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-T"]
        if self.ssh_config:
            args += ["-F", self.ssh_config]
        if self.port:
            args += ["-p", self.port]
        return args + ["--", f"{self.user}@{self.host}" if self.user else self.host]

    def run(self, argv, stdin=None, timeout=RUN_TIMEOUT):
        command = shlex.join(map(str, argv))
        try:
            return completed(self.ssh_args() + [command], stdin, timeout, self.spec)
        except FileNotFoundError:
            raise EdgekitError("the OpenSSH client (ssh) is not installed") from None

    def upload(self, items, keep_dir=None):
        if keep_dir:
            folder = self.check(["python3", "-c", MKDIR, keep_dir], "creating the folder").strip()
        else:
            folder = self.check(["python3", "-c", MKTEMP], "creating a temporary folder").strip()
        try:
            self.check(["python3", "-c", UNPACK, folder], "upload", stdin=_tar(items))
        except BaseException:
            if not keep_dir:
                self.cleanup(folder)
            raise
        return folder

    def cleanup(self, folder):
        try:
            self.run(["python3", "-c", REMOVE, folder], timeout=120)
        except EdgekitError:
            pass

    def describe_failure(self, proc):
        err = proc.stderr.decode("utf-8", "replace").strip()
        lines = [l for l in err.splitlines() if l.strip() and "Warning: Permanently added" not in l]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        if proc.returncode == 255:
            if "Permission denied" in err or "Too many authentication failures" in err:
                return f"authentication refused ({last})"
            if "Could not resolve" in err or "Connection refused" in err or "timed out" in err or "No route" in err:
                return f"unreachable ({last})"
            return f"connection failed or lost ({last})"
        if proc.returncode == 127 and "python3" in err:
            return "no python3 on the device"
        if "No space left on device" in err:
            return "the device's disk is full"
        return last[:400]


def _tar(items):
    """A tar stream holding each (local path, name in archive)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, name in items:
            tar.add(path, arcname=name)
    return buf.getvalue()
