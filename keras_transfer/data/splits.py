"""Class selection and stratified, seed-fixed train/validation/test splits."""

import numpy as np

from keras_transfer.config import ConfigError


class SplitError(ConfigError):
    """The data cannot be split as asked; the message names the flag."""


def select_classes(class_names, examples, wanted, flag_name):
    """Keeps the classes named in `wanted` and relabels them 0..k-1.

    `wanted` holds class names (for digits, "5"); for convenience a number is
    also accepted as a class index. Returns (selected names, examples).
    """
    indices = []
    for name in wanted:
        if name in class_names:
            indices.append(class_names.index(name))
        elif name.isdigit() and int(name) < len(class_names):
            indices.append(int(name))
        else:
            raise SplitError(
                f"{flag_name} names a class the data lacks: {name!r} (classes: "
                f"{', '.join(class_names)}). Received: {flag_name}={','.join(wanted)}"
            )
    keep = np.isin(examples.labels, indices)
    selected = examples.take(np.flatnonzero(keep))
    remap = {old: new for new, old in enumerate(indices)}
    labels = np.asarray([remap[label] for label in selected.labels], np.int64)
    return (
        tuple(class_names[index] for index in indices),
        type(selected)(labels=labels, images=selected.images, files=selected.files),
    )


def _stratified_indices(labels, fraction, rng, keep):
    """Splits each class's indices into (rest, held out `fraction`).

    At least one example of each class is held out and at least `keep` stay,
    so that large fractions never leave a later split without a class.
    """
    held, rest = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        wanted = max(1, int(round(fraction * len(members))))
        count = min(wanted, len(members) - keep)
        held.extend(members[:count])
        rest.extend(members[count:])
    return np.sort(np.asarray(rest)), np.sort(np.asarray(held))


def _check_three_per_class(labels, class_names, flag_name):
    counts = np.bincount(labels, minlength=len(class_names))
    for name, count in zip(class_names, counts):
        if count < 3:
            raise SplitError(
                f"class {name!r} of {flag_name} has {count} example(s); train, "
                "validation and test splits need at least 3 per class"
            )


def split_indices(labels, validation_fraction, test_fraction, rng):
    """(train, validation, test) index arrays, stratified, every class in each."""
    rest, test = _stratified_indices(labels, test_fraction, rng, keep=2)
    share = validation_fraction / (1.0 - test_fraction)
    train, validation = _stratified_indices(labels[rest], share, rng, keep=1)
    return rest[train], rest[validation], test


def stratified_split(examples, class_names, validation_fraction, test_fraction,
                     seed, flag_name):
    """Returns (train, validation, test) with every class in every split.

    The same examples and seed always give the same split.
    """
    _check_three_per_class(examples.labels, class_names, flag_name)
    rng = np.random.default_rng(seed)
    indices = split_indices(examples.labels, validation_fraction, test_fraction, rng)
    return tuple(examples.take(part) for part in indices)


def split_per_class(examples, limit, seed):
    """(at most `limit` examples of each class, the others): the labelled
    training split and the rest of it (`--unlabeled_data=rest`). 0 keeps all."""
    if not limit:
        return examples, examples.take(np.zeros(0, np.int64))
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(examples.labels):
        members = np.flatnonzero(examples.labels == label)
        keep.extend(rng.permutation(members)[:limit])
    kept = np.zeros(len(examples), bool)
    kept[np.asarray(keep, np.int64)] = True
    return examples.take(np.flatnonzero(kept)), examples.take(np.flatnonzero(~kept))


def class_weights(labels, num_classes):
    """Balanced class weights (n / (k * count_c)) from training labels."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1.0))
    return {index: float(weight) for index, weight in enumerate(weights)}
