"""Several runs side by side: `python -m keras_transfer.compare RUN_DIR...`

Prints one row per run (backbone, weights, exported phase, test accuracy,
macro F1, ROC AUC, total time) and writes a grouped bar chart, so choosing
between, say, VGG16 and ResNet50 runs is one command. Reads only each run's
metrics.json; no TensorFlow.
"""

import os

from keras_transfer import outputs, schema
from keras_transfer.evaluation import plots

COLUMNS = (("run", "run"), ("backbone", "backbone"), ("weights", "weights"),
           ("phase", "exported phase"), ("accuracy", "test accuracy"),
           ("f1", "macro F1"), ("auc", "ROC AUC"), ("seconds", "total s"))


class CompareError(ValueError):
    """A folder cannot be compared; the message says why."""


def load_run(folder):
    """The `schema.RunRecord` of a finished run folder."""
    path = os.path.join(folder, schema.METRICS_FILE)
    if not os.path.isdir(folder):
        raise CompareError(f"run folder does not exist. Received: {folder!r}")
    if not os.path.isfile(path):
        raise CompareError(
            f"run folder has no {schema.METRICS_FILE}: pass the --output_dir of a "
            f"finished keras_transfer run. Received: {folder!r}")
    try:
        metrics = outputs.read_json(path)
    except ValueError as error:  # Cut short or edited by hand.
        raise CompareError(f"{path} is not valid JSON ({error})") from None
    missing = [key for key in ("config", "test") if key not in metrics]
    if missing:
        raise CompareError(f"{path} is not a finished run's: it has no {missing[0]!r}")
    return schema.RunRecord.from_dict(metrics)


def row(folder, run):
    """The compared numbers of one run (a `schema.RunRecord`)."""
    return {
        "run": os.path.basename(os.path.normpath(folder)),
        "backbone": run.config["model"],
        "weights": (run.weights or {}).get("kind"),
        "phase": run.exported_phase,
        "accuracy": run.test["accuracy"],
        "f1": run.test["f1"],
        "auc": run.test.get("auc"),
        "seconds": run.timings.get("total"),
    }


def _cell(value):
    if value is None:
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_table(rows):
    """A fixed-width text table, one line per run."""
    cells = [[header for _, header in COLUMNS]]
    cells += [[_cell(r[key]) if key != "seconds" or r[key] is None else f"{r[key]:.0f}"
               for key, _ in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip()
             for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _unique_names(folders, rows):
    """Runs that share a folder name are told apart by their whole path."""
    names = [r["run"] for r in rows]
    for r, folder in zip(rows, folders):
        if names.count(r["run"]) > 1:
            r["run"] = os.path.normpath(folder)


def compare(folders, output):
    """Writes the bar chart of `folders`' runs to `output`; returns the table's rows."""
    if not output.lower().endswith(".png"):
        raise CompareError(f"output must be a .png file. Received: output={output!r}")
    if not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise CompareError(f"output must be in an existing folder. Received: output={output!r}")
    rows = [row(folder, load_run(folder)) for folder in folders]
    _unique_names(folders, rows)
    plots.comparison_bars(
        [f"{r['run']}\n{r['backbone']}, {r['phase']}" for r in rows],
        {label: [r[key] for r in rows]
         for key, label in (("accuracy", "test accuracy"), ("f1", "macro F1"),
                            ("auc", "ROC AUC"))},
        output, "test scores of the compared runs")
    return rows

