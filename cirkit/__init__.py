"""cirkit: Code-Integrated Reasoning toolkit.

Tool calls go through ``recorders`` (record/replay stores); this package adds the CIR format,
rollouts, dataset builders, publishing and the ``cirkit`` command line.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
