"""Does transfer pay on few-shot targets? Our defaults against scratch and
the plain recipe, mean and spread over seeds.

    python benchmarks/transfer_quality.py [--quick] [--models=vgg16,resnet50]
        [--shots=5,10,20] [--seeds=3] [--sources=digits,fashion_mnist]

Target: digits 5-9 with 5, 10 or 20 training labels per class (the test split
is the same for every method and shot count of a seed). Sources: digits 0-4
(the embedded task) and Fashion-MNIST (Debian's dataset-fashion-mnist). Methods:
- scratch: the same network from random initialisation, all its layers
  trained on the target for the transfer runs' budget (epochs + fine-tune
  epochs) at the backbone's from-scratch learning rate;
- plain: the recipe in ../shared/DESIGN.md: the source-pretrained base frozen,
  a head at Adam 1e-3, then the whole base unfrozen at 1e-5;
- ours (head): our feature extraction alone (`--phase=feature_extraction`);
- ours (both): our default `--phase=both`.
Every run goes through `keras_transfer.run.run`, exactly what the CLI runs.
"""

import argparse
import dataclasses
import os
import statistics
import tempfile
import time

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)

METHODS = ("scratch", "plain", "ours (head)", "ours (both)")


def method_config(method, base):
    """The RunConfig of one method, from the shared settings in `base`."""
    if method == "scratch":  # What --baseline trains, as a run of its own.
        return dataclasses.replace(base, weights="auto", phase="pretrain",
                                   pretrain_epochs=base.epochs + base.fine_tune_epochs)
    if method == "plain":
        return dataclasses.replace(base, phase="both", learning_rate=1e-3,
                                   fine_tune_learning_rate=1e-5, unfreeze="all")
    if method == "ours (head)":
        return dataclasses.replace(base, phase="feature_extraction")
    return base


def run_one(config):
    from keras_transfer import run

    start = time.time()
    metrics = run.run(config)
    return metrics["test"]["accuracy"], time.time() - start


def summarise(values):
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, spread


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="vgg16, 10 labels per class, 1 seed, digits source only")
    parser.add_argument("--models", default="vgg16,resnet50")
    parser.add_argument("--shots", default="5,10,20")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sources", default="digits,fashion_mnist")
    parser.add_argument("--cache_dir", default=None,
                        help="source-base cache (default: a fresh temporary one)")
    args = parser.parse_args()
    if args.quick:
        args.models, args.shots, args.seeds, args.sources = "vgg16", "10", 1, "digits"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # ImageNet weights are not what is measured: never probe for them.
    os.environ["KERAS_TRANSFER_OFFLINE"] = "1"
    from keras_transfer import config as config_lib

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        cache_dir = args.cache_dir or os.path.join(workdir, "cache")
        for source in args.sources.split(","):
            for model in args.models.split(","):
                for shots in (int(s) for s in args.shots.split(",")):
                    scores = {method: [] for method in METHODS}
                    for seed in range(args.seeds):
                        base = config_lib.RunConfig(
                            model=model, examples_per_class=shots, seed=seed, verbose=0,
                            cache_dir=cache_dir, source_dataset=source,
                            source_classes=None if source == "digits" else
                            ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"))
                        for method in METHODS:
                            config = dataclasses.replace(
                                method_config(method, base),
                                output_dir=os.path.join(
                                    workdir, f"{source}-{model}-{shots}-{seed}-{method}"))
                            accuracy, seconds = run_one(config)
                            scores[method].append(accuracy)
                            print(f"{source:>13} {model:>9} {shots:>3} seed {seed} "
                                  f"{method:>12}: {accuracy:.3f} ({seconds:.0f} s)", flush=True)
                    rows.append((source, model, shots, {m: summarise(v) for m, v in scores.items()}))
    print(f"\nTest accuracy on digits 5-9, mean ± std over {args.seeds} seed(s)")
    print(f"{'source':>13} {'model':>9} {'shots':>5} " + " ".join(f"{m:>14}" for m in METHODS))
    for source, model, shots, summary in rows:
        cells = " ".join(f"{summary[m][0]:>8.3f} ± {summary[m][1]:.3f}" for m in METHODS)
        print(f"{source:>13} {model:>9} {shots:>5} {cells}")


if __name__ == "__main__":
    main()
