"""Shared test set-up: offline, quiet TensorFlow, absl flags parsed once."""

import os
import shutil
import subprocess
import sys

# Before TensorFlow is imported anywhere: no network probes, less chatter.
os.environ["KERAS_TRANSFER_OFFLINE"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from absl import flags  # noqa: E402

from keras_transfer import outputs  # noqa: E402
from keras_transfer.cli import main as main_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Settings that keep a whole run to seconds: 32 px, 4 labels per class, one
# epoch per phase of one pass (not the default's 10 steps; the repeat has
# tests of its own), a source task of 10 images per class.
TINY = dict(
    epochs=1,
    fine_tune_epochs=1,
    pretrain_epochs=1,
    min_steps_per_epoch=1,
    examples_per_class=4,
    source_examples_per_class=10,
    batch_size=16,
    verbose=0,
)


def pytest_configure(config):
    main_lib.define_flags()
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["pytest"])


def pytest_collection_modifyitems(items):
    """The tests marked `long` (a minute or more of whole runs) first: the
    test processes then end on short tests, together, instead of one of them
    idling while the other finishes a long test it took last."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One source-pretrained-base cache for the whole session."""
    return str(tmp_path_factory.mktemp("source_cache"))


@pytest.fixture(scope="session")
def random_vgg16_base(tmp_path_factory):
    """A file of a randomly initialised VGG16 base (`--weights=PATH`): a
    transfer run with a base of its own, no source pretraining and no download
    (`--weights=none` trains the whole network from scratch instead)."""
    def build(folder):
        from keras_transfer.models import backbones

        backbones.get("vgg16").build(32).save_weights(str(folder / "base.weights.h5"))

    return str(built_once(tmp_path_factory, "random_vgg16_base", build) / "base.weights.h5")


def built_once(tmp_path_factory, name, build):
    """A folder `build(folder)` fills once per test session, however many
    pytest-xdist workers ask for it; returns its path.

    For a module fixture that is a whole training run: each worker running
    one of its tests would otherwise repeat the run. The first worker builds
    under a lock in the temporary folder all workers share; the others wait
    and reuse it. Only for folders the tests then read without changing.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # The session's folder, above each worker's own.
    folder = root / name
    with outputs.locked(root / f"{name}.lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # A failed attempt's.
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def run_python(code_or_args, env=None, timeout=300):
    """Runs a fresh Python process; returns the CompletedProcess."""
    args = code_or_args if isinstance(code_or_args, list) else ["-c", code_or_args]
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def run_main(settings, kill_at=None, timeout=600):
    """`python -m keras_transfer.main` with `settings` as flags, in a fresh
    process; `kill_at` makes it SIGKILL itself there (`faults.ENV`)."""
    from keras_transfer import faults

    env = {key: value for key, value in os.environ.items() if key != faults.ENV}
    if kill_at:
        env[faults.ENV] = kill_at
    return subprocess.run([sys.executable, "-m", "keras_transfer.main",
                           *[f"--{key}={value}" for key, value in settings.items()]],
                          cwd=REPO, text=True, capture_output=True, env=env, timeout=timeout)


@pytest.fixture
def console(capsys):
    """The run's console lines, as the command line shows them: the package's
    logger on stdout (a run called from Python logs, it does not print)."""
    from keras_transfer import log

    log.show_on_console(verbose=1)
    yield capsys
