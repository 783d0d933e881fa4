"""Devices that run device_bench: this machine (`local`) or a board over SSH, behind one interface."""

from device_bench.errors import EdgekitError
from edgekit.targets.base import Target
from edgekit.targets.local import LocalTarget
from edgekit.targets.ssh import SshTarget

__all__ = ["LocalTarget", "SshTarget", "Target", "open_target", "read_targets"]


def open_target(spec, ssh_config=None):
    """'local', ssh://[user@]host[:port] or a Host alias."""
    return LocalTarget() if spec.strip() == "local" else SshTarget(spec, ssh_config)


def read_targets(targets=(), targets_file=None, ssh_config=None):
    """Targets from the command line and from a file of one per line (# comments allowed)."""
    specs = [targets] if isinstance(targets, str) else list(targets or [])
    if targets_file:
        try:
            with open(targets_file, encoding="utf-8") as f:
                specs += [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
        except OSError as e:
            raise EdgekitError(f"{targets_file}: cannot read targets ({e.strerror})") from None
    if not specs:
        raise EdgekitError("no targets given")
    return [t if isinstance(t, Target) else open_target(t, ssh_config) for t in specs]
