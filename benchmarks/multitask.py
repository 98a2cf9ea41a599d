"""Does multi-task transfer pay? The source task and the target trained
together against sequential transfer and training from scratch, side by side.

`python benchmarks/multitask.py [--quick]` trains, for each backbone, label
count and seed, one `python -m keras_transfer.main` run per variant on
digits 0-4 (all labels, the source task) and 5-9 (the target), as a user
would type it:

- `scratch`: the target alone, `--weights=none`, the simplest alternative;
- `sequential`: our default without multi-task, `--weights=source` (the
  source task first, cached), then both phases on the target;
- `joint`: `--phase=multitask --fine_tune_epochs=0`, the joint phase alone
  (read from the `joint_fine_tune` run's scores at the joint phase's end
  when both are chosen, rather than trained twice);
- `joint_fine_tune`: `--phase=multitask`, the joint phase then the target
  alone (`--fine_tune_epochs`);
- with `--variants`, `joint_fine_tune_proportional` and
  `joint_fine_tune_uncertainty`: the same with `--task_sampling=proportional`
  or `--task_weighting=uncertainty`, and `joint_fine_tune_block3`: the heads
  on the base cut at `block3` (VGG only), where sequential transfer
  fine-tunes a VGG16 base pretrained on the source, and `*_top`: the
  variants on the whole base (the default cut before 2026-12-02;
  `--base_layer=auto` is now the source base's cut), and
  `joint_fine_tune_all`: every task fine-tuned together after the joint
  phase (`--fine_tune_tasks=all`).

Beside them, once per seed, `source_alone`: the source task trained alone
from scratch on the joint phase's budget (`--pretrain_epochs`), its test
split the one the joint runs score the source head on, on the whole base
(what the tool trains for that task alone), and `source_alone_at_cut`: the
same on the base cut where the joint phase cuts it (VGG16 `block3`,
ResNet50 `conv4`), so a gap between the joint source head and the source
alone can be told apart from the smaller network's. Rows go to
`benchmarks/multitask.jsonl` as each run finishes, so a restart resumes
where it stopped; the tables go into RESULTS.md between this script's
markers; `--quick` (VGG16, 5 labels, one seed, one epoch a phase) prints
them only. `--dataset=fashion_mnist`: Fashion-MNIST 0-4 (all labels) with
5-9 at 10 and 50 labels a class, one epoch over the source task
(`--pretrain_epochs=1`) for the joint phase, the sequential default's source
base and the source task alone alike.

Target (issue 25): joint + fine-tune at or above the sequential default on
every row's mean and above target-only scratch, with the source task's test
accuracy within 0.5 points of source-only training.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import main_runs  # noqa: E402
import table  # noqa: E402
import variant_runs  # noqa: E402
from keras_transfer.models import backbones  # noqa: E402

BEGIN = "<!-- benchmarks/multitask.py: begin (generated) -->"
END = "<!-- benchmarks/multitask.py: end -->"
VARIANTS = {
    "scratch": ["--weights=none"],
    "sequential": ["--weights=source"],
    "joint": ["--phase=multitask", "--fine_tune_epochs=0"],
    "joint_fine_tune": ["--phase=multitask"],
    # With --variants: the other samplers and weightings.
    "joint_fine_tune_proportional": ["--phase=multitask", "--task_sampling=proportional"],
    "joint_fine_tune_uncertainty": ["--phase=multitask", "--task_weighting=uncertainty"],
    # The heads on the base cut where sequential transfer fine-tunes VGG16's
    # (the default cut since 2026-12-02), and on the whole base (before).
    "joint_fine_tune_block3": ["--phase=multitask", "--base_layer=block3"],
    # Every task fine-tuned together after the joint phase.
    "joint_fine_tune_all": ["--phase=multitask", "--fine_tune_tasks=all"],
    "joint_top": ["--phase=multitask", "--fine_tune_epochs=0", "--base_layer=top"],
    "joint_fine_tune_top": ["--phase=multitask", "--base_layer=top"],
    "joint_fine_tune_proportional_top": ["--phase=multitask", "--task_sampling=proportional",
                                         "--base_layer=top"],
    "joint_fine_tune_uncertainty_top": ["--phase=multitask", "--task_weighting=uncertainty",
                                        "--base_layer=top"],
}
DEFAULT_VARIANTS = ("scratch", "sequential", "joint", "joint_fine_tune")
# The joint phase alone is a joint + fine-tune run's first phase, and that
# run scores every head on the test split at the phase's end (metrics.json's
# `tasks`). Since 2026-12-03 the joint-only row is read from there instead of
# training the same phase a second time, a third of a Fashion-MNIST cell's
# time here; such a row names its run in `read_from`.
JOINT_PHASE_OF = {"joint": "joint_fine_tune", "joint_top": "joint_fine_tune_top"}
# What a variant tried on fewer seeds is set beside.
BESIDE = ("scratch", "sequential", "joint_fine_tune")
DATASETS = {
    "digits": ([], "5,10,20"),
    # Its source task holds 30,000 training images, 33 times digits 0-4's
    # 901: one epoch over them, for the source pretraining and the joint
    # phase alike, already takes several times the steps of digits' five,
    # and five would cost about 48 hours of this grid on a 2-core CPU.
    "fashion_mnist": (["--dataset=fashion_mnist", "--pretrain_epochs=1"], "10,50"),
}
DEFAULT_PRETRAIN_EPOCHS = "5"
# The once-a-seed runs of the source task alone (label count 0).
SOURCE_ALONE = ("source_alone", "source_alone_at_cut")


def source_alone(data_flags):
    """The source task as the run's target: all its labels, from scratch on
    the joint phase's budget (`--epochs=0` with `--fine_tune_epochs` set to
    the data set's `--pretrain_epochs` trains that many epochs from scratch)."""
    epochs = next((flag.split("=", 1)[1] for flag in data_flags
                   if flag.startswith("--pretrain_epochs=")), DEFAULT_PRETRAIN_EPOCHS)
    return ["--classes=0,1,2,3,4", "--weights=none", "--epochs=0",
            f"--fine_tune_epochs={epochs}"]


