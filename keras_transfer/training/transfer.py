"""One seed's training: the transfer phases with a test evaluation after each,
the safety net, and the from-scratch baseline on the same budget.

The run calls `train_seed` once per seed (`run/repeats.py`); everything a
seed depends on (initialisation, shuffling, augmentation) comes from
`config.seed`, while the data and its splits are shared by all seeds.
"""

import dataclasses
import os
import time
from typing import Any, Optional

from keras_transfer import semi_supervised_checks
from keras_transfer.data import pipeline
from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.log import logger
from keras_transfer.models import classifier as model_lib
from keras_transfer.training import (feature_cache, phase as phase_lib, safety_net, scratch,
                                     self_training, semi_supervised)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The test split through one model: the full report (`evaluate.report`),
    the labels and probabilities the plots draw, and which test examples
    were read (their indices in the split)."""

    report: dict
    labels: Any
    probabilities: Any
    indices: Any = None


@dataclasses.dataclass(frozen=True)
class SeedOutcome:
    """What one seed produced; `final` evaluates the model as it ends (after
    the safety net)."""

    seed: int
    classifier: Any
    phases: tuple
    final: Evaluation
    safety: Optional[dict] = None
    baseline: Optional[dict] = None
    distillation: Optional[dict] = None  # --phase=distill: the teacher beside the student.
    multitask: Optional[Any] = None  # --phase=multitask: `multitask.MultitaskResult`.


def evaluate_on_test(classifier, ctx, data, config, when="test"):
    """The classifier on the test split; `when` labels its progress lines."""
    return Evaluation(*evaluate.evaluate(classifier, ctx.test_data, data.class_names,
                                         config.verbose, expected=len(data.test), label=when))


def _fine_tune_start(model, output_dir, previous):
    """Loads the phase-1 result of an earlier run for `--phase=fine_tune`."""
    checkpoint = os.path.join(output_dir, "checkpoints", "feature_extraction.weights.h5")
    model.load_weights(checkpoint)
    logger.info("fine-tuning from the feature-extraction result in the output folder")
    fields = {field.name for field in dataclasses.fields(phase_lib.PhaseResult)}
    phase_one = {key: value for key, value in previous.phases["feature_extraction"].items()
                 if key in fields}
    return phase_lib.PhaseResult(**{**phase_one, "checkpoint": checkpoint})


def tested(result, evaluation, before, extra_seconds=0.0):
    """`result` with its test summaries before and after, logged."""
    after = evaluate.summary(evaluation.report)
    change = "" if not before else (
        f" (before: {before['accuracy']:.4f}, {after['accuracy'] - before['accuracy']:+.4f})")
    logger.info(f"test accuracy after {result.name}: {after['accuracy']:.4f}{change}")
    return dataclasses.replace(result, test_before=before, test=after,
                               seconds=round(result.seconds + extra_seconds, 2))


def _transfer_phases(config, data, resolved, ctx, previous):
    """Builds the transfer classifier and runs phases 1 and/or 2, evaluating
    the test split before and after each so a harmful phase shows."""
    spec = config.backbone
    with ctx.strategy.scope():
        classifier = model_lib.build_classifier(
            spec, data.num_classes, image_size=ctx.image_size, channels=data.channels,
            dropout=config.dropout, l2=config.l2, base_weights=resolved.load,
            base_layer=config.base_layer,
        )
    train_data, validation_data = pipeline.training_datasets(
        data, config, ctx.image_size, ctx.global_batch)
    common = dict(train_data=train_data, validation_data=validation_data,
                  strategy=ctx.strategy, config=config, class_names=data.class_names,
                  output_dir=ctx.output_dir, class_weight=ctx.class_weight,
                  backup_root=ctx.backup_root, writes=ctx.writes)
    phases, evaluations = [], {}
    if config.phase in ("feature_extraction", "both") and config.epochs:
        # Before phase 1 the head is random: the chance-level starting point.
        before = evaluate.summary(evaluate_on_test(
            classifier, ctx, data, config, "test before phase 1").report)
        model_lib.set_trainable_for_phase(classifier, spec, "feature_extraction")
        # The frozen base's output never changes: record it once, train the head.
        recording = time.time()
        recorded = feature_cache.phase_one_inputs(classifier, data, config, ctx, resolved)
        recording = time.time() - recording
        if recorded:  # The head alone, on the recorded features.
            inputs = dict(fit_model=recorded.fit_model, train_data=recorded.train_data,
                          validation_data=recorded.validation_data)
        else:
            inputs = {}
        result = phase_lib.run_phase(
            classifier, "feature_extraction", epochs=config.epochs,
            learning_rate=config.learning_rate, **{**common, **inputs})
        evaluations["feature_extraction"] = evaluate_on_test(
            classifier, ctx, data, config, "test after phase 1")
        phases.append(tested(result, evaluations["feature_extraction"], before,
                              extra_seconds=recording))  # Recording included.
    if config.phase == "fine_tune":
        phases.append(_fine_tune_start(classifier, ctx.output_dir, previous))
    if config.phase in ("fine_tune", "both") and config.fine_tune_epochs:
        model_lib.set_trainable_for_phase(classifier, spec, "fine_tune", ctx.unfreeze)
        # With --epochs=0 fine-tuning starts straight from the random head.
        first = phases[-1].first_epoch + phases[-1].epochs_run if phases else 0
        before = phases[-1].test if phases else evaluate.summary(
            evaluate_on_test(classifier, ctx, data, config, "test before phase 2").report)
        release = (model_lib.anchor_base_weights(classifier, config.l2_sp) if config.l2_sp
                   else lambda: None)
        try:
            result = phase_lib.run_phase(
                classifier, "fine_tune", epochs=config.fine_tune_epochs,
                learning_rate=config.fine_tune_learning_rate,
                schedule=config.fine_tune_schedule, first_epoch=first, **common)
        finally:
            release()  # The exported model and later phases carry no penalty.
        evaluations["fine_tune"] = evaluate_on_test(classifier, ctx, data, config,
                                                    "test after phase 2")
        phases.append(tested(result, evaluations["fine_tune"], before))
        if config.semi_supervised != "none":
            phases += _semi_supervised_phases(classifier, data, config, ctx, common, phases,
                                              evaluations)
    return classifier, tuple(phases), evaluations


def _semi_supervised_phases(classifier, data, config, ctx, common, supervised, evaluations):
    """Phase 3, from the supervised model the safety net keeps (phase 1's
    where fine-tuning ended worse): FixMatch, or self-training's rounds."""
    decision = safety_net.keep_best_phase(classifier, supervised, config)
    kept = next(phase for phase in supervised if phase.name == (
        decision["exported_phase"] if decision else supervised[-1].name))
    # One time axis: phase 3 counts on from the last epoch trained.
    start = dataclasses.replace(kept, first_epoch=supervised[-1].first_epoch,
                                epochs_run=supervised[-1].epochs_run)
    if config.semi_supervised == "fixmatch":
        return [_semi_supervised_phase(classifier, data, config, ctx, common, start,
                                       evaluations)]
    return _self_training_rounds(classifier, data, config, ctx, common, start, evaluations)


