"""A folder of your own, offline: what each route reaches on it.

`python benchmarks/own_folder.py [--quick]` renders a folder of three easy
classes (filled circles, squares and triangles of random size, position,
angle and colour on a noisy background: `render_shapes`), then trains on it
with each offline route a new user has, as that user would type it, one
process per run: the network from scratch (`--weights=none`), the same with
augmentation, transfer from the embedded digits (`--source_dataset=digits`,
a labelled source of another domain), and an autoencoder base trained on the
folder's training images and 1,000 more shapes without labels
(`--weights=autoencoder --unlabeled_data=FOLDER`). Each run's test accuracy and macro F1
sit beside the majority class's share of the test split (the simplest
alternative: always answer the largest class), with the run's own warnings.

Runs are kept under `--work_dir` (a run that finished is not run again), and
the table is written into RESULTS.md between this script's markers.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table  # noqa: E402

BEGIN = "<!-- benchmarks/own_folder.py: begin (generated) -->"
END = "<!-- benchmarks/own_folder.py: end -->"
SHAPES = ("circle", "square", "triangle")


def render_shapes(root, per_class, size, seed=0):
    """Writes `per_class` PNGs of each shape under `root/<shape>/`."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for name in SHAPES:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for index in range(per_class):
            background = rng.integers(0, 256, 3)
            noise = rng.normal(0, 20, (size, size, 3))
            image = Image.fromarray(np.clip(background + noise, 0, 255).astype("uint8"))
            radius = rng.uniform(0.15, 0.35) * size
            x, y = rng.uniform(radius, size - radius, 2)
            # A colour far from the background's, so every shape is visible.
            fill = tuple(int(v) for v in (255 - background + rng.integers(-60, 60, 3)) % 256)
            draw = ImageDraw.Draw(image)
            if name == "circle":
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill)
            else:
                corners = 4 if name == "square" else 3
                start = rng.uniform(0, 2 * np.pi)
                draw.polygon([(x + radius * np.cos(start + 2 * np.pi * k / corners),
                               y + radius * np.sin(start + 2 * np.pi * k / corners))
                              for k in range(corners)], fill=fill)
            image.save(os.path.join(root, name, f"{index:03d}.png"))


# A longer from-scratch run: 24 epochs, none cut short by early stopping.
LONGER = ["--weights=none", "--augment=flip,rotation,zoom", "--fine_tune_epochs=22",
          "--early_stopping_patience=0"]
# (what the table calls it, images a class, flags), as a user would type them.
ROUTES = (
    ("`--weights=none` (from scratch, the defaults)", 60, ["--weights=none"]),
    # UNLABELLED: shapes of the same kind without labels, beside the folder.
    ("`--weights=autoencoder --unlabeled_data=FOLDER` (1,000 shapes without labels)", 60,
     ["--weights=autoencoder", "--unlabeled_data={unlabelled}"]),
    ("`--weights=none`, augmentation, 24 epochs", 60, LONGER),
    ("`--source_dataset=digits` (transfer from digits 0-9)", 60,
     ["--weights=auto", "--source_dataset=digits", "--source_classes=0,1,2,3,4,5,6,7,8,9"]),
    ("`--weights=none`, augmentation, 24 epochs", 300, LONGER),
)
UNLABELLED = 1000


def _run(flags, folder, output_dir, cache_dir, common):
    metrics_path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        command = [sys.executable, "-m", "keras_transfer.main", f"--dataset={folder}",
                   f"--output_dir={output_dir}", f"--cache_dir={cache_dir}",
                   "--noexport", "--verbose=2", *common, *flags]
        log_path = f"{output_dir}.log"
        with open(log_path, "w") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode:
            raise SystemExit(f"{' '.join(command)} failed; see {log_path}")
    with open(metrics_path) as handle:
        metrics = json.load(handle)
    with open(f"{output_dir}.log") as handle:
        warnings = [line.split("warning: ", 1)[1].split(":")[0].strip()
                    for line in handle if "] warning: " in line]
    return metrics, warnings


