"""Devices that run a benchmark: this machine (`local`), a board over SSH, or an Android phone over adb (where
LiteRT's benchmark_model runs instead of device_bench), behind one interface."""

from device_bench.errors import EdgekitError
from edgekit.targets.adb import AdbSettings, AdbTarget
from edgekit.targets.base import Target
from edgekit.targets.local import LocalTarget
from edgekit.targets.ssh import SshTarget

__all__ = ["AdbSettings", "AdbTarget", "LocalTarget", "SshTarget", "Target", "open_target", "read_targets", "target_specs"]


def open_target(spec, ssh_config=None, adb=None):
    """'local', 'adb', adb://SERIAL, ssh://[user@]host[:port] or a Host alias; ``adb``: AdbSettings."""
    spec = spec.strip()
    if spec == "local":
        return LocalTarget()
    if spec == "adb" or spec.startswith("adb://"):
        return AdbTarget(spec, adb)
    return SshTarget(spec, ssh_config)


def target_specs(targets=(), targets_file=None):
    """Target names from the command line and from a file of one per line (# comments allowed)."""
    specs = [targets] if isinstance(targets, str) else list(targets or [])
    if targets_file:
        try:
            with open(targets_file, encoding="utf-8") as f:
                specs += [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
        except OSError as e:
            raise EdgekitError(f"{targets_file}: cannot read targets ({e.strerror})") from None
    if not specs:
        raise EdgekitError("no targets given")
    return specs


def read_targets(targets, *, ssh_config=None, adb=None):
    """A Target for each name (a Target stays as it is); ``adb``: AdbSettings for the phones among them."""
    return [t if isinstance(t, Target) else open_target(t, ssh_config, adb) for t in target_specs(targets)]
