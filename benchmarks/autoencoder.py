"""Does autoencoder pretraining pay? Bases from unlabelled images against the
network from scratch and the supervised source base, side by side.

`python benchmarks/autoencoder.py [--quick]` trains, for each backbone, label
count and seed, one `python -m keras_transfer.main` run per variant on digits
5-9, as a user would type it:

- `scratch`: `--weights=none`, the simplest alternative;
- `source`: `--weights=source`, the supervised digits 0-4 base (our offline
  default), for reference;
- `ae_plain`, `ae_denoising`, `ae_masked`: `--weights=autoencoder` with that
  `--autoencoder`, on digits 0-4 without labels plus the whole target
  training split without labels (`--unlabeled_data=rest`);
- `ae_masked_source_only` (with `--variants`): the default objective without
  `rest`, the pool of digits 0-4 and the labelled target images alone (one
  autoencoder per seed and label count).

`--dataset=fashion_mnist` runs the Fashion-MNIST case instead: all ten
classes, 100 labels a class, the autoencoder on the whole training split
without labels (about 49,000 images; no source task shares the classes) for
one epoch (`--pretrain_epochs=1`: 1,500 steps), as `scratch` and `ae_masked`
(the default objective) by default.

The autoencoder with `rest` is one cached base per backbone, objective and
seed, shared by every label count. Each run's test accuracy and, for the
autoencoder runs, its linear probes (`metrics.json`'s `base_probe`: logistic
regression on the frozen features against a random base and PCA of the
pixels) are appended to `benchmarks/autoencoder.jsonl` as it finishes, so a
restart resumes where it stopped. The PCA probe depends on the data alone, so
the table computes it here, on the split each row's run trained on, with the
package's current probe: rows before 2026-12-02 recorded it standardised,
which whitened it into uselessness at 10 labels a class (`probe.pca_probe`).
The tables go into RESULTS.md between this script's markers; `--quick`
(VGG16, 5 labels, one seed, one epoch a phase) prints them only.

Target (issue 23): the best autoencoder base above scratch at every label
count on the mean of 3 seeds, for both backbones, and its linear probe above
both a random base and PCA of the same pixels.
"""

import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table  # noqa: E402
import variant_runs  # noqa: E402

BEGIN = "<!-- benchmarks/autoencoder.py: begin (generated) -->"
END = "<!-- benchmarks/autoencoder.py: end -->"
VARIANTS = {
    "scratch": ["--weights=none"],
    "source": ["--weights=source"],
    "ae_plain": ["--weights=autoencoder", "--autoencoder=plain", "--unlabeled_data=rest"],
    "ae_denoising": ["--weights=autoencoder", "--autoencoder=denoising",
                     "--unlabeled_data=rest"],
    "ae_masked": ["--weights=autoencoder", "--autoencoder=masked", "--unlabeled_data=rest"],
    "ae_masked_source_only": ["--weights=autoencoder", "--autoencoder=masked"],
}
DEFAULT_VARIANTS = "scratch,source,ae_plain,ae_denoising,ae_masked"
# The classes of each data set's target (None: the embedded default, 5-9).
TARGET_CLASSES = {"digits": None, "fashion_mnist": tuple(str(label) for label in range(10))}
# Per data set: the flags of every run, the label counts, the variants.
# Fashion-MNIST's autoencoder takes one epoch: its ~49,000 images are 1,500
# steps, seven times the digits' five epochs, and 14 minutes on 2 CPU cores.
DATASETS = {
    "digits": ([], "5,10,20", DEFAULT_VARIANTS),
    "fashion_mnist": (["--dataset=fashion_mnist",
                       "--classes=" + ",".join(TARGET_CLASSES["fashion_mnist"]),
                       "--pretrain_epochs=1"], "100", "scratch,ae_masked"),
}


def _probe(metrics):
    probe = {score["base"]: score["logistic_accuracy"]
             for score in metrics.get("base_probe") or []}
    return {"probe": probe or None,
            "pretrain_seconds": metrics["timings"].get("source_pretrain")}