def _self_training_rounds(classifier, data, config, ctx, common, supervised, evaluations):
    """Phase 3 as self-training: each round, the model as it stands labels
    the pool, then trains as fine-tuning did on the labelled images and its
    confident pseudo-labels. Returns the rounds' PhaseResults."""
    rounds, previous = [], supervised
    for number in range(1, config.self_training_rounds + 1):
        labels = self_training.pseudo_label(classifier, data, config, ctx, number)
        train_data, _ = pipeline.training_datasets(
            self_training.with_pseudo_labels(data, labels), config, ctx.image_size,
            ctx.global_batch)
        result = phase_lib.run_phase(
            classifier, f"{safety_net.SEMI_SUPERVISED}_{number}",
            **_semi_supervised_budget(config, previous), **{**common, "train_data": train_data})
        evaluations[result.name] = evaluate_on_test(classifier, ctx, data, config,
                                                    f"test after self-training round {number}")
        previous = tested(self_training.recorded(result, labels), evaluations[result.name],
                           previous.test)
        rounds.append(previous)
    return rounds


def _semi_supervised_budget(config, previous):
    """`run_phase`'s epochs and learning-rate curve for phase 3 (FixMatch's
    phase or one self-training round): `--semi_supervised_epochs` on
    fine-tuning's learning-rate curve, warmed up by
    `--semi_supervised_warmup_epochs`, counting on from `previous`."""
    return dict(epochs=semi_supervised_checks.phase_epochs(config),
                learning_rate=config.fine_tune_learning_rate, schedule=config.fine_tune_schedule,
                warmup_epochs=config.semi_supervised_warmup_epochs,
                first_epoch=previous.first_epoch + previous.epochs_run)


