"""One seed's training: the transfer phases with a test evaluation after each,
the safety net, and the from-scratch baseline on the same budget.

`run.py` calls `train_seed` once per seed through `repeats.py`; everything a
seed depends on (initialisation, shuffling, augmentation) comes from
`config.seed`, while the data and its splits are shared by all seeds.
"""

import dataclasses
import os
import time
from typing import Optional

from keras_transfer import evaluate, feature_cache
from keras_transfer import model as model_lib
from keras_transfer import pretrain, safety, train


@dataclasses.dataclass
class SeedOutcome:
    """What one seed produced; `final` is the evaluation of the model as it
    ends (after the safety net): (report, labels, probabilities)."""

    seed: int
    classifier: object
    phases: list
    final: tuple
    safety: Optional[dict] = None
    baseline: Optional[dict] = None


def _evaluate(classifier, ctx, data, config):
    return evaluate.evaluate(classifier, ctx["test_data"], data.class_names, config.verbose)


def _fine_tune_start(model, output_dir, previous, log):
    """Loads the phase-1 result of an earlier run for `--phase=fine_tune`."""
    checkpoint = os.path.join(output_dir, "checkpoints", "feature_extraction.weights.h5")
    model.load_weights(checkpoint)
    log("fine-tuning from the feature-extraction result in the output folder")
    fields = {field.name for field in dataclasses.fields(train.PhaseResult)}
    phase_one = {key: value for key, value in previous["phases"]["feature_extraction"].items()
                 if key in fields}
    return train.PhaseResult(**{**phase_one, "checkpoint": checkpoint})


def _log_change(phase, log):
    before, after = phase.test_before, phase.test
    change = "" if not before else (
        f" (before: {before['accuracy']:.4f}, {after['accuracy'] - before['accuracy']:+.4f})")
    log(f"test accuracy after {phase.name}: {after['accuracy']:.4f}{change}")


def _transfer_phases(config, data, resolved, ctx, previous, log):
    """Builds the transfer classifier and runs phases 1 and/or 2, evaluating
    the test split before and after each so a harmful phase shows."""
    spec = config.backbone
    with ctx["strategy"].scope():
        classifier = model_lib.build_classifier(
            spec, data.num_classes, image_size=ctx["image_size"], channels=data.channels,
            dropout=config.dropout, l2=config.l2, base_weights=resolved.load,
            base_layer=config.base_layer,
        )
    train_data, validation_data, _ = pretrain.datasets_for(
        data, config, ctx["image_size"], ctx["global_batch"])
    common = dict(train_data=train_data, validation_data=validation_data,
                  strategy=ctx["strategy"], config=config, class_names=data.class_names,
                  output_dir=ctx["output_dir"], class_weight=ctx["class_weight"],
                  backup_root=ctx["backup_root"], writes=ctx["writes"])
    phases, evaluations = [], {}
    if config.phase in ("feature_extraction", "both") and config.epochs:
        # Before phase 1 the head is random: the chance-level starting point.
        before = evaluate.summary(_evaluate(classifier, ctx, data, config)[0])
        model_lib.set_trainable_for_phase(classifier, spec, "feature_extraction")
        # The frozen base's output never changes: record it once, train the head.
        recording = time.time()
        cached = feature_cache.phase_one_inputs(classifier, data, config, ctx, resolved, log)
        recording = time.time() - recording
        phases.append(train.run_phase(
            classifier, "feature_extraction", epochs=config.epochs,
            learning_rate=config.learning_rate, **{**common, **cached}))
        phases[-1].seconds = round(phases[-1].seconds + recording, 2)  # Recording included.
        phases[-1].test_before = before
        evaluations["feature_extraction"] = _evaluate(classifier, ctx, data, config)
        phases[-1].test = evaluate.summary(evaluations["feature_extraction"][0])
        _log_change(phases[-1], log)
    if config.phase == "fine_tune":
        phases.append(_fine_tune_start(classifier, ctx["output_dir"], previous, log))
    if config.phase in ("fine_tune", "both") and config.fine_tune_epochs:
        model_lib.set_trainable_for_phase(classifier, spec, "fine_tune", ctx["unfreeze"])
        # With --epochs=0 fine-tuning starts straight from the random head.
        first = phases[-1].first_epoch + phases[-1].epochs_run if phases else 0
        before = phases[-1].test if phases else evaluate.summary(
            _evaluate(classifier, ctx, data, config)[0])
        release = (model_lib.anchor_base_weights(classifier, config.l2_sp) if config.l2_sp
                   else lambda: None)
        try:
            phases.append(train.run_phase(
                classifier, "fine_tune", epochs=config.fine_tune_epochs,
                learning_rate=config.fine_tune_learning_rate,
                schedule=config.fine_tune_schedule, first_epoch=first, **common))
        finally:
            release()  # The exported model and later phases carry no penalty.
        phases[-1].test_before = before
        evaluations["fine_tune"] = _evaluate(classifier, ctx, data, config)
        phases[-1].test = evaluate.summary(evaluations["fine_tune"][0])
        _log_change(phases[-1], log)
    return classifier, phases, evaluations


def baseline(config, data, ctx, log):
    """The same network (its base cut where the transfer run cuts it) from
    random initialisation on the same data, epochs (both phases' together)
    and augmentation."""
    fine_tunes = config.phase in ("both", "fine_tune")
    epochs = config.epochs + (config.fine_tune_epochs if fine_tunes else 0)
    log(f"baseline: the same network from scratch, {epochs} epoch(s), seed {config.seed}")
    classifier, result = pretrain.train_from_scratch(
        "scratch", data, config=config, strategy=ctx["strategy"],
        image_size=ctx["image_size"], global_batch=ctx["global_batch"], epochs=epochs,
        learning_rate=config.scratch_learning_rate,
        output_dir=os.path.join(ctx["output_dir"], "baseline"),
        class_weight=ctx["class_weight"],
        backup_root=os.path.join(ctx["backup_root"], "baseline"), writes=ctx["writes"],
        base_layer=config.base_layer,
    )
    report = _evaluate(classifier, ctx, data, config)[0]
    result.test = evaluate.summary(report)
    return {"phases": {result.name: result.to_dict()}, "test": report}


def train_seed(config, data, resolved, ctx, previous, log):
    """Transfer phases, safety net and (with `--baseline`) scratch, for
    `config.seed`; returns a `SeedOutcome`."""
    classifier, phases, evaluations = _transfer_phases(config, data, resolved, ctx,
                                                       previous, log)
    decision = safety.keep_best_phase(classifier, phases, config, log)
    kept = decision["exported_phase"] if decision else phases[-1].name
    final = evaluations.get(kept) or _evaluate(classifier, ctx, data, config)
    outcome = SeedOutcome(seed=config.seed, classifier=classifier, phases=phases,
                          final=final, safety=decision)
    if config.baseline:
        outcome.baseline = baseline(config, data, ctx, log)
    return outcome
