"""`--semi_supervised`: what fine-tuning and training from scratch fit in
place of the classifier alone (`run_phase`'s `fit_model` and `train_data`)
when unlabelled images join them."""

from keras_transfer import distill_checks
from keras_transfer.data import pipeline, two_streams
from keras_transfer.log import logger
from keras_transfer.training import fixmatch


def pool_of(data, config):
    """(unlabelled examples, whether their labels are known): `rest` keeps
    the labels it hides from training; a folder's images have none."""
    if config.unlabeled_data == distill_checks.REST:
        return data.rest, True
    return data.unlabeled, False


def fit_inputs(classifier, data, config, *, strategy, image_size, global_batch):
    """`run_phase` keywords that train `classifier` with FixMatch on the
    labelled split and the unlabelled pool; {} for other settings
    (self-training fits the classifier itself: `self_training.py`)."""
    if config.semi_supervised != "fixmatch":
        return {}
    pool, known = pool_of(data, config)
    labelled, _ = pipeline.training_datasets(data, config, image_size, global_batch)
    steps = int(labelled.cardinality())
    unlabelled = two_streams.unlabelled_batches(
        pool, num_classes=data.num_classes, known=known, image_size=image_size,
        batch_size=global_batch * config.unlabeled_ratio, seed=config.seed,
        augment=config.augment)
    threshold = config.resolved_confidence_threshold
    with strategy.scope():  # Its metrics' variables, as the optimizer's.
        model = fixmatch.FixMatchModel(
            classifier, num_classes=data.num_classes, threshold=threshold,
            weight=config.unlabeled_weight,
            warmup_steps=steps * config.unlabeled_warmup_epochs, labels_known=known)
    logger.info(f"fixmatch: {len(pool):,} unlabelled images, "
                f"{global_batch * config.unlabeled_ratio} a step beside {global_batch} "
                f"labelled, pseudo-labels at confidence >= {threshold:g} x the "
                f"mean confidence on the labelled batch, "
                f"their loss weighted {config.unlabeled_weight:g} after "
                f"{config.unlabeled_warmup_epochs} warm-up epoch(s)")
    return dict(fit_model=model, train_data=two_streams.two_streams(labelled, unlabelled),
                steps_per_execution=1)