def _semi_supervised_phase(classifier, data, config, ctx, common, supervised, evaluations):
    """Phase 3: the fine-tuned model goes on, as fine-tuning did, with the
    unlabelled images too; the safety net then keeps it or the supervised
    model, whichever is better on validation."""
    result = phase_lib.run_phase(
        classifier, safety_net.SEMI_SUPERVISED, **_semi_supervised_budget(config, supervised),
        **{**common, **semi_supervised.fit_inputs(
            classifier, data, config, strategy=ctx.strategy, image_size=ctx.image_size,
            global_batch=ctx.global_batch)})
    evaluations[result.name] = evaluate_on_test(classifier, ctx, data, config,
                                                "test after phase 3")
    return tested(result, evaluations[result.name], supervised.test)


def scratch_epochs(config):
    """A from-scratch network's budget: the epochs of the phases a transfer
    run with these settings trains."""
    if config.phase == "multitask":  # The joint phase, then the target alone.
        return config.pretrain_epochs + config.fine_tune_epochs
    fine_tunes = config.phase in ("both", "fine_tune", "distill")
    return config.epochs + (config.fine_tune_epochs if fine_tunes else 0)


def from_scratch(config, data, ctx, folder=None):
    """The network (its base cut where a transfer run cuts it) from random
    initialisation, all of it trained at the from-scratch rate, on the same
    data, budget and augmentation; in `folder` under the run's own.
    Returns (classifier, its PhaseResult with the test summary, Evaluation)."""
    classifier, result = scratch.train_from_scratch(
        "scratch", data, config=config, strategy=ctx.strategy,
        image_size=ctx.image_size, global_batch=ctx.global_batch,
        epochs=scratch_epochs(config), learning_rate=config.scratch_learning_rate,
        output_dir=os.path.join(ctx.output_dir, folder) if folder else ctx.output_dir,
        class_weight=ctx.class_weight,
        backup_root=os.path.join(ctx.backup_root, folder) if folder else ctx.backup_root,
        writes=ctx.writes,
        base_layer=config.base_layer,
        semi_supervised=True,
    )
    evaluation = evaluate_on_test(classifier, ctx, data, config,
                                  "test of the baseline" if folder else "test")
    return (classifier, dataclasses.replace(result, test=evaluate.summary(evaluation.report)),
            evaluation)


def baseline(config, data, ctx):
    """`--baseline`: `from_scratch` beside the transfer run, for the report."""
    logger.info(f"baseline: the same network from scratch, {scratch_epochs(config)} "
                f"epoch(s), seed {config.seed}")
    _, result, evaluation = from_scratch(config, data, ctx, "baseline")
    return {"phases": {result.name: result.to_dict()}, "test": evaluation.report}


def train_seed(config, data, resolved, ctx, previous):
    """Transfer phases, safety net and (with `--baseline`) scratch, for
    `config.seed`; returns a `SeedOutcome`."""
    if resolved.kind == "none" and config.phase != "fine_tune":
        # A head on a frozen random base learns next to nothing: without
        # pretrained weights the whole network trains, as from scratch it must.
        classifier, result, evaluation = from_scratch(config, data, ctx)
        return SeedOutcome(seed=config.seed, classifier=classifier, phases=(result,),
                           final=evaluation)
    classifier, phases, evaluations = _transfer_phases(config, data, resolved, ctx, previous)
    decision = safety_net.keep_best(classifier, phases, config)
    kept = decision["exported_phase"] if decision else phases[-1].name
    final = evaluations.get(kept) or evaluate_on_test(classifier, ctx, data, config)
    return SeedOutcome(seed=config.seed, classifier=classifier, phases=phases, final=final,
                       safety=decision,
                       baseline=baseline(config, data, ctx) if config.baseline else None)
