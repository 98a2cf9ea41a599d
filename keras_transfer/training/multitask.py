"""`--phase=multitask`: the source task and the target (and any `--tasks`)
trained together on one base (`multitask_model.py`), then optionally the
target alone (`--fine_tune_epochs`).

The joint phase trains every layer for `--pretrain_epochs` epochs (those of
the source pretraining it takes the place of), at the from-scratch rate
from random weights (BatchNormalization learning its statistics, as from
scratch) or at the fine-tuning rate from ImageNet or file weights. Its best
epoch is the target's, by `--monitor` on the target's validation split;
every other task is then scored on its own validation and test splits.
The fine-tuning continues as phase 2 of a transfer run does, on the target
alone or, with `--fine_tune_tasks=all`, on every task's stream as the joint
phase; the safety net keeps the joint model when fine-tuning ends worse.
"""

import dataclasses
import functools
from typing import Any, Optional

from keras_transfer.data import pipeline, task_streams
from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.log import logger
from keras_transfer.models import classifier as model_lib
from keras_transfer.training import (multitask_baselines, multitask_model, phase as phase_lib,
                                     safety_net, scratch, transfer)

JOINT = "multitask"


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """One task of the joint phase: its data, weight, per-epoch training
    history (`<task>_loss`, `<task>_accuracy`, `<task>_weight`) and its
    scores at the joint phase's best epoch; the target's `test` is the
    run's own. `test_after_fine_tune`: where the fine-tuned model is kept,
    this task's head after it (trained on with `--fine_tune_tasks=all`,
    else left on a base that moved under it)."""

    name: str
    dataset: str
    class_names: tuple
    training_images: int
    weight: float
    history: dict
    validation: dict
    test: dict
    test_after_fine_tune: Optional[dict] = None
    # With --baseline: the task trained alone (the target: `transfer.baseline`),
    # and for the target, sequential transfer (`multitask_baselines.py`).
    alone: Optional[dict] = None
    sequential: Optional[dict] = None

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class MultitaskResult:
    """The tasks' results and their classifiers (sharing the base), for
    `--export_heads=all`."""

    tasks: tuple
    heads: Any  # {task name: classifier}, the target's first.
    sampling: str
    weighting: str


def _heads(config, task_list, resolved, ctx):
    """The target's classifier and one per other task on its base."""
    from_scratch = resolved.kind == "none"
    target = task_list[0].data
    with ctx.strategy.scope():
        classifier = model_lib.build_classifier(
            config.backbone, target.num_classes, image_size=ctx.image_size,
            channels=target.channels, dropout=config.dropout, l2=config.l2,
            base_weights=resolved.load, base_layer=config.base_layer,
            base_in_inference_mode=not from_scratch)
        base = model_lib.base_of(classifier)
        heads = [classifier] + [model_lib.classifier_on_base(
            config.backbone, base, task.data.num_classes, image_size=ctx.image_size,
            channels=task.data.channels, dropout=config.dropout, l2=config.l2,
            base_in_inference_mode=not from_scratch,
            name=f"{config.model}_{task.name}_classifier") for task in task_list[1:]]
    if from_scratch:
        model_lib.set_trainable_for_phase(classifier, config.backbone, "scratch")
        scratch.learn_batchnorm_statistics(classifier, ctx.strategy)
    else:
        model_lib.set_trainable_for_phase(classifier, config.backbone, "fine_tune",
                                          ctx.unfreeze)
    return heads


def _split_scores(head, task, split, ctx, config):
    """A task's classifier on one of its splits, each image once: the summary."""
    data = task.data
    dataset = pipeline.make_dataset(getattr(data, split), exact=True,
                                    num_classes=data.num_classes, batch_size=ctx.global_batch,
                                    image_size=ctx.image_size, channels=data.channels)
    report, *_ = evaluate.evaluate(head, dataset, data.class_names, config.verbose,
                                   expected=len(getattr(data, split)),
                                   label=f"{split} of task {task.name}")
    return evaluate.summary(report)


def _task_history(history, name):
    return {key: values for key, values in history.items() if key.startswith(f"{name}_")}


def _with_baselines(config, data, ctx, task_list, results, target_alone):
    """`results` with every task alone and the target's sequential transfer."""
    scores = functools.partial(_split_scores, split="test", ctx=ctx, config=config)
    alone = [target_alone] + [multitask_baselines.task_alone(config, task, ctx, scores)
                              for task in task_list[1:]]
    sequential = multitask_baselines.sequential_transfer(config, data, ctx)
    return [dataclasses.replace(result, alone=score,
                                sequential=sequential if index == 0 else None)
            for index, (result, score) in enumerate(zip(results, alone))]


def _keep_best(classifier, joint_model, phases, config, output_dir):
    """The safety net; where every task was fine-tuned, restoring the joint
    phase restores every head with the base they share."""
    if config.fine_tune_tasks != "all":
        return safety_net.keep_best_phase(classifier, phases, config)
    joint = dataclasses.replace(phases[0], checkpoint=phase_lib.checkpoint_path(
        output_dir, JOINT, joint_model))
    return safety_net.keep_best_phase(joint_model, [joint, *phases[1:]], config)


