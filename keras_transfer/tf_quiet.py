"""TensorFlow's start-up without its benign start-up lines.

On a machine without a GPU, importing TensorFlow writes lines no user can act
on straight to file descriptor 2: absl's "before InitializeLog" notice,
oneDNN being on, no CUDA drivers, the CPU instructions the binary could use,
and, when devices are first listed, a failed `cuInit`. They come from C++
before absl's logging is set up, so `TF_CPP_MIN_LOG_LEVEL` does not hide the
first ones, and level 3 would hide real errors as well.

`import_tensorflow()` imports TensorFlow (and lists its devices) with file
descriptor 2 sent to a temporary file, then writes back every line that is
not one of those known ones: anything else, a real error included, still
reaches stderr. A user who sets `TF_CPP_MIN_LOG_LEVEL` (`0` shows everything)
gets TensorFlow's own output unfiltered. What a process writes just before a
hard crash inside the import (an abort, an illegal instruction) is lost with
the temporary file; `TF_CPP_MIN_LOG_LEVEL=0` shows it.

No TensorFlow import at module level: the command lines import this module
before they know they will need TensorFlow.
"""

import contextlib
import os
import sys
import tempfile

from keras_transfer.log import logger

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# Hides TensorFlow's later INFO lines (SavedModel internals) but not its
# warnings and errors.
DEFAULT_LEVEL = "2"

# Each line is known by stable text in it: all of a tuple's parts must occur.
STARTUP_LINES = (
    ("All log messages before absl::InitializeLog",),
    ("port.cc", "oneDNN custom operations"),
    ("Could not find cuda drivers",),
    ("cpu_feature_guard",),
    ("To enable the following instructions",),
)
# Benign only where TensorFlow then finds no GPU: with one, it is news.
NO_GPU_LINES = (("failed call to cuInit",),)


def _is_known(line, patterns):
    return any(all(part in line for part in pattern) for pattern in patterns)


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


@contextlib.contextmanager
def filtered_stderr(patterns):
    """Within the block, file descriptor 2 (C and C++ libraries' writes
    included) goes to a temporary file; on leaving, whatever the block
    raised, the captured lines that match none of `patterns` are written to
    stderr. Yields the list of patterns, which the block may extend."""
    patterns = list(patterns)
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # No file descriptor 2 (a daemon): nothing to filter.
        yield patterns
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield patterns
        finally:
            sys.stderr.flush()  # Python's own writes of the block, into the file.
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().splitlines(keepends=True)
            kept = [line for line in lines
                    if not _is_known(line.decode("utf-8", "replace"), patterns)]
            _write_all(2, b"".join(kept))


def import_tensorflow():
    """Imports TensorFlow; returns the module.

    The first import, unless the user set `TF_CPP_MIN_LOG_LEVEL`, sets it to
    `DEFAULT_LEVEL` and drops TensorFlow's benign start-up lines; without a
    GPU, the package's logger says so in one INFO line instead.
    """
    if "tensorflow" in sys.modules or LEVEL_VARIABLE in os.environ:
        import tensorflow as tf

        return tf
    # Set only now, after the check: the package's default is not a choice
    # the user made, and TensorFlow reads it once, when it is imported.
    os.environ[LEVEL_VARIABLE] = DEFAULT_LEVEL
    with filtered_stderr(STARTUP_LINES) as patterns:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")  # Where cuInit is tried.
        if not gpus:
            patterns.extend(NO_GPU_LINES)
    if not gpus:
        logger.info("no GPU visible to TensorFlow: running on the CPU")
    return tf
