"""One run end to end: data -> weights -> phases -> evaluation -> export.

`prepare.py` checks every setting and creates the output folder; this module
trains (`training/`), evaluates, exports (`serving/`) and writes the results
(`record.py`).
"""

import dataclasses
import os
import shutil
import time
from typing import Any

import keras
import tensorflow as tf

from keras_transfer import multitask_checks, outputs, schema
from keras_transfer.data import pipeline, splits, summary as data_summary
from keras_transfer.evaluation import advice, metrics as evaluate, plots, report as report_lib
from keras_transfer.log import logger
from keras_transfer.run import probe, record, repeats, teacher as teacher_lib
from keras_transfer.run.prepare import prepare
from keras_transfer.serving import export, model_card
from keras_transfer.training import (autoencoder, distribute, multitask, scratch, source,
                                     student, transfer)
from keras_transfer.training.context import RunContext


def _summary(prepared, ctx):
    config, data = prepared.config, prepared.data
    logger.info(f"model {config.model}, phase {config.phase}, image size {ctx.image_size}")
    logger.info(f"dataset {data.name}: classes {', '.join(data.class_names)}; "
                f"split sizes {data.split_sizes()}")
    for line in data_summary.console_lines(data, config.class_weight):
        logger.info(line)
    logger.info(f"weights {config.weights} -> {prepared.resolved.kind}: "
                f"{prepared.resolved.detail}")
    if config.phase == multitask_checks.MULTITASK:
        logger.info(f"multi-task: the tasks train together on one base for "
                    f"{config.pretrain_epochs} epoch(s) (--pretrain_epochs), then the target "
                    f"alone for {config.fine_tune_epochs} (--fine_tune_epochs)")
    elif prepared.resolved.kind == "none" and config.phase not in ("fine_tune", "distill"):
        logger.info(f"no pretrained weights: the whole network trains from scratch, "
                    f"{transfer.scratch_epochs(config)} epoch(s) (--epochs plus "
                    f"--fine_tune_epochs) at the from-scratch rate "
                    f"{config.scratch_learning_rate:g}, every layer trainable "
                    "(BatchNormalization, where the backbone has it, learning its statistics)")
    elif config.phase in ("fine_tune", "both"):
        logger.info(f"fine-tuning unfreezes {ctx.unfreeze!r} (--unfreeze={config.unfreeze})")
    if config.phase != "pretrain" or prepared.resolved.kind == "autoencoder":
        logger.info(f"the base ends at {config.base_layer!r}")
    logger.info(f"strategy {config.strategy}: {ctx.strategy.num_replicas_in_sync} "
                f"replica(s), global batch {ctx.global_batch}")
    logger.info(f"output folder {prepared.output_dir}")


def _context(prepared, strategy):
    config, data = prepared.config, prepared.data
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    return RunContext(
        strategy=strategy, image_size=prepared.image_size, global_batch=global_batch,
        output_dir=prepared.output_dir, backup_root=config.output_dir or prepared.output_dir,
        writes=prepared.state != "worker", unfreeze=prepared.unfreeze,
        class_weight=(splits.class_weights(data.train.labels, data.num_classes)
                      if config.class_weight == "balanced" else None),
        test_data=pipeline.test_dataset(data, prepared.image_size, global_batch))


def _pretrain_phase(config, data, ctx):
    """`--phase=pretrain`: the whole network from scratch; saves the base.
    Returns a `transfer.SeedOutcome`."""
    classifier, result = scratch.train_from_scratch(
        "pretrain", data, config=config, strategy=ctx.strategy,
        image_size=ctx.image_size, global_batch=ctx.global_batch,
        epochs=config.pretrain_epochs, learning_rate=config.scratch_learning_rate,
        output_dir=ctx.output_dir, class_weight=ctx.class_weight,
        backup_root=ctx.backup_root, writes=ctx.writes)
    path = os.path.join(ctx.output_dir, scratch.BASE_WEIGHTS_FILE)
    scratch.save_base_weights(classifier, path)
    logger.info(f"base weights saved to {path} (use them with --weights=PATH)")
    logger.info("evaluating on the test split")
    final = transfer.evaluate_on_test(classifier, ctx, data, config)
    result = dataclasses.replace(result, test=evaluate.summary(final.report))
    return transfer.SeedOutcome(seed=config.seed, classifier=classifier, phases=(result,),
                                final=final)


