"""`--semi_supervised=self_training`: the supervised model labels the
unlabelled pool once (its confident answers only), then trains on the
labelled images and those pseudo-labelled ones; for `--self_training_rounds`
rounds, each round's model labelling the pool for the next.

Each round's pseudo-labels come from the model as the round starts, in one
exact pass over unaugmented images, so a run resumed mid-round (which
restores the earlier rounds' best weights first) labels the pool as the
killed run did.
"""

import dataclasses
from typing import Optional

import numpy as np

from keras_transfer.data import pipeline, sources
from keras_transfer.evaluation import metrics as evaluate
from keras_transfer.log import logger
from keras_transfer.training import semi_supervised


@dataclasses.dataclass(frozen=True)
class PseudoLabels:
    """The pool's confident images with their pseudo-labels, and what they
    were: the share of the pool kept and (where the pool's labels are
    known) how many of them are right."""

    examples: sources.Examples
    share: float
    accuracy: Optional[float] = None


def _probabilities(classifier, examples, data, config, ctx, label):
    """(probabilities, indices) of `examples` in one exact pass."""
    dataset = pipeline.make_dataset(examples, num_classes=data.num_classes,
                                    batch_size=ctx.global_batch, image_size=ctx.image_size,
                                    channels=data.channels, exact=True)
    _, probabilities, indices = evaluate.predict(classifier, dataset, config.verbose, label)
    return probabilities, indices


def pseudo_label(classifier, data, config, ctx, round_number):
    """`PseudoLabels` of the pool by `classifier` as it is now: its answers at
    `--confidence_threshold` times its mean confidence on the labelled
    training images, or above (the relative threshold FixMatch here uses)."""
    pool, known = semi_supervised.pool_of(data, config)
    probabilities, indices = _probabilities(
        classifier, pool, data, config, ctx, f"pseudo-labelling the pool (round {round_number})")
    labelled, _ = _probabilities(classifier, data.train, data, config, ctx,
                                 "the labelled images' confidence")
    threshold = config.resolved_confidence_threshold * float(labelled.max(axis=1).mean())
    confident = probabilities.max(axis=1) >= threshold
    chosen = indices[confident]  # An image that cannot be read now is left out.
    answers = probabilities[confident].argmax(axis=1)
    kept = pool.take(chosen)
    examples = sources.Examples(labels=answers.astype(np.int64), images=kept.images,
                                files=kept.files)
    accuracy = (float(np.mean(answers == pool.labels[chosen])) if known and len(chosen)
                else None)
    labels = PseudoLabels(examples=examples, share=len(chosen) / max(1, len(pool)),
                          accuracy=accuracy)
    logger.info(f"self-training round {round_number}: {len(chosen):,} of {len(pool):,} "
                f"unlabelled images pseudo-labelled at confidence >= {threshold:.3f}"
                + ("" if accuracy is None else f", {accuracy:.1%} of them right"))
    return labels


def with_pseudo_labels(data, labels):
    """`data` whose training split has the pseudo-labelled images too."""
    return dataclasses.replace(data, train=sources.concatenate(data.train, labels.examples))


def recorded(result, labels):
    """The round's `PhaseResult` with its pseudo-labels' share and accuracy
    as every epoch's `mask_rate` and `pseudo_label_accuracy`, as FixMatch
    records them."""
    history = {**result.history, "mask_rate": [labels.share] * result.epochs_run}
    if labels.accuracy is not None:
        history["pseudo_label_accuracy"] = [labels.accuracy] * result.epochs_run
    return dataclasses.replace(result, history=history)
