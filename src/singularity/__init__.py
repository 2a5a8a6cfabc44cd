"""Singularity: discovers, validates and trades crypto trading strategies on its own."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("singularity")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