def train_multitask_seed(config, task_list, resolved, ctx):
    """The joint phase on `task_list` (`task_streams.Task`s, the target's
    first), then (with `--fine_tune_epochs`) fine-tuning, of the target alone
    or of every task (`--fine_tune_tasks`); returns a
    `transfer.SeedOutcome` whose `multitask` is a `MultitaskResult`."""
    data = task_list[0].data
    replicas = ctx.strategy.num_replicas_in_sync
    train_data, steps, sizes = task_streams.training_stream(
        task_list, config, ctx.image_size, ctx.global_batch, replicas)
    for line in task_streams.task_sizes_lines(task_list, sizes, steps):
        logger.info(line)
    heads = _heads(config, task_list, resolved, ctx)
    classifier = heads[0]
    with ctx.strategy.scope():  # Its log-variances and metrics, as the optimizer's.
        joint_model = multitask_model.MultiTaskModel(
            heads, [task.name for task in task_list],
            weights=[task.weight for task in task_list],
            uncertainty=config.task_weighting == "uncertainty",
            label_smoothing=config.label_smoothing)
    _, validation_data = pipeline.training_datasets(data, config, ctx.image_size,
                                                    ctx.global_batch)
    common = dict(validation_data=validation_data, strategy=ctx.strategy, config=config,
                  class_names=data.class_names, output_dir=ctx.output_dir,
                  backup_root=ctx.backup_root, writes=ctx.writes)
    rate = (config.scratch_learning_rate if resolved.kind == "none"
            else config.fine_tune_learning_rate)
    before = evaluate.summary(transfer.evaluate_on_test(
        classifier, ctx, data, config, "test before the joint phase").report)
    result = phase_lib.run_phase(classifier, JOINT, train_data=train_data,
                                 epochs=config.pretrain_epochs, learning_rate=rate,
                                 fit_model=joint_model, steps_per_execution=1, **common)
    evaluations = {JOINT: transfer.evaluate_on_test(classifier, ctx, data, config,
                                                    "test after the joint phase")}
    phases = [transfer.tested(result, evaluations[JOINT], before)]
    results = [TaskResult(
        name=task.name, dataset=task.data.name, class_names=tuple(task.data.class_names),
        training_images=len(task.data.train), weight=task.weight,
        history=_task_history(result.history, task.name),
        validation=_split_scores(head, task, "validation", ctx, config),
        test=(phases[0].test if head is classifier
              else _split_scores(head, task, "test", ctx, config)))
        for task, head in zip(task_list, heads)]
    for task in results:
        logger.info(f"task {task.name} after the joint phase: validation accuracy "
                    f"{task.validation['accuracy']:.4f}, test accuracy "
                    f"{task.test['accuracy']:.4f}")
    decision = None
    if config.fine_tune_epochs:
        model_lib.set_trainable_for_phase(classifier, config.backbone, "fine_tune", ctx.unfreeze)
        if config.fine_tune_tasks == "all":  # Every task's stream, as the joint phase.
            trains = dict(train_data=train_data, fit_model=joint_model, steps_per_execution=1)
        else:
            trains = dict(train_data=pipeline.training_datasets(
                data, config, ctx.image_size, ctx.global_batch)[0])
        fine_tune = phase_lib.run_phase(
            classifier, "fine_tune", epochs=config.fine_tune_epochs,
            learning_rate=config.fine_tune_learning_rate, schedule=config.fine_tune_schedule,
            first_epoch=result.epochs_run, **trains, **common)
        evaluations["fine_tune"] = transfer.evaluate_on_test(classifier, ctx, data, config,
                                                             "test after fine-tuning")
        phases.append(transfer.tested(fine_tune, evaluations["fine_tune"], phases[0].test))
        decision = _keep_best(classifier, joint_model, phases, config, ctx.output_dir)
        if not decision["restored_feature_extraction"]:  # Else every head is the joint one.
            results = [results[0]] + [dataclasses.replace(
                task, test_after_fine_tune=_split_scores(head, spec, "test", ctx, config))
                for task, head, spec in zip(results[1:], heads[1:], task_list[1:])]
    kept = decision["exported_phase"] if decision else phases[-1].name
    baseline = None
    if config.baseline:
        baseline = transfer.baseline(config, data, ctx)
        results = _with_baselines(config, data, ctx, task_list, results,
                                  evaluate.summary(baseline["test"]))
    return transfer.SeedOutcome(
        seed=config.seed, classifier=classifier, phases=tuple(phases), final=evaluations[kept],
        safety=decision, baseline=baseline, multitask=MultitaskResult(
            tasks=tuple(results), heads={task.name: head for task, head in zip(task_list, heads)},
            sampling=config.task_sampling, weighting=config.task_weighting))
