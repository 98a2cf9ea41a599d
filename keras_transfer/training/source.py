"""The source task behind `--weights=source`: pretrained from scratch once,
cached by its settings, and reused by every later run with those settings."""

import contextlib
import dataclasses
import os
import shutil
from typing import Any, Optional

from keras_transfer import disk_space, integrity, outputs
from keras_transfer.data import folders, tasks
from keras_transfer.log import logger
from keras_transfer.training import scratch


@dataclasses.dataclass(frozen=True)
class SourcePretraining:
    """What getting the source base took: the pretraining's `PhaseResult`
    (None when another run cached the base while this one waited for it),
    and the seconds spent waiting for that other run."""

    phase: Optional[Any]
    waited_seconds: float


def pretrain_source_if_needed(config, resolved, *, strategy, image_size, global_batch,
                              writes=True, scratch_dir=None):
    """Pretrains and caches the source-task base unless the cache has it.

    Returns a `SourcePretraining`, or None when the base was there (or the
    weights are not a source task's).
    """
    if resolved.kind != "source" or _usable(resolved.load, set_aside=writes):
        return None
    task = resolved.source_task
    source = tasks.load_for(config, "source",
                            tuple(task["classes"]) if task["classes"] else None,
                            task["dataset"], config.source_examples_per_class)
    for line in folders.summary_lines(source.report) if source.report else ():
        logger.info(f"source task: {line}")
    logger.info(f"pretraining the base on the source task {source.name} "
                f"({', '.join(source.class_names)}), {config.pretrain_epochs} epoch(s)")
    return pretrain_source_base(
        source, resolved.load, config=config, strategy=strategy, image_size=image_size,
        global_batch=global_batch, writes=writes, scratch_dir=scratch_dir)


def _usable(path, set_aside=True):
    """Whether the cached base at `path` is whole (its manifest verified); a
    damaged one is set aside (by the process that writes the cache: the
    chief of a cluster), to be pretrained again."""
    folder, name = os.path.split(path)
    problem = integrity.problem(folder)
    if problem is None:
        return True
    if set_aside and os.path.lexists(path):  # Damaged, or from before manifests.
        integrity.set_aside(folder, [name], problem)
    return False


def pretrain_source_base(source_data, path, *, config, strategy, image_size, global_batch,
                         writes=True, scratch_dir=None):
    """Pretrains on the source task and caches the base at `path`; returns a
    `SourcePretraining`.

    The work folder belongs to the cache entry, not to the process: a run
    killed while pretraining leaves its per-epoch backup there, and the next
    run with the same settings continues from it. A lock keeps two runs from
    training the same entry at once (the second waits, then finds the
    weights). On a multi-worker cluster only the chief locks and writes; the
    other workers train with it (`writes` False) into their `scratch_dir`.
    """
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    work = os.path.join(folder, ".work")
    lock = (outputs.locked(os.path.join(folder, ".lock"), what=f"the cache entry {folder}")
            if writes else contextlib.nullcontext(0.0))
    with lock as waited:
        if writes and _usable(path):  # Another run cached it while this one waited.
            return SourcePretraining(phase=None, waited_seconds=waited)
        if writes:  # What a killed or disk-full pretraining left behind.
            disk_space.remove_stale_temporaries(folder)
        classifier, result = scratch.train_from_scratch(
            "source_pretrain", source_data, config=config, strategy=strategy,
            image_size=image_size, global_batch=global_batch,
            epochs=config.pretrain_epochs, learning_rate=config.scratch_learning_rate,
            output_dir=work if writes else scratch_dir, backup_root=work, writes=writes,
        )
        if writes:
            scratch.save_base_weights(classifier, path)
            integrity.seal(folder, [os.path.basename(path)])  # Last: the entry is whole.
            shutil.rmtree(work, ignore_errors=True)
    return SourcePretraining(phase=result, waited_seconds=waited)
