"""What the benchmarks that compare ways of training on few labels share:
one `python -m keras_transfer.main` run per data set, backbone, label count,
seed and variant (its flags), rows kept as they finish (`main_runs`), and a
table of test accuracy per variant, mean over seeds, with the best of a
family of variants against training from scratch."""

import argparse
import dataclasses
import os

import numpy as np

import main_runs
import table


def grid_parser(description, name, datasets, shots_help):
    """The flags every variant benchmark takes; `name` names its work folder
    and rows file (`benchmarks/<name>[_quick].jsonl`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work_dir", default=f"/tmp/keras_transfer_{name}")
    parser.add_argument("--models", default="vgg16,resnet50")
    parser.add_argument("--dataset", default="digits", choices=sorted(datasets))
    parser.add_argument("--shots", default=None, help=f"labels a class (default: {shots_help})")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", default=None, help="finished rows, one JSON line each "
                        f"(default: benchmarks/{name}[_quick].jsonl)")
    parser.add_argument("--results", default=os.path.join(os.path.dirname(__file__),
                                                          "RESULTS.md"))
    return parser


# --quick: one epoch a phase, a few steps an epoch.
QUICK_BUDGET = ("--epochs=1", "--fine_tune_epochs=1", "--pretrain_epochs=1",
                "--min_steps_per_epoch=5")


@dataclasses.dataclass(frozen=True)
class Grid:
    """What `run_grid` takes from a variant benchmark's parsed flags."""

    args: argparse.Namespace
    data_flags: list
    shots: list
    variants: dict
    work: str
    rows_path: str
    common: list


def grid_of(parser, name, datasets, variants, default_variants=None, quick_flags=()):
    """Parses the flags of `grid_parser` (and `--variants`, of `variants`,
    by default `default_variants` or all); `datasets` maps a data set to
    (its flags, its label counts). `--quick` takes VGG16, the first label
    count, seed 0 and `QUICK_BUDGET` plus `quick_flags`, and rows of their
    own."""
    parser.add_argument("--variants", default=",".join(default_variants or variants))
    args = parser.parse_args()
    data_flags, default_shots = datasets[args.dataset]
    shots = args.shots or default_shots
    chosen = args.variants.split(",")
    if [v for v in chosen if v not in variants]:
        parser.error(f"variants must be of {list(variants)}")
    budget = []
    if args.quick:
        args.models, shots, args.seeds = "vgg16", shots.split(",")[0], "0"
        budget = [*QUICK_BUDGET, *quick_flags]
    work = os.path.join(args.work_dir, "quick" if args.quick else "full")
    os.makedirs(work, exist_ok=True)
    return Grid(
        args=args, data_flags=data_flags, shots=[int(n) for n in shots.split(",")],
        variants={v: variants[v] for v in chosen}, work=work,
        rows_path=args.rows or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            f"{name}{'_quick' if args.quick else ''}.jsonl"),
        common=[f"--cache_dir={os.path.join(work, 'cache')}", "--noexport", *budget])


def run_grid_of(grid, row_of, **changes):
    """`run_grid` over `grid` (`changes`: other `shots` or `variants`)."""
    args = grid.args
    settings = dict(work=grid.work, rows_path=grid.rows_path, dataset=args.dataset,
                    models=args.models.split(","), shots=grid.shots,
                    seeds=[int(s) for s in args.seeds.split(",")], variants=grid.variants,
                    flags=grid.data_flags, common=grid.common, row_of=row_of)
    return run_grid(**{**settings, **changes})


def mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def cell(value, form="{:.3f}"):
    return "n/a" if value is None else form.format(value)


def row_key(row):
    """(data set, backbone, label count, seed, variant): one run's row."""
    return (row.get("dataset", "digits"), row["model"], row["shots"], row["seed"],
            row["variant"])


def run_name(dataset, model, count, seed, variant):
    """The run's folder (and log) name under the grid's work folder."""
    # Digits' folders keep their first names, so earlier invocations' runs are found.
    prefix = "" if dataset == "digits" else f"{dataset}-"
    return f"{prefix}{model}-{count}-{seed}-{variant}"


