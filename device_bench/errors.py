"""The one error type every edgekit layer raises for a user's mistake.

It lives on the device floor so that device_bench, converters and edgekit share it; the CLIs turn
it into a single ``Error: ...`` line and a non-zero exit.
"""


class EdgekitError(Exception):
    """A problem the user can fix: bad input, missing file, unsupported option."""


class WeightsUnavailable(EdgekitError):
    """Trained weights could not be had (offline, say); ``reason`` says why, for a caller to fall back."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


class AcceleratorUnavailable(EdgekitError):
    """The runtime has no such accelerator here (no GPU, no NPU): a benchmark row says so instead of failing."""
