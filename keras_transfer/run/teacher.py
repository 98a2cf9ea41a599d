"""`--phase=distill`'s teacher: a finished run, read back, and the student's
data settings made its own (the same dataset, classes and splits).

A student measured on another test split than its teacher could not be
compared with it: such a run is refused with the setting that differs."""

import dataclasses
import os
from typing import Optional

from keras_transfer import config as config_lib, data_checks, schema
from keras_transfer.checks import ConfigError
from keras_transfer.data import summary as data_summary
from keras_transfer.models import finished_run
from keras_transfer.serving import cost, export

# What decides the data and its splits; the student takes the teacher's.
DATA_SETTINGS = ("dataset", "classes", "validation_fraction", "test_fraction",
                 "split_file", "tfds_split", "seed")


@dataclasses.dataclass(frozen=True)
class Teacher:
    """The teacher run: its record and the checkpoint of its exported phase."""

    run_dir: str
    record: schema.RunRecord
    checkpoint: str


def read(config) -> Optional[Teacher]:
    """The teacher of a `--phase=distill` config (None for other phases)."""
    if config.phase != "distill":
        return None
    record = finished_run.read_run(config.teacher, flag="teacher")
    checkpoint = finished_run.best_checkpoint(config.teacher, record, flag="teacher")
    return Teacher(os.path.abspath(config.teacher), record, checkpoint)


def _same(name, ours, theirs):
    if name == "dataset" and data_checks.is_folder_spec(ours or ""):
        return os.path.realpath(ours) == os.path.realpath(theirs or "")
    return ours == theirs


def with_teacher_data(config, teacher):
    """`config` with the teacher's data settings where the student left
    them at their defaults (and the teacher's image size, unless given)."""
    if teacher is None:
        return config
    values = {}
    defaults = {field.name: field.default for field in dataclasses.fields(config_lib.RunConfig)}
    for name in DATA_SETTINGS:
        theirs = teacher.record.config.get(name, defaults[name])
        theirs = tuple(theirs) if isinstance(theirs, list) else theirs
        ours = getattr(config, name)
        if ours != defaults[name] and not _same(name, ours, theirs):
            raise ConfigError(
                f"phase=distill trains and tests the student on its teacher's data and "
                f"splits: {name} must be the teacher's ({theirs!r}) or left out. "
                f"Received: {name}={ours!r}, teacher={teacher.run_dir!r}")
        values[name] = theirs
    if config.image_size is None:
        values["image_size"] = teacher.record.config["image_size"]
    return dataclasses.replace(config, **values)


def check_same_test_split(teacher, data):
    """Refuses data whose classes or test split are not the teacher's (a
    folder that changed since the teacher ran)."""
    if teacher is None:
        return
    if tuple(teacher.record.class_names) != tuple(data.class_names):
        raise ConfigError(
            f"phase=distill needs the teacher's classes {list(teacher.record.class_names)}. "
            f"Received: classes {list(data.class_names)} from dataset={data.name!r}")
    theirs = (teacher.record.dataset or {}).get("test_fingerprint")
    if theirs and theirs != data_summary.split_fingerprint(data.test, data.name):
        raise ConfigError(
            f"the test split is not the one the teacher was tested on (the data changed "
            f"since the teacher ran?): a student tested on other images cannot be compared "
            f"with it. Received: dataset={data.name!r}, teacher={teacher.run_dir!r}")


def with_serving_costs(entry, student_export, teacher, image_size, channels):
    """The distillation entry with each export's size on disk, batch-1
    latency and batch-64 throughput, measured side by side; the teacher's
    only where its run exported."""
    try:
        teacher_export = export.latest_export(teacher.run_dir)
    except FileNotFoundError:
        teacher_export = None  # A teacher run with --noexport.
    folders = [student_export] + ([teacher_export] if teacher_export else [])
    speed = cost.serving_speed(folders, image_size, channels)
    measured = {role: {"export": folder, "size_bytes": cost.size_on_disk(folder),
                       **speed[folder]}
                for role, folder in zip(("student", "teacher"), folders)}
    return {**entry, **{role: {**entry[role], "serving": measured.get(role)}
                        for role in ("student", "teacher")}}
