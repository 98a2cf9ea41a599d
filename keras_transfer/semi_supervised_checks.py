"""The checks of `--semi_supervised` that need no data (`config.RunConfig`
runs them with its others)."""

from keras_transfer.checks import require, validate_choice, validate_range

# `fixmatch`: pseudo-labels from a weak view of each unlabelled image, where
# confident, trained on a strong view of it (Sohn et al., 2020).
# `self_training`: the supervised model labels the pool once, the model
# trains on its confident labels too; for a few rounds.
SEMI_SUPERVISED = ("none", "fixmatch", "self_training")

# Each method's `--confidence_threshold` when none is given (relative to the
# model's mean confidence on labelled images). FixMatch keeps its paper's
# 0.95. Self-training labels the pool once a round with an unaugmented pass,
# so its confident labels are surer: at 0.8 it kept two thirds of the digits
# pool, 99.5 % right, and scored 0.944 on two seeds against 0.905 at 0.95
# (two rounds each; benchmarks/RESULTS.md, "Semi-supervised transfer").
DEFAULT_CONFIDENCE_THRESHOLD = {"fixmatch": 0.95, "self_training": 0.8}


def confidence_threshold(method, given):
    """The threshold a run with `--semi_supervised=method` uses: the one
    given, else the method's own default."""
    return given if given is not None else DEFAULT_CONFIDENCE_THRESHOLD.get(method)


def phase_epochs(config):
    """Phase 3's epochs (each self-training round's): `--semi_supervised_epochs`,
    else fine-tuning's. A FixMatch epoch is the labelled images' steps, so a
    pool hundreds of times larger is seen in part; a self-training round's
    epoch is a pass over every image it labelled."""
    if config.semi_supervised_epochs is None:
        return config.fine_tune_epochs
    return config.semi_supervised_epochs


def uses_unlabeled(config):
    return config.semi_supervised != "none"


def validate(config):
    validate_choice("semi_supervised", config.semi_supervised, SEMI_SUPERVISED)
    if config.confidence_threshold is not None:
        validate_range("confidence_threshold", config.confidence_threshold, 0.0, 1.0,
                       low_inclusive=False)
    validate_range("unlabeled_ratio", config.unlabeled_ratio, 1)
    validate_range("unlabeled_weight", config.unlabeled_weight, 0.0)
    validate_range("unlabeled_warmup_epochs", config.unlabeled_warmup_epochs, 0)
    validate_range("semi_supervised_warmup_epochs", config.semi_supervised_warmup_epochs, 0)
    validate_range("self_training_rounds", config.self_training_rounds, 1)
    if config.semi_supervised_epochs is not None:
        validate_range("semi_supervised_epochs", config.semi_supervised_epochs, 1)
    if not uses_unlabeled(config):
        return
    require(config.unlabeled_data is not None,
            f"semi_supervised={config.semi_supervised} learns from images without labels: "
            "pass --unlabeled_data=rest (the training images beyond --examples_per_class) "
            "or a folder. Received: unlabeled_data=None")
    # Fine-tuning and training from scratch see each image anew every step;
    # phase 1 trains a head on features recorded once, without views.
    trains_whole = config.phase in ("both", "fine_tune") or (
        config.weights == "none" and config.phase == "feature_extraction")
    # Self-training labels the pool with the fine-tuned model; from scratch
    # it would need a round after the scratch phase, not there yet.
    require(config.semi_supervised != "self_training" or config.phase in ("both",
                                                                        "fine_tune"),
            "semi_supervised=self_training labels the pool with the fine-tuned model: pass "
            f"--phase=both or --phase=fine_tune. Received: phase={config.phase!r}")
    require(config.semi_supervised != "self_training" or config.weights != "none",
            "semi_supervised=self_training runs after fine-tuning a pretrained base; "
            "--weights=none trains from scratch (use --semi_supervised=fixmatch there). "
            "Received: weights='none'")
    require(trains_whole,
            f"semi_supervised={config.semi_supervised} trains in fine-tuning (and from "
            "scratch, --weights=none): pass --phase=both or --phase=fine_tune. Received: "
            f"phase={config.phase!r}, weights={config.weights!r}")
    require(config.class_weight == "none",
            "class_weight weighs images by their label's class, and unlabeled_data's "
            f"images have none. Received: class_weight={config.class_weight!r}, "
            f"semi_supervised={config.semi_supervised!r}")
