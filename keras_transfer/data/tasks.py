"""A task from a dataset spec: its classes, fixed stratified splits and the
few-shot cap; and the same from a `RunConfig` (`load_for`).

`sources.py` reads a dataset's examples; this module decides which of them
a run trains, validates and tests on.
"""

import dataclasses

from keras_transfer import config as config_lib, distill_checks
from keras_transfer.data import class_names as class_names_lib
from keras_transfer.data import folders, sources, split_file, splits, unlabeled
from keras_transfer.data.sources import LabelledData


def _default_classes(spec, role):
    table = (sources.EMBEDDED_SOURCE_CLASSES if role == "source"
             else sources.EMBEDDED_TARGET_CLASSES)
    return table.get(spec)


def _split(examples, class_names, spec, *, split_file_path, validation_fraction,
           test_fraction, seed, flag):
    if split_file_path and examples.files is not None:
        return split_file.pinned_split(
            examples, spec, split_file_path, validation_fraction=validation_fraction,
            test_fraction=test_fraction, seed=seed)
    parts = splits.stratified_split(
        examples, class_names, validation_fraction, test_fraction, seed, flag)
    return parts, None


def load_task(spec, classes, *, role, seed, validation_fraction, test_fraction,
              examples_per_class=0, tfds_data_dir=None, tfds_split=None,
              folder_policy=None, split_file_path=None):
    """Loads a dataset spec as a task with fixed, stratified splits.

    Args:
      spec: `digits`, `fashion_mnist`, `tfds:NAME` or a folder.
      classes: class names to keep, or None for the default (embedded datasets:
        classes 5-9 as the target, 0-4 as the source; otherwise all).
      role: "target" or "source"; chooses the default classes and flag names.
      examples_per_class: cap on training examples per class (0: no cap).
      tfds_split: TFDS splits to pool before re-splitting (default: all).
      folder_policy: a `folders.FolderPolicy` for folders.
      split_file_path: folders only: pin the split in this file.

    Returns:
      A `LabelledData`.
    """
    flag = "dataset" if role == "target" else "source_dataset"
    class_flag = "classes" if role == "target" else "source_classes"
    class_names, examples, report = sources.load_source(
        spec, tfds_data_dir, flag, tfds_split=tfds_split, folder_policy=folder_policy,
        classes=classes)
    if classes is None:
        default = _default_classes(spec, role)
        classes = tuple(class_names[i] for i in default) if default else class_names
    class_names, examples = splits.select_classes(
        list(class_names), examples, list(classes), class_flag
    )
    class_names_lib.check_one_line(class_names, flag)
    if report:
        folders.refuse_thin_classes(report, class_names, flag)
    (train, validation, test), split_summary = _split(
        examples, class_names, spec, split_file_path=split_file_path,
        validation_fraction=validation_fraction, test_fraction=test_fraction,
        seed=seed, flag=flag)
    train, rest = splits.split_per_class(train, examples_per_class, seed)
    if examples.images is not None:
        channels = examples.images.shape[-1]
        native_size = max(examples.images.shape[1:3])
    else:
        channels, native_size = 3, None
    return LabelledData(
        name=spec,
        class_names=tuple(class_names),
        train=train,
        validation=validation,
        test=test,
        channels=int(channels),
        native_size=None if native_size is None else int(native_size),
        report=report,
        split_summary=split_summary,
        rest=rest,
    )


def folder_policy(config):
    """How `config` checks a folder's images (`folders.FolderPolicy`)."""
    return folders.FolderPolicy(
        max_megapixels=config.max_megapixels,
        max_broken_fraction=config.max_broken_fraction,
        cache_dir=config_lib.cache_root(config), verbose=config.verbose)


def load_for(config, role, classes, spec, examples_per_class):
    """The task `config` describes for `role` ("target" or "source"): the
    target's TFDS split and split file apply only to the target."""
    policy = folder_policy(config)
    target = role == "target"
    return load_task(
        spec, classes, role=role, seed=config.seed,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction, examples_per_class=examples_per_class,
        tfds_data_dir=config.tfds_data_dir, folder_policy=policy,
        tfds_split=config.tfds_split if target else None,
        split_file_path=config.split_file if target else None,
    )


def with_unlabeled(config, data):
    """`data` with `--unlabeled_data=FOLDER`'s images as its `unlabeled`
    (`rest` is already there, as `data.rest`)."""
    if config.unlabeled_data in (None, distill_checks.REST):
        return data
    return dataclasses.replace(data, unlabeled=unlabeled.load(
        config.unlabeled_data, data, folder_policy(config)).examples)