def joint_cut(model):
    """Where `--phase=multitask` from random weights cuts `model`'s base."""
    return backbones.resolve_base_layer(backbones.REGISTRY[model], "auto", "none", "multitask")


def _source(metrics):
    """The source head's test accuracy at the joint phase's end."""
    tasks = metrics.get("tasks") or []
    return {"source_accuracy": tasks[1]["test"]["accuracy"] if len(tasks) > 1 else None}


def joint_phase_row(row, metrics, variant):
    """`variant`'s row (the joint phase alone) from the row and metrics of
    the joint + fine-tune run `JOINT_PHASE_OF[variant]`."""
    target = metrics["tasks"][0]["test"]
    return {**row, "variant": variant, "accuracy": target["accuracy"], "f1": target["f1"],
            **_source(metrics), "read_from": row["variant"]}


def add_joint_phase_rows(grid, read):
    """Appends the rows of the variants in `read` (joint-only: its joint +
    fine-tune variant) from their finished joint + fine-tune runs in `grid`,
    where the rows lack them. A run whose folder is gone (finished on another
    machine) is named, to be run on its own with `--variants=joint`."""
    rows = main_runs.read_rows(grid.rows_path)
    done = {variant_runs.row_key(row) for row in rows}
    models, seeds = grid.args.models.split(","), [int(s) for s in grid.args.seeds.split(",")]
    for variant, source in read.items():
        for row in rows:
            key = (*variant_runs.row_key(row)[:4], variant)
            if (row["variant"] != source or key in done or key[0] != grid.args.dataset
                    or row["model"] not in models or row["seed"] not in seeds
                    or row["shots"] not in grid.shots):
                continue
            path = os.path.join(grid.work, variant_runs.run_name(*variant_runs.row_key(row)),
                                "metrics.json")
            if not os.path.exists(path):
                print(f"no {variant} row for {key[:4]}: {path} is gone", file=sys.stderr)
                continue
            with open(path) as handle:
                main_runs.append_row(grid.rows_path,
                                     joint_phase_row(row, json.load(handle), variant))


def same_network(variant):
    """The source-alone row trained on the network the variant's source head
    is on: the whole base for the `*_top` variants, else the joint cut."""
    return ("source_alone" if "--base_layer=top" in VARIANTS.get(variant, ())
            else "source_alone_at_cut")


