"""What the stand-in adb runs in place of the pushed aarch64 benchmark_model: checks the binary was pushed,
made executable and is an ELF file, and that --graph names a pushed model, then prints the recorded
transcript EDGEKIT_STANDIN_TRANSCRIPT and exits with EDGEKIT_STANDIN_EXIT (default 0). It measures nothing."""

import os
import sys

binary, args = sys.argv[1], sys.argv[2:]
if not os.access(binary, os.X_OK):
    sys.exit(f"/system/bin/sh: {binary}: can't execute: Permission denied")
with open(binary, "rb") as f:
    if f.read(4) != b"\x7fELF":
        sys.exit(f"/system/bin/sh: {binary}: not executable: magic 7F45")
graph = next((a.split("=", 1)[1] for a in args if a.startswith("--graph=")), None)
if not graph or not os.path.isfile(graph):
    print("ERROR: Could not open model file.", flush=True)
    sys.exit(1)
with open(os.environ["EDGEKIT_STANDIN_TRANSCRIPT"]) as f:
    sys.stdout.write(f.read())
sys.exit(int(os.environ.get("EDGEKIT_STANDIN_EXIT", "0")))
