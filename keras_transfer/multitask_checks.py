"""The checks of `--phase=multitask` that need no data (`config.RunConfig`
runs them with its others), and the task specs `--tasks` names."""

import dataclasses
from typing import Optional, Tuple

from keras_transfer import data_checks
from keras_transfer.checks import require, validate_choice

MULTITASK = "multitask"
# joint: a batch of every task each step, the same size; the smaller tasks
# repeat within the epoch of the largest (Model Garden's uniform sampler).
# proportional: each task's batch sized by its share of the images, so an
# epoch is one pass over every task (Model Garden's proportional sampler).
TASK_SAMPLING = ("joint", "proportional")
# fixed: --task_weights; uncertainty: one learned log-variance per task
# (Kendall, Gal and Cipolla, 2018).
TASK_WEIGHTING = ("fixed", "uncertainty")
EXPORT_HEADS = ("target", "all")
# What the fine-tuning after the joint phase trains: the target alone, or
# every task still together (at the fine-tuning rate and schedule), so the
# other tasks keep regularising the shared base and every head stays on it.
FINE_TUNE_TASKS = ("target", "all")
# Between a `--tasks` entry's dataset and its classes: dataset specs (folders
# included) may hold ':' and ','.
CLASSES_MARK = "@"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task of a multi-task run besides the target: a dataset and its
    classes (None: the dataset's default for a source)."""

    dataset: str
    classes: Optional[Tuple[str, ...]]


def parse_task(entry):
    """A `--tasks` entry, `DATASET` or `DATASET@class,class,...`."""
    dataset, mark, classes = entry.partition(CLASSES_MARK)
    names = tuple(name for name in classes.split(",") if name) if mark else None
    require(dataset and (not mark or len(names) >= 2),
            f"tasks entries are DATASET or DATASET{CLASSES_MARK}CLASS,CLASS,... (two classes "
            f"or more). Received: tasks entry {entry!r}")
    return TaskSpec(dataset, names)


def task_count(config):
    """The target, the source task and every `--tasks` entry."""
    return 2 + len(config.tasks)


def validate(config):
    validate_choice("task_sampling", config.task_sampling, TASK_SAMPLING)
    validate_choice("task_weighting", config.task_weighting, TASK_WEIGHTING)
    validate_choice("export_heads", config.export_heads, EXPORT_HEADS)
    validate_choice("fine_tune_tasks", config.fine_tune_tasks, FINE_TUNE_TASKS)
    for entry in config.tasks:
        data_checks.validate_dataset_spec("tasks", parse_task(entry).dataset)
    for weight in config.task_weights:
        require(weight >= 0, f"task_weights must be >= 0. Received: task_weights="
                f"{','.join(map(str, config.task_weights))}")
    if config.phase != MULTITASK:
        changed = [name for name, default in (
            ("tasks", ()), ("task_weights", ()), ("task_weighting", "fixed"),
            ("task_sampling", "joint"), ("export_heads", "target"),
            ("fine_tune_tasks", "target"))
            if getattr(config, name) != default]
        require(not changed, f"{', '.join(changed)} apply to phase=multitask. "
                f"Received: phase={config.phase!r}")
        return
    require(not config.task_weights or len(config.task_weights) == task_count(config),
            "task_weights takes one weight per task: the target, the source task, then each "
            f"of --tasks ({task_count(config)}). Received: task_weights="
            f"{','.join(map(str, config.task_weights))}")
    require(not config.task_weights or config.task_weighting == "fixed",
            "task_weights are fixed weights; task_weighting=uncertainty learns them. "
            f"Received: task_weights={','.join(map(str, config.task_weights))}")
    # Target-only fine-tuning moves the base under the other heads.
    require(config.export_heads == "target" or not config.fine_tune_epochs
            or config.fine_tune_tasks == "all",
            "export_heads=all exports the jointly trained heads; target-only fine-tuning "
            "moves the base under the others: pass --fine_tune_tasks=all (every task "
            "fine-tuned together) or --fine_tune_epochs=0. Received: "
            f"fine_tune_epochs={config.fine_tune_epochs}, "
            f"fine_tune_tasks={config.fine_tune_tasks!r}")
    require(config.weights not in ("source", "autoencoder"),
            "phase=multitask trains the source task together with the target, from --weights "
            "(none, imagenet, auto or a file); a base pretrained on the source first is "
            f"sequential transfer (--phase=both). Received: weights={config.weights!r}")
    require(config.class_weight == "none",
            "class_weight weighs one task's classes; phase=multitask trains several. "
            f"Received: class_weight={config.class_weight!r}")
    require(config.unlabeled_data is None and config.semi_supervised == "none",
            "phase=multitask trains labelled tasks only. Received: "
            f"unlabeled_data={config.unlabeled_data!r}, "
            f"semi_supervised={config.semi_supervised!r}")