@functools.lru_cache(maxsize=None)
def pca_of_the_pixels(dataset, seed, shots):
    """The PCA probe's accuracy on the target split a run of this data set,
    seed and label count trains and validates on (the runs' defaults)."""
    from keras_transfer import config as config_lib
    from keras_transfer.data import tasks
    from keras_transfer.run import probe

    config = config_lib.RunConfig(dataset=dataset, classes=TARGET_CLASSES[dataset], seed=seed,
                                  examples_per_class=shots)
    data = tasks.load_for(config, "target", config.classes, dataset, shots)
    return probe.pca_probe(data).logistic_accuracy


def probe_table(rows):
    """The logistic-regression probe's validation accuracy, mean over seeds:
    each autoencoder base beside the random base and PCA of the pixels."""
    groups = {}
    for row in rows:
        if row["probe"]:
            groups.setdefault((row.get("dataset", "digits"), row["model"], row["shots"]),
                              []).append(row)
    lines = []
    for (dataset, model, shots), group in sorted(groups.items()):
        cells = {}
        for row in group:
            cells.setdefault(row["variant"], []).append(row["probe"]["autoencoder base"])
            for base in ("random base", "supervised source base"):
                if base in row["probe"]:
                    cells.setdefault(base, []).append(row["probe"][base])
            cells.setdefault("PCA of the pixels", []).append(pca_of_the_pixels(
                row.get("dataset", "digits"), row["seed"], row["shots"]))
        names = sorted(cells, key=lambda n: (not n.startswith("ae_"), n))
        lines.append((dataset, model, shots, "; ".join(f"{n} {variant_runs.cell(variant_runs.mean(cells[n]))}"
                                                       for n in names)))
    return table.markdown(("data", "model", "labels a class", "logistic regression accuracy on the "
                           "frozen features (validation split)"), lines)


def main():
    parser = variant_runs.grid_parser(__doc__.split("\n\n")[0], "autoencoder", DATASETS,
                                      "5,10,20 on digits, 100 on fashion_mnist")
    parser.add_argument("--variants", default=None, help=f"of {', '.join(VARIANTS)} "
                        "(default: per data set)")
    args = parser.parse_args()
    data_flags, default_shots, default_variants = DATASETS[args.dataset]
    args.shots = args.shots or default_shots
    variants = (args.variants or default_variants).split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    if args.quick:
        args.models, args.shots, args.seeds = "vgg16", args.shots.split(",")[0], "0"
        variants = ["scratch", "ae_masked"]
    work = os.path.join(args.work_dir, "quick" if args.quick else "full")
    rows_path = args.rows or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          f"autoencoder{'_quick' if args.quick else ''}.jsonl")
    os.makedirs(work, exist_ok=True)
    budget = (["--epochs=1", "--fine_tune_epochs=1", "--pretrain_epochs=1",
               "--min_steps_per_epoch=5"] if args.quick else [])
    common = [f"--cache_dir={os.path.join(work, 'cache')}", "--noexport", *budget]
    started = time.time()
    rows = variant_runs.run_grid(
        work=work, rows_path=rows_path, dataset=args.dataset, models=args.models.split(","),
        shots=[int(n) for n in args.shots.split(",")],
        seeds=[int(s) for s in args.seeds.split(",")],
        variants={v: VARIANTS[v] for v in variants}, flags=data_flags, common=common,
        row_of=_probe)
    shown = [v for v in VARIANTS if v in {row["variant"] for row in rows}]
    block = "\n".join([
        "## Autoencoder pretraining (benchmarks/autoencoder.py)", "",
        f"`python benchmarks/autoencoder.py{' --quick' if args.quick else ''}`, finished "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({(time.time() - started) / 60:.0f}"
        " minutes this invocation; rows of earlier invocations are read from "
        "benchmarks/autoencoder.jsonl). Digits 5-9 (Fashion-MNIST: all ten classes), default "
        "settings otherwise (both phases, `--pretrain_epochs=5`; Fashion-MNIST: 1); `ae_*` are "
        "`--weights=autoencoder` bases on digits 0-4 without labels (Fashion-MNIST: none) and "
        "the whole target training split without labels (`--unlabeled_data=rest`). Test "
        "accuracy, mean over seeds:", "",
        variant_runs.accuracy_table(rows, shown, "ae_"), "",
        "Linear probes of the frozen bases before fine-tuning (`report.md`'s \"What the base "
        "learned\"), mean over seeds:", "",
        probe_table(rows)])
    print(block)
    if not args.quick:
        table.write_block(args.results, BEGIN, END, block)


if __name__ == "__main__":
    main()