def _spread(values):
    return (f"{values[0]:.3f}" if len(values) == 1 else
            f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 images a class, one epoch a phase: a smoke run")
    parser.add_argument("--work_dir", default="/tmp/keras_transfer_own_folder")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seeds", default="0", help="seeds of every route (the folder "
                        "and its split stay the same; initialisation and shuffling change)")
    parser.add_argument("--routes", default=None, help="which routes to run, by their "
                        "places in the table from 0 (default: all); the others show the "
                        "seeds already run")
    parser.add_argument("--results", default=os.path.join(os.path.dirname(__file__),
                                                          "RESULTS.md"))
    args = parser.parse_args()
    chosen = (range(len(ROUTES)) if args.routes is None
              else [int(place) for place in args.routes.split(",")])
    work = os.path.join(args.work_dir, "quick" if args.quick else "full")
    common = [f"--image_size={args.size}"] + (
        ["--epochs=1", "--fine_tune_epochs=1", "--pretrain_epochs=1",
         "--min_steps_per_epoch=2"] if args.quick else [])
    started, rows = time.time(), []
    seeds = [int(seed) for seed in args.seeds.split(",")]
    for place, (label, per_class, flags) in enumerate(ROUTES):
        per_class = min(per_class, 20) if args.quick else per_class
        folder = os.path.join(work, f"shapes{args.size}-{per_class}")
        if not os.path.isdir(folder):
            render_shapes(folder, per_class, args.size)
        if any("{unlabelled}" in flag for flag in flags):
            pool = os.path.join(work, f"shapes{args.size}-unlabelled")
            if not os.path.isdir(pool):  # Another seed: none of the labelled images.
                render_shapes(pool, (20 if args.quick else UNLABELLED) // len(SHAPES),
                              args.size, seed=1)
            flags = [flag.replace("{unlabelled}", pool) for flag in flags]
        name = "_".join(os.path.basename(flag).strip("-").replace("=", "-").replace(",", "+")
                        for flag in flags)
        runs = []
        for seed in seeds:  # Seed 0's folders keep their first names.
            output_dir = os.path.join(work, f"{name}-{per_class}{f'-seed{seed}' * bool(seed)}")
            if place in chosen or os.path.exists(os.path.join(output_dir, "metrics.json")):
                runs.append(_run([*flags, f"--seed={seed}"], folder, output_dir,
                                 os.path.join(work, "cache"), common))
        if not runs:
            continue
        tests = [metrics["test"] for metrics, _ in runs]
        supports = [row["support"] for row in tests[0]["per_class"].values()]
        warnings = sorted({warning for _, said in runs for warning in said})
        rows.append((label, per_class, len(runs), _spread([t["accuracy"] for t in tests]),
                     _spread([t["f1"] for t in tests]),
                     f"{max(supports) / sum(supports):.3f}",
                     f"{np.mean([m['timings']['total'] for m, _ in runs]):.0f}",
                     "; ".join(warnings) or "none"))
    block = "\n".join([
        "## Your own folder, offline (benchmarks/own_folder.py)", "",
        f"`python benchmarks/own_folder.py{' --quick' if args.quick else ''}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{(time.time() - started) / 60:.0f} minutes (runs already finished under "
        "--work_dir are read, not rerun). A rendered folder of circles, squares and "
        f"triangles at {args.size} px (train / validation / test 70 / 10 / 20 %), VGG16, "
        "the default settings otherwise; mean (and standard deviation) over the seeds of "
        f"{args.seeds} each route has run; `largest class`: the test accuracy of always "
        "answering it.", "",
        table.markdown(("route", "images a class", "seeds", "test accuracy", "macro F1",
                        "largest class", "seconds a run", "the runs' warnings"), rows)])
    print(block)
    if not args.quick:
        table.write_block(args.results, BEGIN, END, block)


if __name__ == "__main__":
    main()
