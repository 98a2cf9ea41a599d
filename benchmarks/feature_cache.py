"""Phase 1 with and without recorded base features, side by side.

    python benchmarks/feature_cache.py [--quick] [--model=vgg16] [--image_size=96]

Two feature-extraction runs of 10 epochs on the embedded digits task (target
classes 5-9, the base pretrained on 0-4 and cached beforehand so neither run
pays for it), identical but for `--feature_cache`: `off` runs the frozen base
on every batch of every epoch, `auto` runs it once and trains the head on the
recorded features. Prints the phase-1 time of each, the ratio, and both test
accuracies (equal: the paths compute the same thing).

Two more rows: `disk` trains the head on the features `auto` recorded,
streamed from disk every epoch (what `auto` does when they do not fit in
memory; recording is not repeated, so its time is training alone), and
`--augment=rotation --feature_cache_copies=3` records three rotated views of
each training image and draws one per epoch (its pixel-path equivalent costs
what `off` costs; its accuracy differs, augmentation changes the result).
"""

import argparse
import os
import tempfile

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)
from table import markdown


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 px")
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_TRANSFER_OFFLINE"] = "1"  # The digits source base, not ImageNet.
    from keras_transfer import config as config_lib
    from keras_transfer.run import execute as run

    size = 32 if args.quick else args.image_size
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        base = dict(model=args.model, phase="feature_extraction", epochs=args.epochs,
                    early_stopping_patience=0, image_size=size, verbose=0,
                    cache_dir=os.path.join(workdir, "cache"))
        # Pretrain and cache the source base first: both runs then reuse it.
        run.run(config_lib.RunConfig(**{**base, "epochs": 1, "feature_cache": "off"},
                                     output_dir=os.path.join(workdir, "warm")))
        variants = [
            ("`off`", dict(feature_cache="off")),
            ("`auto`", dict(feature_cache="auto")),
            ("`disk` (features recorded by `auto`)", dict(feature_cache="disk")),
            ("`auto`, `--augment=rotation --feature_cache_copies=3`",
             dict(feature_cache="auto", augment=("rotation",), feature_cache_copies=3)),
        ]
        for index, (label, settings) in enumerate(variants):
            metrics = run.run(config_lib.RunConfig(
                **base, **settings, output_dir=os.path.join(workdir, str(index))))
            rows.append((label, metrics["timings"]["feature_extraction"],
                         metrics["test"]["accuracy"]))
    print(f"\nPhase 1 of {args.model} at {size} px, {args.epochs} epochs, digits 5-9 "
          "(source base cached beforehand)\n")
    print(markdown(["--feature_cache", "phase 1 s", "speed-up", "test accuracy"],
                   [[label, f"{seconds:.1f}", f"{rows[0][1] / seconds:.1f}x",
                     f"{accuracy:.4f}"] for label, seconds, accuracy in rows]))


if __name__ == "__main__":
    main()
