"""One run end to end: data -> weights -> phases -> evaluation -> export.

Everything that can be wrong with the settings (flags, data, weights, output
folder) is checked before the first epoch and before anything is written.
"""

import dataclasses
import os
import platform
import shutil
import time

import keras
import tensorflow as tf

import keras_transfer
from keras_transfer import backbones, config as config_lib, data_summary, datasets
from keras_transfer import distribute, evaluate, experiment, export, folder_dataset, model_card
from keras_transfer import model as model_lib
from keras_transfer import outputs, plots, pretrain, repeats, report as report_lib
from keras_transfer import splits, weights


def log(message):
    print(f"[keras_transfer] {message}", flush=True)


def resolve_image_size(config, data):
    """`--image_size`, or the data's own resolution within the backbone's range."""
    spec = config.backbone
    if config.image_size:
        return config.image_size
    if data.native_size is None:
        return spec.default_size
    return max(spec.min_size, min(data.native_size, spec.default_size))


def load_data(config, role, classes, spec, examples_per_class):
    policy = folder_dataset.FolderPolicy(
        max_megapixels=config.max_megapixels,
        max_broken_fraction=config.max_broken_fraction,
        cache_dir=weights.cache_root(config), verbose=config.verbose)
    target = role == "target"
    return datasets.load_task(
        spec, classes, role=role, seed=config.seed,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction, examples_per_class=examples_per_class,
        tfds_data_dir=config.tfds_data_dir, folder_policy=policy,
        tfds_split=config.tfds_split if target else None,
        split_file_path=config.split_file if target else None,
    )


def _check_settings(config, image_size, unfreeze):
    """Checks that need TensorFlow or the data; raises before any writing."""
    if config.phase in ("fine_tune", "both") or config.base_layer != "top":
        base = model_lib.cut_base(config.backbone, config.backbone.build(image_size),
                                  config.base_layer)
    if config.phase in ("fine_tune", "both"):
        model_lib.check_unfreeze(config.backbone, unfreeze, base)


def _phase_one_result(config):
    """The metrics of the run whose feature-extraction result
    `--phase=fine_tune` continues (None for other phases)."""
    if config.phase != "fine_tune":
        return None
    state = outputs.check_output_dir(config.output_dir or "", "fine_tune")
    if state == "resume":
        interrupted = outputs.read_json(os.path.join(config.output_dir, outputs.CONFIG_FILE))
        raise outputs.OutputDirError(
            f"output_dir holds an interrupted run (phase={interrupted.get('phase')}); run "
            "its own command again to resume it, fine-tuning included. "
            f"Received: output_dir={config.output_dir!r}")
    if state != "continue":
        raise outputs.OutputDirError(
            "phase=fine_tune starts from a feature-extraction result: pass the "
            "--output_dir of a run that has one, or use --phase=both. "
            f"Received: output_dir={config.output_dir!r}"
        )
    return outputs.read_json(os.path.join(config.output_dir, outputs.METRICS_FILE))


def _summary(config, data, resolved, image_size, unfreeze, output_dir, replicas,
             global_batch):
    log(f"model {config.model}, phase {config.phase}, image size {image_size}")
    log(f"dataset {data.name}: classes {', '.join(data.class_names)}; "
        f"split sizes {data.split_sizes()}")
    for line in data_summary.console_lines(data, config.class_weight):
        log(line)
    log(f"weights {config.weights} -> {resolved.kind}: {resolved.detail}")
    if config.phase in ("fine_tune", "both"):
        log(f"fine-tuning unfreezes {unfreeze!r} (--unfreeze={config.unfreeze})")
    if config.phase != "pretrain":
        log(f"the base ends at {config.base_layer!r}")
    log(f"strategy {config.strategy}: {replicas} replica(s), global batch {global_batch}")
    log(f"output folder {output_dir}")


def _versions():
    return {"keras_transfer": keras_transfer.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version()}


def _base_layer(config, resolved, previous):
    """`config.base_layer` resolved. `--phase=fine_tune` continues the model
    of an earlier phase-1 run (`previous`), so `auto` is that run's cut, which
    the phase-1 rule may have put elsewhere than the fine-tuning one."""
    if previous is not None and config.base_layer == "auto":
        return previous["config"]["base_layer"]
    return backbones.resolve_base_layer(config.backbone, config.base_layer, resolved.kind,
                                        config.phase)


def _dataset_identity(dataset):
    """A folder dataset by its resolved path: `clean`, `clean/` and its absolute
    path are one folder to a resumed run, a folder of that name elsewhere is not."""
    return os.path.realpath(dataset) if config_lib.is_folder_spec(dataset) else dataset


