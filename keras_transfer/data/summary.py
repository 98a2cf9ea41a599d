"""What a run tells the user about its data: console lines, the
`data_report.json` of a folder, and the `dataset` entry of metrics.json."""

import hashlib
import os

from keras_transfer import outputs
from keras_transfer.data import folders

DATA_REPORT_FILE = "data_report.json"
# A largest-to-smallest class ratio above this is worth a warning.
IMBALANCE_WARNING_RATIO = 3.0


def _count_table(counts, class_names):
    width = max(len(name) for name in class_names) + 2
    lines = ["class".ljust(width) + "".join(s.rjust(12) for s in counts)]
    for name in class_names:
        lines.append(name.ljust(width) + "".join(
            f"{counts[split][name]:12,}" for split in counts))
    return lines


def imbalance_ratio(data):
    train = list(data.class_counts()["train"].values())
    return max(train) / max(min(train), 1)


def console_lines(data, class_weight):
    """Found/used/skipped, the split sizes per class, and imbalance advice."""
    lines = folders.summary_lines(data.report) if data.report else []
    if data.split_summary:
        summary = data.split_summary
        lines.append(
            f"split pinned by {summary['split_file']}: {summary['pinned']:,} files keep "
            f"their split, {summary['new']:,} new ones added"
            + (f", {summary['missing']:,} listed files are gone" if summary["missing"] else ""))
    lines.extend(_count_table(data.class_counts(), data.class_names))
    ratio = imbalance_ratio(data)
    if ratio > IMBALANCE_WARNING_RATIO and class_weight != "balanced":
        lines.append(f"warning: the largest training class has {ratio:.1f}x the images of "
                     "the smallest; consider --class_weight=balanced")
    return lines


def split_fingerprint(examples, root):
    """A hash of a split's members and labels: the same images (by content
    for embedded data, by path under `root` for a folder) in the same classes.
    What lets `--phase=distill` tell the teacher's test split from another."""
    digest = hashlib.sha256(examples.labels.astype("int64").tobytes())
    if examples.images is not None:
        digest.update(examples.images.tobytes())
    else:
        for path in examples.files:
            digest.update(os.path.relpath(str(path), root).encode("utf-8", "surrogateescape"))
            digest.update(b"\0")
    return digest.hexdigest()[:16]


def metrics_entry(data):
    """The `dataset` entry of metrics.json: sizes, per-class counts, file counts."""
    entry = {"name": data.name, "class_names": list(data.class_names),
             "channels": data.channels, "split_sizes": data.split_sizes(),
             "class_counts": data.class_counts(),
             "imbalance_ratio": round(imbalance_ratio(data), 3),
             "test_fingerprint": split_fingerprint(data.test, data.name)}
    if data.report:
        entry["files"] = {key: data.report[key] for key in (
            "files_found", "images_used", "broken_count", "broken_fraction",
            "misnamed", "ignored")}
        entry["files"]["report"] = DATA_REPORT_FILE
    if data.split_summary:
        entry["split_file"] = data.split_summary
    return entry


def write_report(output_dir, data):
    """Writes `data_report.json` for a folder dataset; returns its path or None."""
    if not data.report:
        return None
    path = os.path.join(output_dir, DATA_REPORT_FILE)
    outputs.write_json(path, {**data.report, "class_counts": data.class_counts(),
                              "split_file": data.split_summary})
    return path
