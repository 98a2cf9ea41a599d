"""`--phase=multitask`'s tasks and their one training stream.

The target is the run's own task; the source task is `--source_dataset`
(default: the target's dataset) with `--source_classes` (default: the
embedded source classes); `--tasks` adds more. Each step takes a batch of
every task, zipped into one element ((images per task), (labels per
task)) so that one Keras step trains them all (Model Garden's
`joint_train_step`). `fit` cannot take streams of different sizes (keras
#5037, #3430); here every task's stream is repeated as needed and cut to
the length of the longest, so the epoch is the largest task's:

- `joint`: every task's batch is `--batch_size` (times the replicas), and
  the smaller tasks repeat, reshuffled each pass, within the epoch;
- `proportional`: the tasks share the joint step's images by their sizes,
  so one epoch is about one pass over every task.
"""

import dataclasses

import tensorflow as tf

from keras_transfer import multitask_checks
from keras_transfer.checks import ConfigError
from keras_transfer.data import pipeline, tasks as tasks_lib
from keras_transfer.data.sources import LabelledData

TARGET = "target"
SOURCE = "source"


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of a multi-task run: its name in the logs (`target`,
    `source`, `task3`...), its data and its fixed loss weight."""

    name: str
    data: LabelledData
    weight: float


def load_tasks(config, target):
    """The target (`target`, loaded already), the source task and every
    `--tasks` entry, as `Task`s; refuses a task that shares classes with the
    target on the same dataset (its images would teach the target's classes
    under other labels, and could be the target's test images)."""
    entries = [multitask_checks.TaskSpec(config.resolved_source_dataset, config.source_classes),
               *(multitask_checks.parse_task(entry) for entry in config.tasks)]
    loaded = [target]
    for number, entry in enumerate(entries):
        flag = "source_classes" if number == 0 else "tasks"
        # --source_examples_per_class caps every task but the target.
        data = tasks_lib.load_for(config, "source", entry.classes, entry.dataset,
                                  config.source_examples_per_class)
        if data.name == target.name and set(data.class_names) & set(target.class_names):
            raise ConfigError(
                f"phase=multitask: a task on the target's dataset {target.name} shares its "
                f"classes {sorted(set(data.class_names) & set(target.class_names))}; give it "
                f"other classes (--{flag}) or another dataset")
        loaded.append(data)
    weights = config.task_weights or (1.0,) * len(loaded)
    names = [TARGET, SOURCE] + [f"task{number}" for number in range(3, len(loaded) + 1)]
    return tuple(Task(name, data, float(weight))
                 for name, data, weight in zip(names, loaded, weights))


def batch_sizes(sizes, sampling, global_batch, replicas=1):
    """Each task's global batch: `global_batch` each (`joint`), or the
    tasks' `len(sizes) * global_batch` images a step shared by their
    training-set `sizes` (`proportional`), at least one image a replica."""
    if sampling == "joint":
        return tuple(global_batch for _ in sizes)
    total = len(sizes) * global_batch
    return tuple(max(replicas, round(total * size / sum(sizes))) for size in sizes)


def training_stream(task_list, config, image_size, global_batch, replicas=1):
    """(dataset of ((images...), (labels...)) a step, steps an epoch, the
    tasks' batch sizes)."""
    sizes = batch_sizes([len(task.data.train) for task in task_list], config.task_sampling,
                        global_batch, replicas)
    streams = [pipeline.make_dataset(
        task.data.train, num_classes=task.data.num_classes, batch_size=size,
        image_size=image_size, channels=task.data.channels, training=True,
        seed=config.seed + number, augment=config.augment,
        min_steps=config.min_steps_per_epoch)
        for number, (task, size) in enumerate(zip(task_list, sizes))]
    steps = max(int(stream.cardinality()) for stream in streams)
    joined = tf.data.Dataset.zip(tuple(stream.repeat().take(steps) for stream in streams))
    joined = joined.map(lambda *pairs: (tuple(pair[0] for pair in pairs),
                                        tuple(pair[1] for pair in pairs)),
                        num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.with_data_sharding(joined.prefetch(tf.data.AUTOTUNE)), steps, sizes


def task_sizes_lines(task_list, sizes, steps):
    """Console lines: each task's classes, images and batch."""
    return [f"task {task.name}: {task.data.name} ({', '.join(task.data.class_names)}), "
            f"{len(task.data.train):,} training images, {size} a step, loss weight "
            f"{task.weight:g}" for task, size in zip(task_list, sizes)] + [
        f"an epoch is {steps} steps (the longest task's)"]