def _prepare(config, strategy, writes):
    """Loads the data and checks every setting; creates the output folder last.

    On a multi-worker worker that is not the chief (`writes` False) the
    outputs go to a scratch folder that `run` removes; the chief's folder
    (`config.output_dir`) is where every worker reads backups from.
    """
    data = load_data(config, "target", config.classes, config.dataset, config.examples_per_class)
    image_size = resolve_image_size(config, data)
    resolved = weights.resolve(config, image_size)
    unfreeze = backbones.resolve_unfreeze(config.unfreeze, resolved.kind)
    previous = _phase_one_result(config)
    # From here on the cut and the rate are concrete: the feature cache, the
    # baseline, the report and re-export all read them from the config.
    config = dataclasses.replace(
        config, base_layer=_base_layer(config, resolved, previous),
        fine_tune_learning_rate=config.fine_tune_rate_for(resolved.kind),
        dataset=_dataset_identity(config.dataset))
    _check_settings(config, image_size, unfreeze)
    if writes:
        output_dir, state = outputs.create_output_dir(config)
    else:
        output_dir, state = distribute.worker_scratch_dir(strategy, config.output_dir), "worker"
        shutil.rmtree(output_dir, ignore_errors=True)
        os.makedirs(output_dir)
    run_config = {**config.to_dict(), "image_size": image_size, "output_dir": output_dir,
                  "unfreeze_resolved": unfreeze}
    if previous is not None:
        outputs.check_compatible(previous["config"], run_config, config.output_dir)
    if state == "resume":
        interrupted = outputs.read_json(os.path.join(output_dir, outputs.CONFIG_FILE))
        outputs.check_compatible(interrupted, run_config, output_dir,
                                 outputs.resume_keys(interrupted, run_config))
        log(f"resuming the interrupted run in {output_dir}: finished phases are kept, "
            "the interrupted one continues from its last completed epoch")
    outputs.write_json(os.path.join(output_dir, outputs.CONFIG_FILE), run_config)
    data_summary.write_report(output_dir, data)
    return config, data, image_size, resolved, output_dir, run_config, previous, state


def pretrain_source_if_needed(config, resolved, ctx):
    """Pretrains and caches the source-task base unless the cache has it."""
    if resolved.kind != "source" or os.path.isfile(resolved.load):
        return None
    task = resolved.source_task
    source = load_data(config, "source", tuple(task["classes"]) if task["classes"] else None,
                   task["dataset"], config.source_examples_per_class)
    for line in folder_dataset.summary_lines(source.report) if source.report else ():
        log(f"source task: {line}")
    log(f"pretraining the base on the source task {source.name} "
        f"({', '.join(source.class_names)}), {config.pretrain_epochs} epoch(s)")
    return pretrain.pretrain_source_base(
        source, resolved.load, config=config, strategy=ctx["strategy"],
        image_size=ctx["image_size"], global_batch=ctx["global_batch"],
        writes=ctx["writes"], scratch=os.path.join(ctx["output_dir"], "source_pretrain"))


def _pretrain_phase(config, data, ctx):
    """`--phase=pretrain`: the whole network from scratch; saves the base.
    Returns an `experiment.SeedOutcome`."""
    classifier, result = pretrain.train_from_scratch(
        "pretrain", data, config=config, strategy=ctx["strategy"],
        image_size=ctx["image_size"], global_batch=ctx["global_batch"],
        epochs=config.pretrain_epochs, learning_rate=config.scratch_learning_rate,
        output_dir=ctx["output_dir"], class_weight=ctx["class_weight"],
        backup_root=ctx["backup_root"], writes=ctx["writes"])
    path = os.path.join(ctx["output_dir"], pretrain.BASE_WEIGHTS_FILE)
    pretrain.save_base_weights(classifier, path)
    log(f"base weights saved to {path} (use them with --weights=PATH)")
    log("evaluating on the test split")
    final = evaluate.evaluate(classifier, ctx["test_data"], data.class_names, config.verbose)
    result.test = evaluate.summary(final[0])
    return experiment.SeedOutcome(seed=config.seed, classifier=classifier, phases=[result],
                                  final=final)


def _set_precision_policy(config):
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")


def run(config):
    """Runs `config` end to end; returns the metrics dict written to metrics.json."""
    started = time.time()
    if config.strategy == "mirrored":
        distribute.configure_cpu_replicas(config.cpu_replicas)
    # Before any other TensorFlow op: a multi-worker strategy sets up the
    # cluster's collectives when it is created.
    strategy = distribute.make_strategy(config.strategy, config.cpu_replicas)
    writes = distribute.is_chief(strategy)
    config, data, image_size, resolved, output_dir, run_config, previous, state = _prepare(
        config, strategy, writes)
    try:
        return _run(config, strategy, data, image_size, resolved, output_dir, run_config,
                    previous, state, started)
    except distribute.CLUSTER_ERRORS as error:
        if config.strategy != "multi_worker":
            raise
        raise distribute.StrategyError(distribute.cluster_failure_message(error)) from None
    finally:
        if not writes:
            shutil.rmtree(output_dir, ignore_errors=True)