def _autoencoder_pretrain_phase(config, data, resolved, ctx):
    """`--phase=pretrain --pretrain_objective=autoencoder`: the autoencoder
    (trained and cached before this, as for `--weights=autoencoder`) gives
    the base saved in the run's folder; a head on it, frozen (phase 1 for
    `--epochs`), measures what it learned and is what the run exports.
    Returns a `transfer.SeedOutcome`."""
    path = os.path.join(ctx.output_dir, scratch.BASE_WEIGHTS_FILE)
    if ctx.writes:
        outputs.copy_atomically(resolved.load, path)
        logger.info(f"base weights saved to {path} (use them with --weights=PATH "
                    f"--base_layer={config.base_layer})")
    return transfer.train_seed(
        dataclasses.replace(config, phase="feature_extraction", pretrain_objective="supervised"),
        data, resolved, ctx, None)


def _set_precision_policy(config):
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class Finished:
    """A finished run: what metrics.json holds, and the model as exported."""

    metrics: dict
    classifier: Any


def run(config):
    """Runs `config` end to end; returns the metrics dict written to metrics.json."""
    return run_to_model(config).metrics


def run_to_model(config):
    """Runs `config` end to end; returns it `Finished`."""
    started = time.time()
    if config.strategy == "mirrored":
        distribute.configure_cpu_replicas(config.cpu_replicas)
    # Before any other TensorFlow op: a multi-worker strategy sets up the
    # cluster's collectives when it is created.
    strategy = distribute.make_strategy(config.strategy, config.cpu_replicas)
    writes = distribute.is_chief(strategy)
    prepared = prepare(config, strategy, writes)
    try:
        return _run(prepared, strategy, started)
    except distribute.CLUSTER_ERRORS as error:
        if config.strategy != "multi_worker":
            raise
        raise distribute.StrategyError(distribute.cluster_failure_message(error)) from None
    finally:
        if prepared.lock:
            prepared.lock.release()
        if not writes:
            shutil.rmtree(prepared.output_dir, ignore_errors=True)


def _train(prepared, ctx):
    """The first seed's outcome and every seed's test scores."""
    config, data = prepared.config, prepared.data
    if config.phase == "pretrain" and prepared.resolved.kind == "autoencoder":
        outcome = _autoencoder_pretrain_phase(config, data, prepared.resolved, ctx)
        return outcome, [repeats.scores_of(outcome)]
    if config.phase == "pretrain":
        outcome = _pretrain_phase(config, data, ctx)
        return outcome, [repeats.scores_of(outcome)]
    if config.phase == "distill":
        teacher = prepared.teacher
        outcome = student.distill_seed(config, data, prepared.resolved, ctx, teacher.record,
                                       teacher.checkpoint)
        return outcome, [repeats.scores_of(outcome)]
    if config.phase == multitask_checks.MULTITASK:
        outcome = multitask.train_multitask_seed(config, prepared.tasks, prepared.resolved,
                                                 ctx)
        return outcome, [repeats.scores_of(outcome)]
    return repeats.run(config, ctx, lambda seed_config, seed_ctx: transfer.train_seed(
        seed_config, data, prepared.resolved, seed_ctx, prepared.previous))


