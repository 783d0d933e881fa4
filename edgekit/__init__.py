"""edgekit: take Keras image classifiers to phones and Raspberry Pis, and measure what each build costs."""

from device_bench import __version__
from device_bench.errors import EdgekitError

__all__ = ["EdgekitError", "__version__"]