def run_grid(*, work, rows_path, dataset, models, shots, seeds, variants, flags, common,
             row_of):
    """Runs every (seed, model, label count, variant) not in the rows yet;
    `variants` maps a name to its flags, `flags` are every run's (the data
    set's), `row_of(metrics, key)` makes the row. Returns all the rows."""
    done = {row_key(row) for row in main_runs.read_rows(rows_path)}
    for seed in seeds:
        for model in models:
            for count in shots:
                for variant, variant_flags in variants.items():
                    key = (dataset, model, count, seed, variant)
                    if key in done:
                        continue
                    name = run_name(*key)
                    metrics = main_runs.main_run(os.path.join(work, name), [
                        f"--model={model}", f"--examples_per_class={count}",
                        f"--seed={seed}", *flags, *variant_flags, *common],
                        os.path.join(work, f"{name}.log"))
                    row = {"dataset": dataset, "model": model, "shots": count, "seed": seed,
                           "variant": variant, "accuracy": metrics["test"]["accuracy"],
                           "f1": metrics["test"]["f1"], **row_of(metrics)}
                    main_runs.append_row(rows_path, row)
    # Read again: an invocation beside this one (another model or seed) may
    # have added rows since, and the tables are written from what is returned.
    return main_runs.read_rows(rows_path)


def _by_row(rows):
    """{(data set, backbone, label count): {variant: its rows}}."""
    groups = {}
    for row in rows:
        groups.setdefault((row.get("dataset", "digits"), row["model"], row["shots"]),
                          {}).setdefault(row["variant"], []).append(row)
    return groups


def _seeds_of(by_variant, variants):
    """The seeds every one of `variants` has rows for."""
    if not variants:
        return set()
    return set.intersection(*[{r["seed"] for r in by_variant.get(v, [])} for v in variants])


def _mean_on(by_variant, variant, seeds):
    return mean([r["accuracy"] for r in by_variant.get(variant, []) if r["seed"] in seeds])


def accuracy_table(rows, variants, family):
    """Test accuracy per variant (mean over the seeds all of `variants`
    have) for each data set, backbone and label count, and the best variant
    whose name starts with `family` against `scratch`."""
    lines = []
    for (dataset, model, shots), by_variant in sorted(_by_row(rows).items()):
        # Side by side on the same seeds: those every variant of the row has
        # (a benchmark stopped mid-seed has some variants one seed ahead).
        paired = _seeds_of(by_variant, [v for v in variants if v in by_variant])
        means = {v: _mean_on(by_variant, v, paired) for v in variants}
        members = {v: m for v, m in means.items() if v.startswith(family) and m is not None}
        best = max(members, key=members.get) if members else None
        lift = (None if best is None or means.get("scratch") is None
                else members[best] - means["scratch"])
        lines.append((dataset, model, shots, len(paired), *[cell(means[v]) for v in variants],
                      best or "n/a", cell(lift, "{:+.3f}")))
    return table.markdown(("data", "model", "labels a class", "seeds", *variants,
                           f"best {family}*", f"best {family}* - scratch"), lines)


def variants_beside(rows, others, beside):
    """Each of the variants `others` (tried on fewer seeds than the main
    table's) beside the variants `beside`, all on the seeds that variant has
    and they have too."""
    lines = []
    for (dataset, model, shots), by_variant in sorted(_by_row(rows).items()):
        for variant in [v for v in others if v in by_variant]:
            seeds = _seeds_of(by_variant, [variant, *[v for v in beside if v in by_variant]])
            lines.append((dataset, model, shots, variant, len(seeds),
                          cell(_mean_on(by_variant, variant, seeds)),
                          *[cell(_mean_on(by_variant, v, seeds)) for v in beside]))
    return table.markdown(("data", "model", "labels a class", "variant", "seeds",
                           "its test accuracy", *beside), lines)