def _run(prepared, strategy, started):
    config, data = prepared.config, prepared.data
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        # Same seed, same ops, same order: bit-identical weights run to run.
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.global_policy()
    _set_precision_policy(config)
    try:
        ctx = _context(prepared, strategy)
        _summary(prepared, ctx)
        source_pretraining = source.pretrain_base_if_needed(
            config, prepared.resolved, strategy=strategy, image_size=ctx.image_size,
            global_batch=ctx.global_batch, data=data, writes=ctx.writes,
            scratch_dir=os.path.join(ctx.output_dir, "source_pretrain"))
        # What an autoencoder base learned, before fine-tuning changes it.
        base_probe = (probe.probe_bases(config, data, ctx.image_size, prepared.resolved)
                      if ctx.writes else None)
        outcome, rows = _train(prepared, ctx)
        report = outcome.final.report
        logger.info(f"test accuracy {report['accuracy']:.4f}, macro F1 {report['f1']:.4f} "
                    f"on {report['examples']} test images")
        if report.get("non_finite_outputs"):
            # report.md says so too; a console that ends in a plain accuracy hides it.
            logger.warning(
                f"warning: the model outputs NaN for {report['non_finite_outputs']} of "
                f"{report['examples']} test images: its training diverged (try a lower "
                "--learning_rate or --fine_tune_learning_rate); its export answers NaN")
        run_record = record.record_of(prepared, ctx, outcome, rows,
                                       source_pretraining, base_probe)
        for problem in advice.fit_problems(run_record):
            logger.warning(f"warning: {problem}")
        outputs.write_history_csv(os.path.join(ctx.output_dir, "history.csv"),
                                  outcome.phases)
        run_record = dataclasses.replace(run_record, plots=plots.write_run_plots(
            ctx.output_dir, outcome.phases, report, outcome.final.labels,
            outcome.final.probabilities,
            evaluate.test_images(data, ctx.image_size, outcome.final.indices),
            f"{config.model} on {data.name}"))
        if prepared.resolved.kind == "autoencoder":
            drawn = autoencoder.copy_reconstructions(prepared.resolved.load, ctx.output_dir)
            run_record = dataclasses.replace(run_record, plots={
                **run_record.plots, **({"reconstructions": drawn} if drawn else {})})
        if ctx.writes:  # Else a worker: the chief exports and writes the results.
            run_record = _export(prepared, outcome.classifier, run_record,
                                 _exported_heads(config, outcome))
            if run_record.distillation and run_record.export:
                run_record = dataclasses.replace(run_record, distillation=(
                    teacher_lib.with_serving_costs(
                        run_record.distillation, run_record.export["path"], prepared.teacher,
                        prepared.image_size, prepared.data.channels)))
            run_record = dataclasses.replace(run_record, timings={
                **run_record.timings, "total": round(time.time() - started, 2)})
            _write_results(ctx.output_dir, run_record.to_dict())
        return Finished(metrics=run_record.to_dict(), classifier=outcome.classifier)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _exported_heads(config, outcome):
    """`--export_heads=all`: the other tasks' classifiers, as `export.TaskHead`s."""
    if config.export_heads != "all":
        return ()
    return tuple(export.TaskHead(task.name, outcome.multitask.heads[task.name],
                                 task.class_names,
                                 outcome.multitask.heads[task.name].inputs[0].shape[-1])
                 for task in outcome.multitask.tasks[1:])


def _export(prepared, classifier, run_record, heads=()):
    """Exports the classifier (and `heads`, unless `--noexport`); returns
    `run_record` with the export and its time."""
    config, output_dir = prepared.config, prepared.output_dir
    if not config.export:
        logger.info("no SavedModel (--noexport); python -m keras_transfer.export "
                    f"--run_dir={output_dir} writes one from the best checkpoint")
        return run_record
    export_start = time.time()
    path = export.export_model(classifier, os.path.join(output_dir, "export"),
                               prepared.data.class_names, image_size=prepared.image_size,
                               channels=prepared.data.channels,
                               card=model_card.from_record(run_record),
                               tflite=config.export_tflite,
                               max_megapixels=config.max_megapixels, heads=heads)
    logger.info(f"SavedModel exported to {path}"
                + "".join(f"; task {head.name} as signature serving_{head.name}"
                          for head in heads))
    return dataclasses.replace(
        run_record, export={"path": path, "version": int(os.path.basename(path))},
        timings={**run_record.timings, "export": round(time.time() - export_start, 2)})


def _write_results(output_dir, metrics):
    outputs.write_json(os.path.join(output_dir, schema.METRICS_FILE), metrics)
    logger.info(f"metrics written to {os.path.join(output_dir, schema.METRICS_FILE)}")
    report_lib.write_report(os.path.join(output_dir, report_lib.REPORT_FILE), metrics)
    logger.info(f"report written to {os.path.join(output_dir, report_lib.REPORT_FILE)}")
    # The run is complete: its per-epoch backups (weights and optimizer
    # slots of every phase) are of no further use.
    outputs.remove_backups(output_dir)
