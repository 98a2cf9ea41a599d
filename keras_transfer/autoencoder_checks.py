"""The checks of `--weights=autoencoder` and `--phase=pretrain
--pretrain_objective=autoencoder` that need no data (`config.RunConfig`
runs them with its others)."""

from keras_transfer.checks import require, validate_choice, validate_range

AUTOENCODER = "autoencoder"
# What the encoder learns to undo: nothing (`plain`), Gaussian noise
# (`denoising`, `--noise_stddev` of the 0-1 range) or hidden patches
# (`masked`, `--mask_ratio` of them).
OBJECTIVES = ("plain", "denoising", "masked")
# What `--phase=pretrain` trains the base on: the labels, or reconstruction.
PRETRAIN_OBJECTIVES = ("supervised", AUTOENCODER)


def pretrains_autoencoder(config):
    """Whether the run trains an autoencoder's encoder as its base."""
    return config.weights == AUTOENCODER or pretrains_base_as_autoencoder(config)


def pretrains_base_as_autoencoder(config):
    """`--phase=pretrain --pretrain_objective=autoencoder`: the base is an
    autoencoder's encoder on the dataset's own images, saved for
    `--weights=PATH`."""
    return config.phase == "pretrain" and config.pretrain_objective == AUTOENCODER


def validate(config):
    validate_choice("autoencoder", config.autoencoder, OBJECTIVES)
    validate_range("noise_stddev", config.noise_stddev, 0.0, low_inclusive=False)
    validate_range("mask_ratio", config.mask_ratio, 0.0, 0.95, low_inclusive=False)
    validate_choice("pretrain_objective", config.pretrain_objective, PRETRAIN_OBJECTIVES)
    require(config.pretrain_objective == "supervised" or config.phase == "pretrain",
            "pretrain_objective chooses what phase=pretrain trains the base on; the "
            "transfer phases take an autoencoder's base with --weights=autoencoder. "
            f"Received: pretrain_objective={config.pretrain_objective!r}, "
            f"phase={config.phase!r}")
    require(config.weights != AUTOENCODER or config.phase not in ("pretrain", "distill"),
            f"weights=autoencoder is a base for the transfer phases; phase={config.phase} "
            "trains its network from random weights (phase=pretrain: pass "
            "--pretrain_objective=autoencoder). Received: weights=autoencoder, "
            f"phase={config.phase!r}")
