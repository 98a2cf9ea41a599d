"""Transfer learning for image classifiers from one command.

The Python API (`run/api.py`): `keras_transfer.train(**settings)` runs what
`python -m keras_transfer.main` runs and returns a `TrainResult`;
`keras_transfer.load_export(path)` loads an export as a predictor, and
`keras_transfer.load_keras_model(path)` its `model.keras` as a `keras.Model`.
Bad settings raise `keras_transfer.ConfigError`.
"""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512
# VNNI/BF16/AMX; elsewhere (an AVX2 AMD EPYC here) it falls back to Eigen and
# trains at less than half the speed (benchmarks/RESULTS.md, "oneDNN and XLA
# on these CPUs"). TensorFlow reads the variable once, when it is first
# imported, so it is set here, before any of our modules import it; a value
# the user set (0 to turn it off) is kept.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

_API = {"train": "keras_transfer.run.api", "load_export": "keras_transfer.run.api",
        "load_keras_model": "keras_transfer.run.api",
        "TrainResult": "keras_transfer.run.api", "ConfigError": "keras_transfer.config"}


def __getattr__(name):
    # The API loads on first use: `import keras_transfer` (and with it every
    # command line's flag check) stays free of TensorFlow.
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'keras_transfer' has no attribute {name!r}")


__all__ = ["train", "load_export", "load_keras_model", "TrainResult", "ConfigError",
           "__version__"]
