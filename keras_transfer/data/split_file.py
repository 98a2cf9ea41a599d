"""`--split_file`: a folder's train/validation/test split, pinned in a file.

A seeded stratified split is stable only while the folder does not change:
add ten images and every file can move, test images included, so a model
evaluated later sees its own training data. A split file records each file's
split by its path relative to the dataset folder. Files it names keep their
split; new files are split among themselves (stratified, seeded) and added,
so old ones never move. Files it names that are gone stay in it, in case they
come back.
"""

import dataclasses
import json
import os

import numpy as np

from keras_transfer.config import ConfigError
from keras_transfer.data import splits
from keras_transfer.log import logger

SPLITS = ("train", "validation", "test")
FORMAT = 1


class SplitFileError(ConfigError):
    """The split file cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class Contents:
    """A split file as read: the folder it was written for (absolute; None
    when not recorded) and {relative path: split}."""
    dataset: str | None
    splits: dict


def _key(path, root):
    return os.path.relpath(path, root).replace(os.sep, "/")


def read(path):
    """{relative path: split} from `path`, or {} when it does not exist yet."""
    return _load(path).splits


def _load(path):
    """The split file's Contents, checked; empty when it does not exist yet."""
    if not os.path.exists(path):
        return Contents(dataset=None, splits={})
    try:
        with open(path, encoding="utf-8") as handle:
            contents = json.load(handle)
        assignments = contents["splits"]
        unknown = sorted({value for value in assignments.values()} - set(SPLITS))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SplitFileError(
            f"split_file is not a split file written by keras_transfer ({error}). "
            f"Received: split_file={path!r}") from None
    if unknown:
        raise SplitFileError(
            f"split_file names splits other than {list(SPLITS)}: {unknown}. "
            f"Received: split_file={path!r}")
    return Contents(dataset=contents.get("dataset"), splits=assignments)


def _check_written_for(contents, keys, known, root, path):
    """Refuses a split file written for another folder: none of its files
    are here, and adding this folder's to it would mix two datasets' splits
    in one file. A folder moved or copied elsewhere keeps its relative paths
    and is accepted; a warning says so when files new to the split file would
    be added to it, as they may be another folder's."""
    written_for, assignments = contents.dataset, contents.splits
    if not assignments or written_for in (None, os.path.abspath(root)):
        return
    found = int(known.sum())
    new = len(keys) - found
    if not found:
        raise SplitFileError(
            f"split_file was written for the folder {written_for!r}, and none of its "
            f"{len(assignments)} files is in this one. Name a new split file for this "
            f"folder, or the split file of its own. Received: split_file={path!r}, "
            f"dataset={root!r}")
    if new:
        logger.warning("split_file %s was written for the folder %s; this run reads %s, "
                       "where %d of its %d files are (they keep their split) and %d files "
                       "are new to it (they are split and added)", path, written_for, root,
                       found, len(assignments), new)


def write(path, assignments, root, seed):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"format": FORMAT, "dataset": os.path.abspath(root), "seed": seed,
                   "splits": dict(sorted(assignments.items()))}, handle, indent=1)
        handle.write("\n")
    os.replace(temporary, path)


def _split_new(labels, pinned_classes, validation_fraction, test_fraction, rng):
    """Split names for new files: stratified per class.

    A class the file has never seen gets the full stratified treatment (every
    split at least one image); new images of a known class are shared out by
    the fractions, rounded, so a single new image goes to training.
    """
    names = np.empty(len(labels), dtype=object)
    fresh = ~np.isin(labels, list(pinned_classes))
    if fresh.any():
        train, validation, test = splits.split_indices(
            labels[fresh], validation_fraction, test_fraction, rng)
        indices = np.flatnonzero(fresh)
        for part, name in zip((train, validation, test), SPLITS):
            names[indices[part]] = name
    for label in np.unique(labels[~fresh]):
        members = rng.permutation(np.flatnonzero(labels == label))
        test = int(round(test_fraction * len(members)))
        validation = int(round(validation_fraction * len(members)))
        names[members[:test]] = "test"
        names[members[test:test + validation]] = "validation"
        names[members[test + validation:]] = "train"
    return names


def pinned_split(examples, root, path, *, validation_fraction, test_fraction, seed):
    """Returns ((train, validation, test), summary) with `path`'s splits kept.

    Writes `path` (atomically) when it is new or when new files were added.
    """
    contents = _load(path)
    assignments = contents.splits
    keys = [_key(file, root) for file in examples.files]
    known = np.asarray([key in assignments for key in keys], bool)
    _check_written_for(contents, keys, known, root, path)
    pinned_classes = set(examples.labels[known].tolist())
    new = np.flatnonzero(~known)
    rng = np.random.default_rng(seed)
    new_names = _split_new(examples.labels[new], pinned_classes,
                           validation_fraction, test_fraction, rng)
    for index, name in zip(new, new_names):
        assignments[keys[index]] = name
    if len(new):
        write(path, assignments, root, seed)
    names = np.asarray([assignments[key] for key in keys])
    parts = tuple(examples.take(np.flatnonzero(names == name)) for name in SPLITS)
    summary = {"split_file": path, "pinned": int(known.sum()), "new": int(len(new)),
               "missing": len(set(assignments) - set(keys)), "written": bool(len(new))}
    return parts, summary
