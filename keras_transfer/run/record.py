"""What a finished run records in `metrics.json` (its keys: `keras_transfer/schema.py`)."""

from keras_transfer import schema
from keras_transfer.data import summary as data_summary
from keras_transfer.log import logger
from keras_transfer.models import classifier as model_lib
from keras_transfer.run import repeats
from keras_transfer.serving import model_card


def _timings(outcome, source):
    timings = {}
    if source and source.waited_seconds:  # For another run pretraining the same base.
        timings["source_wait"] = source.waited_seconds
    if source and source.phase:
        timings["source_pretrain"] = source.phase.seconds
    timings.update({phase.name: phase.seconds for phase in outcome.phases})
    timings["evaluate"] = outcome.final.report["seconds"]
    if outcome.baseline:
        timings["baseline"] = outcome.baseline["phases"]["scratch"]["seconds"]
    return timings


def _resumed(state, outcome, source):
    """Which phases continued a killed run's backup, and from which epoch."""
    resumed = {phase.name: phase.resumed_from_epoch for phase in outcome.phases
               if phase.resumed_from_epoch is not None}
    if source and source.phase and source.phase.resumed_from_epoch is not None:
        resumed["source_pretrain"] = source.phase.resumed_from_epoch
    return {"from_epoch": resumed} if state == "resume" or resumed else None


def _distillation(outcome):
    """The distillation entry, with the share of the teacher–scratch gap in
    test accuracy the student closed (with `--baseline`; negative when it
    lost to scratch, None when the teacher is no better than scratch)."""
    entry = outcome.distillation
    if entry is None:
        return None
    student = outcome.final.report["accuracy"]
    entry = {**entry, "student": {**entry["student"], "test": {
        key: outcome.final.report[key] for key in repeats.SCORES}}}
    teacher = entry["teacher"]["test"]["accuracy"]
    if outcome.baseline:
        scratch = outcome.baseline["test"]["accuracy"]
        entry["scratch_test_accuracy"] = scratch
        entry["gap_closed"] = (None if teacher <= scratch
                               else round((student - scratch) / (teacher - scratch), 4))
    agreement = entry["agreement"]
    logger.info(f"student test accuracy {student:.4f}, teacher {teacher:.4f}"
                + ("" if agreement is None else
                   f"; they agree on {agreement:.1%} of the test images"))
    return entry


def record_of(prepared, ctx, outcome, rows, source, base_probe=None):
    """The `schema.RunRecord` of a trained run, before its plots and export.

    Logs the final weights' fingerprint and (with a baseline) transfer
    against scratch.
    """
    fingerprint = model_lib.weights_fingerprint(outcome.classifier)
    logger.info(f"final weights fingerprint {fingerprint}")
    config = prepared.config
    return schema.RunRecord(
        config=prepared.run_config,
        weights=prepared.resolved.to_dict(),
        dataset=data_summary.metrics_entry(prepared.data),
        strategy={"name": config.strategy, "replicas": ctx.strategy.num_replicas_in_sync,
                  "global_batch_size": ctx.global_batch},
        source_pretrain=source.phase.to_dict() if source and source.phase else None,
        base_probe=base_probe,
        phases={phase.name: phase.to_dict() for phase in outcome.phases},
        test=outcome.final.report,
        class_names=tuple(prepared.data.class_names),
        weights_fingerprint=fingerprint,
        versions=model_card.versions(),
        **repeats.entries(outcome, rows),
        distillation=_distillation(outcome),
        tasks=([task.to_dict() for task in outcome.multitask.tasks]
               if outcome.multitask else None),
        resumed=_resumed(prepared.state, outcome, source),
        timings=_timings(outcome, source),
    )
