"""The run's output folder: created fresh, never silently overwritten, and
its JSON files written atomically."""

import contextlib
import csv
import datetime
import fcntl
import json
import os
import shutil
import socket
import time

from keras_transfer import disk_space
from keras_transfer.config import ConfigError
from keras_transfer.log import logger
from keras_transfer.schema import CONFIG_FILE, METRICS_FILE


class OutputDirError(ConfigError):
    """The output folder cannot be used; the message says why."""


@contextlib.contextmanager
def locked(path, what=None):
    """An exclusive lock on `path`; the OS releases it if the process dies.
    Yields the seconds it waited. When another process holds it and `what`
    names what the lock guards, says who holds it and since when before
    waiting: a silent wait of minutes reads as a hang."""
    with open(path, "a+", encoding="utf-8") as handle:
        started = time.time()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if what:
                pid, host, since = _holder(handle)
                logger.info(f"waiting for process {pid} on {host}, which holds {what} since "
                            f"{since}; this run goes on when it is done")
            fcntl.flock(handle, fcntl.LOCK_EX)
        waited = round(time.time() - started, 2)
        _claim(handle)
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(handle):
    """(PID, host, since) that the lock file's holder wrote (`_claim`)."""
    handle.seek(0)
    return tuple((handle.read().split() + ["?", "?", "?"])[:3])


def _claim(handle):
    """Writes this process's "PID HOST SINCE" into a lock file it holds."""
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()} {socket.gethostname()} "
                 f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
    handle.flush()


# Held (flock) by the process a run folder belongs to, for the run's whole
# life; it holds "PID HOST SINCE" for the message of a second process.
LOCK_FILE = ".keras_transfer.lock"


class FolderLock:
    """A run folder held exclusively by this process.

    An OS lock (`flock`), so a killed run's folder is free again at once, with
    no stale lock to clear; a second process (a retry, a double submit, a
    scheduler restarting a job that is still alive) is refused with one line
    naming the holder instead of training over it.
    """

    def __init__(self, folder):
        self.path = os.path.join(folder, LOCK_FILE)
        self._handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, host, since = _holder(self._handle)
            self._handle.close()
            raise OutputDirError(
                f"output_dir is in use by the run of process {pid} on {host} (since "
                f"{since}); wait for it to end or stop it, or choose another "
                f"--output_dir. Received: output_dir={folder!r}") from None
        _claim(self._handle)

    def release(self):
        """Frees the folder (the process's end does the same)."""
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def default_output_dir(config):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.model}-{config.phase}-{stamp}")


def check_output_dir(path, phase):
    """Raises unless `path` can take this run (before anything is written).

    Returns "new" (empty or missing), "resume" (a run started there and was
    killed before it finished: the same command continues it) or "continue"
    (`--phase=fine_tune` on the feature-extraction result of a finished run).
    A finished run is never overwritten.
    """
    if not os.path.exists(path):
        return "new"
    if not os.path.isdir(path):
        raise OutputDirError(f"output_dir exists and is not a folder. Received: output_dir={path!r}")
    if not [name for name in os.listdir(path) if name != LOCK_FILE]:
        return "new"
    tidy_finished(path)
    has_phase_one = os.path.isfile(
        os.path.join(path, "checkpoints", "feature_extraction.weights.h5")
    ) and os.path.isfile(os.path.join(path, METRICS_FILE))
    if phase == "fine_tune" and has_phase_one:
        return "continue"
    if os.path.isfile(os.path.join(path, CONFIG_FILE)) and not os.path.isfile(
            os.path.join(path, METRICS_FILE)):
        return "resume"
    raise OutputDirError(
        "output_dir already holds files of another run and would be overwritten; "
        f"choose a new --output_dir (or omit it for a fresh one). Received: output_dir={path!r}"
    )


def create_output_dir(config):
    """Creates the run's folder and takes its `FolderLock`; returns (path,
    state, lock) with state as `check_output_dir` says, decided under the
    lock. A default folder is always new."""
    if config.output_dir:
        check_output_dir(config.output_dir, config.phase)  # Refused before creating it.
        try:
            os.makedirs(config.output_dir, exist_ok=True)
        except OSError as error:
            raise OutputDirError(
                f"output_dir cannot be created ({error.strerror or error}). "
                f"Received: output_dir={config.output_dir!r}") from None
        lock = FolderLock(config.output_dir)
        try:
            # Again under the lock: a run that held the folder may have
            # finished meanwhile, and a finished run is not resumed.
            return config.output_dir, check_output_dir(config.output_dir, config.phase), lock
        except OutputDirError:
            lock.release()
            raise
    base = default_output_dir(config)
    for attempt in range(1000):
        path = base if attempt == 0 else f"{base}-{attempt}"
        try:
            os.makedirs(path)
            return path, "new", FolderLock(path)
        except FileExistsError:
            continue
    raise OutputDirError(f"could not create a fresh output folder next to {base!r}")


