"""The checks of `--weights=autoencoder` that need no data
(`config.RunConfig` runs them with its others)."""

from keras_transfer.checks import require, validate_choice, validate_range

AUTOENCODER = "autoencoder"
# What the encoder learns to undo: nothing (`plain`), Gaussian noise
# (`denoising`, `--noise_stddev` of the 0-1 range) or hidden patches
# (`masked`, `--mask_ratio` of them).
OBJECTIVES = ("plain", "denoising", "masked")


def pretrains_autoencoder(config):
    """Whether the run trains an autoencoder's encoder as its base."""
    return config.weights == AUTOENCODER


def validate(config):
    validate_choice("autoencoder", config.autoencoder, OBJECTIVES)
    validate_range("noise_stddev", config.noise_stddev, 0.0, low_inclusive=False)
    validate_range("mask_ratio", config.mask_ratio, 0.0, 0.95, low_inclusive=False)
    require(config.weights != AUTOENCODER or config.phase not in ("pretrain", "distill"),
            f"weights=autoencoder is a base for the transfer phases; phase={config.phase} "
            "trains its network from random weights; the autoencoder's base is cached, "
            "and --weights=PATH loads it (metrics.json's weights.load names the file). "
            "Received: weights=autoencoder, "
            f"phase={config.phase!r}")
