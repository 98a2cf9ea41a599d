"""One seed of `--phase=distill`: the teacher's outputs recorded once, the
student trained against them (`distillation.py`), both on the test split.

The student trains whole for `--epochs` plus `--fine_tune_epochs` epochs (the
budget of a transfer run, and of its `--baseline`, the same student from
scratch on the labelled images alone), at the from-scratch rate when it starts
from random weights and at the fine-tuning rate otherwise.
"""

import dataclasses
import os

import numpy as np

from keras_transfer.data import pipeline, sources
from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.log import logger
from keras_transfer.models import classifier as model_lib, finished_run, flops
from keras_transfer.training import distillation, phase as phase_lib, scratch, transfer


def _training_examples(config, data):
    """(labelled training images then the unlabelled pool, has-a-label mask):
    the rest of the training split, or a folder's images (`data.unlabeled`)."""
    pool = data.rest if config.unlabeled_data == "rest" else data.unlabeled
    if pool is None or not len(pool):
        return data.train, np.ones(len(data.train), bool)
    return (sources.concatenate(data.train, pool),
            np.concatenate([np.ones(len(data.train), bool), np.zeros(len(pool), bool)]))


def _teacher_probabilities(teacher, examples, data, ctx, config):
    """The frozen teacher's probabilities on each unaugmented image, in one
    pass; an image that cannot be read now gets its label (or a uniform
    guess), and the training pipeline drops it anyway."""
    dataset = pipeline.make_dataset(examples, num_classes=data.num_classes,
                                    batch_size=ctx.global_batch, image_size=ctx.image_size,
                                    channels=data.channels, exact=True)
    _, probabilities, indices = evaluate.predict(
        teacher, dataset, config.verbose, "recording the teacher's outputs")
    recorded = np.full((len(examples), data.num_classes), 1.0 / data.num_classes, np.float32)
    recorded[indices] = probabilities
    return recorded


def _build(config, data, resolved, ctx, teacher_record, teacher_checkpoint):
    with ctx.strategy.scope():
        teacher = finished_run.rebuild_classifier(teacher_record, teacher_checkpoint)
        teacher.trainable = False
        student = model_lib.build_classifier(
            config.backbone, data.num_classes, image_size=ctx.image_size,
            channels=data.channels, dropout=config.dropout, l2=config.l2,
            base_weights=resolved.load, base_layer=config.base_layer,
            # From random weights BatchNormalization must learn its statistics.
            base_in_inference_mode=resolved.kind != "none")
    model_lib.set_trainable_for_phase(student, config.backbone, "scratch")
    if resolved.kind == "none":
        scratch.learn_batchnorm_statistics(student, ctx.strategy)
    return teacher, student


def _agreement(student, teacher_predictions):
    """The share of test images on which the student answers as the teacher."""
    teacher_probabilities, teacher_indices = teacher_predictions
    by_index = dict(zip(teacher_indices.tolist(), teacher_probabilities.argmax(axis=1)))
    pairs = [(answer, by_index[index]) for index, answer in
             zip(student.indices.tolist(), student.probabilities.argmax(axis=1))
             if index in by_index]
    return float(np.mean([a == b for a, b in pairs])) if pairs else None


def distill_seed(config, data, resolved, ctx, teacher_record, teacher_checkpoint):
    """Trains the student of `config` from the teacher run; returns a
    `transfer.SeedOutcome` whose `distillation` entry compares the two."""
    teacher, student = _build(config, data, resolved, ctx, teacher_record, teacher_checkpoint)
    examples, has_label = _training_examples(config, data)
    logger.info(f"distilling {teacher_record.config['model']} ({teacher.count_params():,} "
                f"parameters) into {config.model} ({student.count_params():,}): "
                f"{int(has_label.sum()):,} labelled and {int((~has_label).sum()):,} "
                f"unlabelled training images, temperature {config.temperature:g}, "
                f"alpha {config.distill_alpha:g}")
    one_hot = np.eye(data.num_classes, dtype=np.float32)[examples.labels]
    recorded = (np.zeros_like(one_hot) if config.augment  # The teacher runs in the step.
                else _teacher_probabilities(teacher, examples, data, ctx, config))
    batching = dict(num_classes=data.num_classes, batch_size=ctx.global_batch,
                    image_size=ctx.image_size, channels=data.channels)
    train_data = pipeline.make_dataset(
        examples, training=True, seed=config.seed, augment=config.augment,
        min_steps=config.min_steps_per_epoch,
        targets=distillation.pack(one_hot, has_label, recorded), **batching)
    with ctx.strategy.scope():
        fitted = distillation.DistillingStudent(
            student, data.num_classes, teacher=teacher if config.augment else None)
    rate = (config.scratch_learning_rate if resolved.kind == "none"
            else config.fine_tune_rate_for(resolved.kind))
    result = phase_lib.run_phase(
        student, "distill", train_data=train_data,
        validation_data=pipeline.make_dataset(data.validation, **batching),
        epochs=transfer.scratch_epochs(config), learning_rate=rate,
        schedule=config.fine_tune_schedule, strategy=ctx.strategy, config=config,
        class_names=data.class_names, output_dir=ctx.output_dir,
        class_weight=ctx.class_weight, backup_root=ctx.backup_root, writes=ctx.writes,
        fit_model=fitted, steps_per_execution=1,
        loss=distillation.DistillationLoss(data.num_classes, config.temperature,
                                           config.distill_alpha, config.label_smoothing))
    final = transfer.evaluate_on_test(student, ctx, data, config, "test of the student")
    result = dataclasses.replace(result, test=evaluate.summary(final.report))
    labels, teacher_probabilities, teacher_indices = evaluate.predict(
        teacher, ctx.test_data, config.verbose, "test of the teacher")
    teacher_report = evaluate.report(labels, teacher_probabilities, data.class_names)
    entry = {
        "teacher": {"run_dir": os.path.abspath(config.teacher),
                    "checkpoint": teacher_checkpoint, "model": teacher_record.config["model"],
                    "parameters": teacher.count_params(),
                    "flops_per_image": flops.flops_per_image(teacher, ctx.image_size,
                                                             data.channels),
                    "test": evaluate.summary(teacher_report)},
        "student": {"model": config.model, "parameters": student.count_params(),
                    "flops_per_image": flops.flops_per_image(student, ctx.image_size,
                                                             data.channels)},
        "agreement": _agreement(final, (teacher_probabilities, teacher_indices)),
        "temperature": config.temperature, "alpha": config.distill_alpha,
        "labelled": int(has_label.sum()), "unlabelled": int((~has_label).sum()),
        "teacher_in_step": bool(config.augment),
    }
    baseline = transfer.baseline(config, data, ctx) if config.baseline else None
    return transfer.SeedOutcome(seed=config.seed, classifier=student, phases=(result,),
                                final=final, baseline=baseline, distillation=entry)