def _run(config, strategy, data, image_size, resolved, output_dir, run_config, previous,
         state, started):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        # Same seed, same ops, same order: bit-identical weights run to run.
        tf.config.experimental.enable_op_determinism()
    previous_policy = keras.mixed_precision.global_policy()
    _set_precision_policy(config)
    try:
        ctx = {"strategy": strategy, "image_size": image_size, "output_dir": output_dir,
               "backup_root": config.output_dir or output_dir, "writes": state != "worker",
               "unfreeze": run_config["unfreeze_resolved"],
               "global_batch": config.batch_size * strategy.num_replicas_in_sync,
               "class_weight": splits.class_weights(data.train.labels, data.num_classes)
               if config.class_weight == "balanced" else None}
        _summary(config, data, resolved, image_size, ctx["unfreeze"], output_dir,
                 strategy.num_replicas_in_sync, ctx["global_batch"])
        source_result = pretrain_source_if_needed(config, resolved, ctx)
        ctx["test_data"] = pretrain.datasets_for(data, config, image_size,
                                                 ctx["global_batch"])[2]
        if config.phase == "pretrain":
            outcome = _pretrain_phase(config, data, ctx)
            rows = [repeats.scores_of(outcome)]
        else:
            outcome, rows = repeats.run(config, ctx, lambda seed_config, seed_ctx: (
                experiment.train_seed(seed_config, data, resolved, seed_ctx, previous, log)),
                log)
        classifier, phases = outcome.classifier, outcome.phases
        report, labels, probabilities = outcome.final
        timings = {"source_pretrain": source_result.seconds} if source_result else {}
        timings.update({phase.name: phase.seconds for phase in phases})
        timings["evaluate"] = report["seconds"]
        log(f"test accuracy {report['accuracy']:.4f}, macro F1 {report['f1']:.4f} "
            f"on {report['examples']} test images")
        if report.get("non_finite_outputs"):
            # report.md says so too; a console that ends in a plain accuracy hides it.
            log(f"warning: the model outputs NaN for {report['non_finite_outputs']} of "
                f"{report['examples']} test images: its training diverged (try a lower "
                "--learning_rate or --fine_tune_learning_rate); its export answers NaN")
        fingerprint = model_lib.weights_fingerprint(classifier)
        log(f"final weights fingerprint {fingerprint}")
        metrics = {
            "config": run_config,
            "weights": resolved.to_dict(),
            "dataset": data_summary.metrics_entry(data),
            "strategy": {"name": config.strategy, "replicas": strategy.num_replicas_in_sync,
                         "global_batch_size": ctx["global_batch"]},
            "source_pretrain": source_result.to_dict() if source_result else None,
            "phases": {phase.name: phase.to_dict() for phase in phases},
            "test": report,
            "class_names": list(data.class_names),
            "weights_fingerprint": fingerprint,
            "versions": _versions(),
        }
        metrics.update(repeats.entries(outcome, rows, log))
        if outcome.baseline:
            timings["baseline"] = outcome.baseline["phases"]["scratch"]["seconds"]
        outputs.write_history_csv(os.path.join(output_dir, "history.csv"), phases)
        metrics["plots"] = plots.write_run_plots(
            output_dir, phases, report, labels, probabilities,
            evaluate.test_images(data, image_size), f"{config.model} on {data.name}")

        resumed = {phase.name: phase.resumed_from_epoch for phase in phases
                   if phase.resumed_from_epoch is not None}
        if source_result and source_result.resumed_from_epoch is not None:
            resumed["source_pretrain"] = source_result.resumed_from_epoch
        metrics["resumed"] = ({"from_epoch": resumed} if state == "resume" or resumed
                              else None)
        if not ctx["writes"]:
            return metrics  # A worker: the chief exports and writes the results.
        metrics["export"] = None
        if config.export:
            export_start = time.time()
            path = export.export_model(classifier, os.path.join(output_dir, "export"),
                                       data.class_names, image_size=image_size,
                                       channels=data.channels,
                                       card=model_card.from_metrics(metrics),
                                       tflite=config.export_tflite,
                                       max_megapixels=config.max_megapixels)
            timings["export"] = round(time.time() - export_start, 2)
            log(f"SavedModel exported to {path}")
            metrics["export"] = {"path": path, "version": int(os.path.basename(path))}
        else:
            log("no SavedModel (--noexport); python -m keras_transfer.export "
                f"--run_dir={output_dir} writes one from the best checkpoint")
        timings["total"] = round(time.time() - started, 2)
        metrics["timings"] = timings
        outputs.write_json(os.path.join(output_dir, outputs.METRICS_FILE), metrics)
        log(f"metrics written to {os.path.join(output_dir, outputs.METRICS_FILE)}")
        report_lib.write_report(os.path.join(output_dir, report_lib.REPORT_FILE), metrics)
        log(f"report written to {os.path.join(output_dir, report_lib.REPORT_FILE)}")
        # The run is complete: its per-epoch backups (weights and optimizer
        # slots of every phase) are of no further use.
        outputs.remove_backups(output_dir)
        return metrics
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
