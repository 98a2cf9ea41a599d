"""The checks of `--phase=distill` and `--unlabeled_data` that need no data
(`config.RunConfig` runs them with its others; the teacher run itself is
read and checked against the data in `run/prepare.py`)."""

import os

from keras_transfer import autoencoder_checks, semi_supervised_checks
from keras_transfer.checks import require, validate_range

# `--unlabeled_data=rest`: the training split's images beyond
# `--examples_per_class`, their labels hidden from training.
REST = "rest"


def validate(config):
    if config.phase == "distill":
        require(config.teacher is not None,
                "phase=distill trains a student from a teacher: pass --teacher=RUN_DIR, the "
                "output folder of a finished run. Received: teacher=None")
        require(os.path.isdir(config.teacher),
                f"teacher must be the output folder of a finished run. "
                f"Received: teacher={config.teacher!r}")
        require(config.repeats == 1,
                f"phase=distill trains one student. Received: repeats={config.repeats}")
    else:
        require(config.teacher is None,
                f"teacher is the run phase=distill learns from. Received: "
                f"teacher={config.teacher!r}, phase={config.phase!r}")
    validate_range("temperature", config.temperature, 0.0, low_inclusive=False)
    validate_range("distill_alpha", config.distill_alpha, 0.0, 1.0)
    if config.unlabeled_data is not None:
        # Images without labels teach a student (from its teacher) or an
        # autoencoder (by reconstruction); no other phase can use them.
        require(config.phase == "distill" or autoencoder_checks.pretrains_autoencoder(config)
                or semi_supervised_checks.uses_unlabeled(config),
                "unlabeled_data is what phase=distill's student learns from its teacher, "
                "what an autoencoder reconstructs (--weights=autoencoder, or --phase=pretrain "
                "--pretrain_objective=autoencoder), or what --semi_supervised pseudo-labels. "
                f"Received: unlabeled_data={config.unlabeled_data!r}, phase={config.phase!r}, "
                f"weights={config.weights!r}")
        require(config.unlabeled_data == REST or os.path.isdir(config.unlabeled_data),
                f"unlabeled_data must be {REST!r} (the training images beyond "
                "--examples_per_class) or a folder of images. Received: "
                f"unlabeled_data={config.unlabeled_data!r}")
        # A class weight would fall on the student's unlabelled images by a
        # label they lack.
        require(config.class_weight == "none" or config.phase != "distill",
                "class_weight weighs images by their label's class, and unlabeled_data's "
                "images have none. Received: class_weight="
                f"{config.class_weight!r}, unlabeled_data={config.unlabeled_data!r}")
        require(config.unlabeled_data != REST or config.examples_per_class > 0,
                "unlabeled_data=rest is the training split beyond --examples_per_class, "
                "which keeps every image now. Received: examples_per_class=0")
