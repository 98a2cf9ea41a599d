"""Room on disk: a write that cannot fit is refused before it starts, one
that fails for lack of room becomes one line, and what failed writes left
behind is removed, so a full disk does not stay full on every retry."""

import contextlib
import errno
import math
import os
import re
import shutil

from keras_transfer.checks import ConfigError


class DiskFullError(ConfigError):
    """A folder has no room for what a step writes; the message names the
    folder, what the step needed and what was free."""


# Room kept beyond a file's own bytes (HDF5 and SavedModel metadata).
HEADROOM_BYTES = 4 << 20


def _megabytes(count):
    return f"{count / 1e6:,.1f} MB"


def full(folder, what, needed):
    """The `DiskFullError` of writing `what` (`needed` bytes) into `folder`."""
    free = shutil.disk_usage(folder).free
    return DiskFullError(
        f"no space left in {folder} for {what}: it needs about {_megabytes(needed)}, "
        f"{_megabytes(free)} free. Free some space (or choose another --output_dir or "
        "--cache_dir) and run the same command again: what was written before is intact")


def is_out_of_space(error):
    """Whether `error` (an OSError, or TensorFlow's or h5py's wrapping of one)
    is a full disk or quota."""
    return (getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            or "No space left on device" in str(error) or "Disk quota exceeded" in str(error))


def require(folder, what, needed):
    """Raises `DiskFullError` before a write that cannot fit: a full disk
    found halfway through an HDF5 write ends in a crash, not an error."""
    if shutil.disk_usage(folder).free < needed + HEADROOM_BYTES:
        raise full(folder, what, needed + HEADROOM_BYTES)


def weights_bytes(model):
    """About what a weights file of `model` takes: its variables and its
    optimizer's (a backup holds both), at 4 bytes a value (variables are
    float32 under mixed precision too)."""
    optimizer = getattr(model, "optimizer", None)
    variables = [*model.weights, *(getattr(optimizer, "variables", None) or [])]
    return 4 * sum(math.prod(variable.shape) for variable in variables)


# A temporary file of ours: `.tmp-PID-NAME` or `NAME.tmp-PID`.
_TEMPORARY = re.compile(r"^\.tmp-(\d+)-|\.tmp-(\d+)$")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder):
    """Removes, under `folder`, the temporary files and folders of processes
    that are gone (a kill or a full disk during a save): they would keep a
    full disk full on every retry."""
    for directory, subdirs, names in os.walk(folder):
        for name in [*names, *subdirs]:
            match = _TEMPORARY.search(name)
            if match and not _alive(int(match.group(1) or match.group(2))):
                path = os.path.join(directory, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.remove(path)