def write_json(path, data):
    """Writes JSON via a temporary file and a rename: never half-written."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if disk_space.is_out_of_space(error):
            raise disk_space.full(os.path.dirname(path) or ".", os.path.basename(path),
                            len(json.dumps(data, indent=2))) from None
        raise
    os.replace(temporary, path)


def save_weights_atomically(model, path, before_rename=None):
    """Writes `model`'s weights to `path` (a `.weights.h5` file) under a
    temporary name in the same folder, then renames it into place: a reader,
    or the next run after a kill, never finds a half-written file.
    `before_rename` runs between the two (a fault-injection point)."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".tmp-{os.getpid()}-{name}")
    needed = disk_space.weights_bytes(model)
    disk_space.require(folder, name, needed)
    try:
        model.save_weights(temporary)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if disk_space.is_out_of_space(error):
            raise disk_space.full(folder, name, needed + disk_space.HEADROOM_BYTES) from None
        raise
    if before_rename is not None:
        before_rename()
    os.replace(temporary, path)


def copy_atomically(source, path):
    """Copies the file `source` to `path` via a temporary name and a rename."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".tmp-{os.getpid()}-{name}")
    disk_space.require(folder, name, os.path.getsize(source))
    try:
        shutil.copyfile(source, temporary)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    os.replace(temporary, path)


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# Settings that must match when a run continues an earlier one's state
# (fine_tune on its phase 1, or a resumed run on its backups).
COMPATIBILITY_KEYS = ("model", "base_layer", "dataset", "classes", "image_size", "seed",
                      "validation_fraction", "test_fraction", "examples_per_class")
# What a resumed run may change: where files go and how it runs or reports,
# never what it learns. Every other setting, including ones added later, must
# match (a changed --augment or --batch_size resumed into the same run would
# crash on the backup or record settings the earlier epochs never used).
RESUMABLE_CHANGES = frozenset({
    "output_dir", "cache_dir", "tfds_data_dir", "verbose", "export", "export_tflite",
    "strategy", "cpu_replicas", "jit_compile", "deterministic", "keep_best_phase",
    "max_broken_fraction", "max_megapixels"})


def resume_keys(previous, current, defaults=None):
    """The settings a resumed run must share with the interrupted one. A
    setting the interrupted run's version did not have yet (absent from
    `previous`) is left out when this run has it at its default (in
    `defaults`): a newer version resumes an older one's run."""
    defaults = defaults or {}
    added = {key for key in set(current) - set(previous)
             if key in defaults and current[key] == defaults[key]}
    return sorted((set(previous) | set(current)) - RESUMABLE_CHANGES - added)


def check_compatible(previous, current, output_dir, keys=COMPATIBILITY_KEYS):
    """Refuses to mix states of runs with different models or data."""
    for key in keys:
        if previous.get(key) != current.get(key):
            raise OutputDirError(
                f"output_dir {output_dir!r} holds a run with {key}="
                f"{previous.get(key)!r}; this run has {key}={current.get(key)!r}. "
                "Use a new --output_dir"
            )


def write_history_csv(path, phases):
    """All phases' per-epoch metrics in one table, epochs on one axis."""
    keys = sorted({key for phase in phases for key in phase.history})
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phase", "epoch", *keys])
        for phase in phases:
            for offset in range(phase.epochs_run):
                row = [phase.history.get(key, [None] * phase.epochs_run)[offset] for key in keys]
                writer.writerow([phase.name, phase.first_epoch + offset + 1, *row])
    os.replace(temporary, path)


def tidy_finished(output_dir):
    """A finished run's leftovers (its backups, when a kill came during the
    final clean-up) are removed by the next command that looks at it."""
    if os.path.isfile(os.path.join(output_dir, METRICS_FILE)):
        remove_backups(output_dir)


def remove_backups(output_dir):
    """Removes the per-epoch backups under a finished run's folder (its own,
    the baseline's, each repeat's)."""
    for root, folders, _ in os.walk(output_dir):
        if "backup" in folders:
            shutil.rmtree(os.path.join(root, "backup"), ignore_errors=True)
            folders.remove("backup")
