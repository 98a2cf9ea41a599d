"""Shared test set-up: offline, quiet TensorFlow, absl flags parsed once."""

import os
import subprocess
import sys

# Before TensorFlow is imported anywhere: no network probes, less chatter.
os.environ["KERAS_TRANSFER_OFFLINE"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from absl import flags  # noqa: E402

from keras_transfer import main as main_lib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Settings that keep a whole run to seconds: 32 px, 4 labels per class, one
# epoch per phase, a source task of 10 images per class.
TINY = dict(
    epochs=1,
    fine_tune_epochs=1,
    pretrain_epochs=1,
    examples_per_class=4,
    source_examples_per_class=10,
    batch_size=16,
    verbose=0,
)


def pytest_configure(config):
    main_lib.define_flags()
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["pytest"])


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One source-pretrained-base cache for the whole session."""
    return str(tmp_path_factory.mktemp("source_cache"))


def run_python(code_or_args, env=None, timeout=300):
    """Runs a fresh Python process; returns the CompletedProcess."""
    args = code_or_args if isinstance(code_or_args, list) else ["-c", code_or_args]
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )
