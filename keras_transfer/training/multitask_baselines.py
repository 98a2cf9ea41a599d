"""`--phase=multitask --baseline`: what the joint run is measured against,
on the same data and budget.

- every task alone: each other task from scratch for the joint phase's
  epochs, the target from scratch for the joint and fine-tuning epochs
  (the run's `--baseline`, `transfer.baseline`); a task that scores below
  itself alone suffered negative transfer;
- sequential transfer: the tool's default without multi-task, the source
  task first (the cached `--weights=source` base), then both phases on the
  target.
"""

import dataclasses
import os

from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.log import logger
from keras_transfer.models import backbones, weights as weights_lib
from keras_transfer.training import scratch, source, transfer

FOLDER = "baseline"


def _within(ctx, name):
    return dataclasses.replace(ctx, output_dir=os.path.join(ctx.output_dir, FOLDER, name),
                               backup_root=os.path.join(ctx.backup_root, FOLDER, name))


def task_alone(config, task, ctx, scores):
    """`task` (not the target) from scratch on its own for the joint
    phase's epochs; returns its test summary (`scores(head, task)`)."""
    logger.info(f"baseline: task {task.name} alone from scratch, {config.pretrain_epochs} "
                "epoch(s)")
    inner = _within(ctx, f"{task.name}_alone")
    classifier, _ = scratch.train_from_scratch(
        f"{task.name}_alone", task.data, config=config, strategy=ctx.strategy,
        image_size=ctx.image_size, global_batch=ctx.global_batch,
        epochs=config.pretrain_epochs, learning_rate=config.scratch_learning_rate,
        output_dir=inner.output_dir, backup_root=inner.backup_root, writes=ctx.writes,
        base_layer=config.base_layer)
    return scores(classifier, task)


def sequential_transfer(config, data, ctx):
    """The target by sequential transfer with the same settings otherwise:
    `--weights=source` (pretrained here and cached), then `--phase=both`.
    Returns its test summary."""
    sequential = dataclasses.replace(
        config, phase="both", weights="source", baseline=False, base_layer="auto",
        fine_tune_learning_rate=None, tasks=(), task_weights=(), task_weighting="fixed",
        task_sampling="joint", export_heads="target")
    resolved = weights_lib.resolve(sequential, ctx.image_size)
    sequential = dataclasses.replace(
        sequential, base_layer=backbones.resolve_base_layer(
            sequential.backbone, "auto", resolved.kind, "both"),
        fine_tune_learning_rate=sequential.fine_tune_rate_for(resolved.kind))
    inner = dataclasses.replace(_within(ctx, "sequential"), unfreeze=backbones.resolve_unfreeze(
        config.unfreeze, resolved.kind))
    logger.info("baseline: sequential transfer, the source task first, then both phases on "
                "the target")
    source.pretrain_base_if_needed(
        sequential, resolved, strategy=ctx.strategy, image_size=ctx.image_size,
        global_batch=ctx.global_batch, data=data, writes=ctx.writes,
        scratch_dir=os.path.join(inner.output_dir, "source_pretrain"))
    outcome = transfer.train_seed(sequential, data, resolved, inner, None)
    return evaluate.summary(outcome.final.report)