def source_table(rows):
    """The source task in the joint runs against the source task alone, on
    the whole base (the tool's run of that task alone) and on the network
    the joint run's source head is on."""
    alone = {}
    for row in rows:
        if row["variant"] in SOURCE_ALONE:
            alone.setdefault((row["dataset"], row["model"], row["variant"]),
                             {})[row["seed"]] = row["accuracy"]
    groups = {}
    for row in rows:
        if row.get("source_accuracy") is not None:
            groups.setdefault((row["dataset"], row["model"], row["shots"], row["variant"]),
                              []).append(row)
    lines = []
    for (dataset, model, shots, variant), group in sorted(groups.items()):
        whole = alone.get((dataset, model, "source_alone"), {})
        same = alone.get((dataset, model, same_network(variant)), {})
        # Side by side on the seeds that have both.
        paired = [row for row in group if row["seed"] in whole and row["seed"] in same]
        joint = variant_runs.mean([row["source_accuracy"] for row in paired])
        cells = []
        for by_seed in (whole, same):
            solo = variant_runs.mean([by_seed[row["seed"]] for row in paired])
            cells += [variant_runs.cell(solo), variant_runs.cell(
                None if joint is None or solo is None else joint - solo, "{:+.3f}")]
        lines.append((dataset, model, shots, variant, len(paired), variant_runs.cell(joint),
                      *cells))
    return table.markdown(("data", "model", "target labels a class", "variant", "seeds",
                           "source test accuracy, joint", "source alone, whole base",
                           "difference", "source alone, same network", "difference"), lines)


def main():
    parser = variant_runs.grid_parser(__doc__.split("\n\n")[0], "multitask", DATASETS,
                                      "5,10,20 on digits, 10,50 on fashion_mnist")
    grid = variant_runs.grid_of(parser, "multitask", DATASETS, VARIANTS, DEFAULT_VARIANTS)
    args = grid.args
    started = time.time()
    read = {v: JOINT_PHASE_OF[v] for v in grid.variants if JOINT_PHASE_OF.get(v) in grid.variants}
    variant_runs.run_grid_of(grid, _source, variants={
        v: flags for v, flags in grid.variants.items() if v not in read})
    add_joint_phase_rows(grid, read)
    # Once a seed: label count 0 is all of them (--examples_per_class=0).
    rows = variant_runs.run_grid_of(grid, _source, shots=[0],
                                    variants={"source_alone": source_alone(grid.data_flags)})
    for model in args.models.split(","):
        rows = variant_runs.run_grid_of(grid, _source, shots=[0], models=[model], variants={
            "source_alone_at_cut": [*source_alone(grid.data_flags),
                                    f"--base_layer={joint_cut(model)}"]})
    present = {row["variant"] for row in rows}
    shown = [v for v in DEFAULT_VARIANTS if v in present]
    others = [v for v in VARIANTS if v in present and v not in DEFAULT_VARIANTS]
    block = "\n".join([
        "## Multi-task transfer (benchmarks/multitask.py)", "",
        f"`python benchmarks/multitask.py{' --quick' if args.quick else ''}`, finished "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({(time.time() - started) / 60:.0f}"
        " minutes this invocation; rows of earlier invocations are read from "
        "benchmarks/multitask.jsonl). Source task: classes 0-4 with all their labels; target: "
        "5-9. Default settings otherwise (`--pretrain_epochs=5` for the source pretraining and "
        "the joint phase alike, 1 on Fashion-MNIST's 30,000 source images; "
        "`--fine_tune_epochs=6`). `joint` rows written since 2026-12-03 are the joint + "
        "fine-tune run's heads scored at its joint phase's end, not a run of their own. "
        "Target test accuracy, mean over seeds:", "",
        variant_runs.accuracy_table([r for r in rows if r["variant"] not in SOURCE_ALONE],
                                    shown, "joint"), "",
        *([f"Other variants, each beside {', '.join(BESIDE)} on the seeds it has:", "",
           variant_runs.variants_beside(rows, others, BESIDE), ""] if others else []),
        "The source task's test accuracy after the joint phase against the source task "
        "trained alone (target: within 0.005), on the whole base and on the network the "
        "joint run's source head is on (the joint cut; the whole base for `*_top`), "
        "mean over the seeds that have both:", "",
        source_table(rows)])
    print(block)
    if not args.quick:
        table.write_block(args.results, BEGIN, END, block)


if __name__ == "__main__":
    main()
