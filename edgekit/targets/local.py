"""This machine as a target: the same probe, upload, run and clean-up as a board, without SSH.

Useful to check a bundle through exactly the path a board takes, and as the reference a remote
target's figures are compared against."""

import os
import shutil
import sys
import tempfile

from device_bench.errors import EdgekitError
from edgekit.targets.base import Target, completed


class LocalTarget(Target):
    """Runs device_bench in a child process here; files are linked into a private temporary folder."""

    spec = "local"

    def run(self, argv, stdin=None, timeout=None):
        argv = [sys.executable if a == "python3" and i == 0 else str(a) for i, a in enumerate(argv)]
        return completed(argv, stdin, timeout, self.spec)

    def upload(self, items, keep_dir=None):
        try:
            folder = os.path.abspath(os.path.expanduser(keep_dir)) if keep_dir else tempfile.mkdtemp(prefix="edgekit-")
            for path, name in items:
                dest = os.path.join(folder, name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                if not keep_dir:
                    os.symlink(os.path.abspath(path), dest)
                elif os.path.isdir(path):  # deploy: a real copy that outlives the source
                    shutil.copytree(path, dest, dirs_exist_ok=True)
                else:
                    shutil.copy2(path, dest)
        except OSError as e:
            raise EdgekitError(f"{self.spec}: upload failed: {e}") from None
        return folder

    def cleanup(self, folder):
        shutil.rmtree(folder, ignore_errors=True)
