"""The run's output folder: created fresh, never silently overwritten, and
its JSON files written atomically."""

import csv
import datetime
import json
import os

from keras_transfer.config import ConfigError

CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.json"


class OutputDirError(ConfigError):
    """The output folder cannot be used; the message says why."""


def default_output_dir(config):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.model}-{config.phase}-{stamp}")


def check_output_dir(path, phase):
    """Raises unless `path` can take this run (before anything is written).

    A folder that holds a finished or started run is refused, except by
    `--phase=fine_tune`, which continues the feature-extraction result there.
    """
    if not os.path.exists(path):
        return "new"
    if not os.path.isdir(path):
        raise OutputDirError(f"output_dir exists and is not a folder. Received: output_dir={path!r}")
    if not os.listdir(path):
        return "new"
    has_phase_one = os.path.isfile(
        os.path.join(path, "checkpoints", "feature_extraction.weights.h5")
    ) and os.path.isfile(os.path.join(path, METRICS_FILE))
    if phase == "fine_tune" and has_phase_one:
        return "continue"
    raise OutputDirError(
        "output_dir already holds files of another run and would be overwritten; "
        f"choose a new --output_dir (or omit it for a fresh one). Received: output_dir={path!r}"
    )


def create_output_dir(config):
    """Creates and returns the run's folder; a default one is always new."""
    if config.output_dir:
        check_output_dir(config.output_dir, config.phase)
        os.makedirs(config.output_dir, exist_ok=True)
        return config.output_dir
    base = default_output_dir(config)
    for attempt in range(1000):
        path = base if attempt == 0 else f"{base}-{attempt}"
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            continue
    raise OutputDirError(f"could not create a fresh output folder next to {base!r}")


def write_json(path, data):
    """Writes JSON via a temporary file and a rename: never half-written."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.replace(temporary, path)


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# Settings that must match when fine_tune continues an earlier run's phase 1.
COMPATIBILITY_KEYS = ("model", "dataset", "classes", "image_size", "seed",
                      "validation_fraction", "test_fraction", "examples_per_class")


def check_compatible(previous, current, output_dir):
    """Refuses to mix states of runs with different models or data."""
    for key in COMPATIBILITY_KEYS:
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
