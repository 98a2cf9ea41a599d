"""Transfer learning for image classifiers from one command."""

__version__ = "0.1.0"
