"""The bases this tool trains before transfer, cached by their settings and
reused by every later run with those settings: `--weights=source` (a
labelled source task, from scratch) and `--weights=autoencoder` (the
encoder of an autoencoder on unlabelled images, `autoencoder.py`)."""

import contextlib
import dataclasses
import functools
import os
import shutil
from typing import Any, Optional

from keras_transfer import autoencoder_checks, disk_space, distill_checks, integrity, outputs
from keras_transfer.data import folders, reconstruction, tasks
from keras_transfer.log import logger
from keras_transfer.models import backbones, classifier as model_lib
from keras_transfer.training import autoencoder, scratch


@dataclasses.dataclass(frozen=True)
class SourcePretraining:
    """What getting the base took: the pretraining's `PhaseResult` (None when
    another run cached the base while this one waited for it), and the
    seconds spent waiting for that other run."""

    phase: Optional[Any]
    waited_seconds: float


def pretrain_base_if_needed(config, resolved, *, strategy, image_size, global_batch,
                            data=None, writes=True, scratch_dir=None):
    """Pretrains and caches the base `resolved` names unless the cache has it.

    `data`: the target task (`LabelledData`), whose training images an
    autoencoder reconstructs. Returns a `SourcePretraining`, or None when the
    base was there (or the weights are not trained here).
    """
    if resolved.kind not in backbones.TRAINED_HERE or _usable(resolved.load, set_aside=writes):
        return None
    task, source = resolved.source_task, None
    if task is not None:
        source = tasks.load_for(config, "source",
                                tuple(task["classes"]) if task["classes"] else None,
                                task["dataset"], config.source_examples_per_class)
        for line in folders.summary_lines(source.report) if source.report else ():
            logger.info(f"source task: {line}")
    if resolved.kind == autoencoder_checks.AUTOENCODER:
        pool = reconstruction.pool_of(
            data, source, rest=config.unlabeled_data == distill_checks.REST,
            whole_source=not config.source_examples_per_class)
        train = functools.partial(_train_autoencoder, pool, base_layer=(
            backbones.resolve_base_layer(config.backbone, config.base_layer, resolved.kind,
                                         config.phase)))
    else:
        logger.info(f"pretraining the base on the source task {source.name} "
                    f"({', '.join(source.class_names)}), {config.pretrain_epochs} epoch(s)")
        train = functools.partial(_train_source, source)
    return cache_base(resolved.load, train, config=config, strategy=strategy,
                      image_size=image_size, global_batch=global_batch, writes=writes,
                      scratch_dir=scratch_dir)


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


def _train_source(source_data, folder, **settings):
    """The source task from scratch; returns (base, result, extra files)."""
    classifier, result = scratch.train_from_scratch(
        "source_pretrain", source_data, epochs=settings["config"].pretrain_epochs,
        learning_rate=settings["config"].scratch_learning_rate, **settings)
    del folder  # Nothing but the base to keep.
    return model_lib.base_of(classifier), result, []


def _train_autoencoder(pool, folder, *, base_layer, **settings):
    """The autoencoder on `pool`; returns (base, result, extra files): the
    reconstructions of held-out images are kept beside the base."""
    base, model, result = autoencoder.train_autoencoder(pool, base_layer=base_layer,
                                                        **settings)
    if settings["writes"]:
        autoencoder.draw_reconstructions(
            model, pool, settings["config"], settings["image_size"],
            os.path.join(folder, autoencoder.RECONSTRUCTIONS_FILE))
    return base, result, [autoencoder.RECONSTRUCTIONS_FILE]


def cache_base(path, train, *, config, strategy, image_size, global_batch, writes=True,
               scratch_dir=None):
    """Trains a base with `train` and caches it at `path`; returns a
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
        base, result, extra = train(
            folder, config=config, strategy=strategy, image_size=image_size,
            global_batch=global_batch, output_dir=work if writes else scratch_dir,
            backup_root=work, writes=writes)
        if writes:
            outputs.save_weights_atomically(base, path)
            # Last: the entry is whole.
            integrity.seal(folder, [os.path.basename(path), *extra])
            shutil.rmtree(work, ignore_errors=True)
    return SourcePretraining(phase=result, waited_seconds=waited)
