"""A folder of class subfolders -> checked, labelled files and a data report.

Discovery (`image_folder`) finds the files, `image_check` decodes each once,
and this module decides what trains: broken files are dropped and listed, a
dataset that is mostly broken stops the run, and a class left with too few
usable images is named before any training.
"""

import collections
import dataclasses
import json
import os
import time
from typing import Optional

import numpy as np

from keras_transfer.config import ConfigError
from keras_transfer.data import image_check, image_folder

# Train, validation and test each need one image of every class.
MIN_IMAGES_PER_CLASS = 3
# Broken files named in the one-line error when there are too many.
NAMED_IN_ERROR = 3


class TooManyBrokenError(ConfigError):
    """More of the dataset is broken than `--max_broken_fraction` allows."""


@dataclasses.dataclass(frozen=True)
class FolderPolicy:
    """How strict the check is, and where its results are cached."""

    max_megapixels: float = 50.0
    max_broken_fraction: float = 0.05
    cache_dir: Optional[str] = None
    verbose: int = 0


def _extension_mismatch(check):
    """True for a file whose name says another format than its content."""
    extension = os.path.splitext(check.path)[1].lower().lstrip(".")
    named = {"jpg": "jpeg"}.get(extension, extension)
    return check.image_format is not None and named != check.image_format


def _report(found, checks, labels, stats, policy, flag_name):
    broken = [check for check in checks if not check.ok]
    per_class = {name: {"files": len(found.files[name]), "used": 0, "broken": 0}
                 for name in found.class_names}
    for check, label in zip(checks, labels):
        per_class[found.class_names[label]]["used" if check.ok else "broken"] += 1
    return {
        "dataset": found.root,
        "flag": flag_name,
        "files_found": len(checks),
        "images_used": len(checks) - len(broken),
        "broken_count": len(broken),
        "broken_fraction": len(broken) / max(len(checks), 1),
        "classes": per_class,
        "formats": dict(collections.Counter(c.image_format for c in checks if c.ok)),
        "misnamed": sum(_extension_mismatch(check) for check in checks if check.ok),
        "ignored": found.ignored,
        "unsupported": found.unsupported,
        "not_regular": found.not_regular,
        "broken": [{"path": check.path, "reason": check.reason} for check in broken],
        "check": {**stats, "max_megapixels": policy.max_megapixels,
                  "max_broken_fraction": policy.max_broken_fraction},
    }


def _refuse_if_mostly_broken(report, policy, flag_name):
    if report["broken_fraction"] <= policy.max_broken_fraction:
        return
    named = "; ".join(
        f"{os.path.relpath(item['path'], report['dataset'])}: {item['reason']}"
        for item in report["broken"][:NAMED_IN_ERROR])
    list_file = ""
    if policy.cache_dir:
        list_file = os.path.join(policy.cache_dir, "image_checks", "last_refused.json")
        os.makedirs(os.path.dirname(list_file), exist_ok=True)
        with open(list_file, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
        list_file = f"; all listed in {list_file}"
    raise TooManyBrokenError(
        f"{flag_name} folder {report['dataset']!r} has {report['broken_count']} broken "
        f"of {report['files_found']} image files ({report['broken_fraction']:.1%}), "
        f"above max_broken_fraction={policy.max_broken_fraction:g} (first: {named}"
        f"{list_file}). Fix or remove them, or raise --max_broken_fraction"
    )


def refuse_thin_classes(report, class_names, flag_name):
    """Names the folder of a (selected) class too small to split."""
    for name in class_names:
        counts = report["classes"][name]
        if counts["used"] < MIN_IMAGES_PER_CLASS:
            folder = os.path.join(report["dataset"], name)
            raise image_folder.FolderLayoutError(
                f"class folder {folder!r} of {flag_name} has {counts['used']} usable "
                f"image(s) ({counts['broken']} broken); train, validation and test "
                f"splits need at least {MIN_IMAGES_PER_CLASS} per class"
            )


def load(root, policy, flag_name="dataset", classes=None):
    """Returns (class_names, paths, labels, report) of the usable images.

    Raises a ConfigError subclass, with a one-line message naming the folder,
    when the folder cannot be trained on.
    """
    found = image_folder.scan(root, flag_name, classes)
    paths, labels = found.paths_and_labels()
    start = time.time()
    checks, stats = image_check.check_files(
        paths, max_megapixels=policy.max_megapixels, root=root,
        cache_dir=policy.cache_dir, verbose=policy.verbose)
    stats["seconds"] = round(time.time() - start, 2)
    report = _report(found, checks, labels, stats, policy, flag_name)
    _refuse_if_mostly_broken(report, policy, flag_name)
    keep = np.asarray([check.ok for check in checks], bool)
    return (found.class_names, list(np.asarray(paths, dtype=object)[keep]),
            list(np.asarray(labels, np.int64)[keep]), report)


def summary_lines(report):
    """What a user needs to hear about the folder, in a few console lines."""
    ignored = report["ignored"]
    skipped = ", ".join(f"{count} {what}" for what, count in (
        ("hidden", ignored.get("hidden", 0)),
        ("not an image", ignored.get("not_image", 0)),
        ("unsupported format (e.g. TIFF)", ignored.get("unsupported", 0)),
        ("not a regular file (a FIFO, socket or device; listed in data_report.json)",
         ignored.get("not_regular", 0)),
        ("a second path to a file already used (a link)", ignored.get("duplicate", 0)))
        if count)
    lines = [
        f"found {report['files_found']:,} image files in {len(report['classes'])} "
        f"classes under {report['dataset']}"
        + (f"; passed over {skipped}" if skipped else ""),
        f"checked {report['check']['checked']:,} files "
        f"({report['check']['cached']:,} unchanged since the last check): "
        f"{report['images_used']:,} usable, {report['broken_count']:,} broken and skipped"
        + (" (listed in data_report.json)" if report["broken_count"] else ""),
    ]
    if report["misnamed"]:
        lines.append(f"{report['misnamed']} file(s) have an extension that does not "
                     "match their content; read by content")
    return lines
