"""`edgekit pack-runner`: device_bench as one stdlib zipapp file for devices."""

import os
import shutil
import tempfile
import zipapp

import device_bench
from device_bench.safe_write import atomic_path

_MAIN = "import sys\nfrom device_bench.__main__ import main\nsys.exit(main())\n"


def pack_runner(output, force=False):
    """Write device_bench.pyz: `python3 device_bench.pyz bench bundle/` needs only numpy and a runtime."""
    src = os.path.dirname(os.path.abspath(device_bench.__file__))
    with tempfile.TemporaryDirectory(prefix="edgekit-pyz-") as tmp:
        shutil.copytree(src, os.path.join(tmp, "device_bench"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        with open(os.path.join(tmp, "__main__.py"), "w") as f:
            f.write(_MAIN)
        with atomic_path(output, force) as part:
            zipapp.create_archive(tmp, part, interpreter="/usr/bin/env python3", compressed=True)
    return os.path.abspath(output)
