"""Does distillation pay? Teacher, distilled student and the same student
from scratch, side by side.

`python benchmarks/distillation.py [--quick]` trains each teacher (the
default run of `--teacher_models` on digits 5-9, all labels) once per seed,
then for each student and label count one `--phase=distill` run with
`--baseline` (the same student from scratch on the labelled images, the same
budget and seed) and, below all labels, `--unlabeled_data=rest` (the rest of
the training split, its labels hidden). Every run is a `python -m
keras_transfer.main` process, as a user would type it; each row is appended to
`benchmarks/distillation.jsonl` (`--rows`) as it finishes, so a restart, or a
later session, resumes where it stopped (the runs themselves stay under
`--work_dir`). The table (means over seeds) goes into RESULTS.md between this
script's markers; `--quick` (one teacher, one student, 10 labels, one seed,
short budgets) prints it only. `--sweep` runs a grid of `--temperatures` x
`--alphas` instead (the first teacher, student and label count), what the
defaults are chosen from.

`--dataset=fashion_mnist` runs the Fashion-MNIST case instead: the teacher is
the default run on classes 5-9 with 1,000 labels (200 a class; its source
task, classes 0-4, capped at 1,000 images a class so a CPU trains it in
minutes), the students learn from the same 1,000 labels and the rest of the
training split unlabelled.

Targets (issue 22): the distilled student above the student from scratch on
every row's mean and keeping at least half of the teacher's lead; at 10
labels a class with the unlabelled rest, within 1 point of its teacher; its
export answering batch-64 requests at least 5x as fast as the teacher's.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import main_runs  # noqa: E402
import table  # noqa: E402

BEGIN = "<!-- benchmarks/distillation.py: begin (generated) -->"
END = "<!-- benchmarks/distillation.py: end -->"
SWEEP_BEGIN = "<!-- benchmarks/distillation.py --sweep: begin (generated) -->"
SWEEP_END = "<!-- benchmarks/distillation.py --sweep: end -->"


# What each data set's teachers are trained on, and the student's label counts.
TEACHER_FLAGS = {"digits": [],
                 "fashion_mnist": ["--dataset=fashion_mnist", "--examples_per_class=200",
                                   "--source_examples_per_class=1000"]}
STUDENT_LABELS = {"digits": "10,20,all", "fashion_mnist": "200"}


def _row(metrics, dataset, teacher, student, labels, seed):
    entry = metrics["distillation"]
    return {"dataset": dataset, "teacher": teacher, "student": student, "labels": labels, "seed": seed,
            "teacher_accuracy": entry["teacher"]["test"]["accuracy"],
            "student_accuracy": entry["student"]["test"]["accuracy"],
            "scratch_accuracy": entry.get("scratch_test_accuracy"),
            "gap_closed": entry.get("gap_closed"), "agreement": entry["agreement"],
            "unlabelled": entry["unlabelled"],
            "speed_up": _speed_up(entry), "student_flops": entry["student"]["flops_per_image"],
            "teacher_flops": entry["teacher"]["flops_per_image"]}


def _speed_up(entry):
    ours, theirs = [(entry[role].get("serving") or {}).get("images_per_second_batch64")
                    for role in ("student", "teacher")]
    return ours / theirs if ours and theirs else None


def _mean(rows, key):
    values = [row[key] for row in rows if row[key] is not None]
    return float(np.mean(values)) if values else None


def _cell(value, form="{:.3f}"):
    return "n/a" if value is None else form.format(value)


def summary(rows):
    """The table's rows: one per teacher, student and label count."""
    groups = {}
    for row in rows:
        key = (row.get("dataset", "digits"), row["teacher"], row["student"], row["labels"])
        groups.setdefault(key, []).append(row)
    lines = []
    for (dataset, teacher, student, labels), group in sorted(groups.items(), key=lambda item: (
            *item[0][:3], item[0][3] if isinstance(item[0][3], int) else 10 ** 9)):
        teacher_accuracy, scratch = _mean(group, "teacher_accuracy"), _mean(group,
                                                                            "scratch_accuracy")
        student_accuracy = _mean(group, "student_accuracy")
        lines.append((dataset, teacher, student, labels, len(group), _cell(teacher_accuracy),
                      _cell(student_accuracy), _cell(scratch),
                      _cell(None if scratch is None else student_accuracy - scratch, "{:+.3f}"),
                      _cell(_mean(group, "gap_closed"), "{:.0%}"),
                      _cell(_mean(group, "agreement"), "{:.1%}"),
                      _cell(_mean(group, "speed_up"), "{:.1f}x"),
                      _cell(_mean(group, "teacher_flops") / _mean(group, "student_flops"),
                            "{:.0f}x")))
    return table.markdown(
        ("data", "teacher", "student", "labels a class", "seeds", "teacher", "distilled student",
         "student from scratch", "distilled - scratch", "of the teacher's lead kept",
         "agreement with the teacher", "batch-64 speed-up", "fewer FLOPs"), lines)


def sweep(args, work, budget, cache):
    """`--sweep`: the distilled student's test accuracy over a grid of
    `--temperatures` x `--alphas` (one teacher, student and label count), what
    the defaults are chosen from."""
    rows_path, started = args.rows.replace(".jsonl", "_sweep.jsonl"), time.time()
    rows = main_runs.read_rows(rows_path)
    done = {(row["temperature"], row["alpha"], row["seed"]) for row in rows}
    teacher, student = args.teacher_models.split(",")[0], args.students.split(",")[0]
    labels = args.labels.split(",")[0]
    for seed in [int(s) for s in args.seeds.split(",")]:
        teacher_dir = os.path.join(work, f"teacher-{teacher}-{seed}")
        for temperature in [float(t) for t in args.temperatures.split(",")]:
            for alpha in [float(a) for a in args.alphas.split(",")]:
                if (temperature, alpha, seed) in done:
                    continue
                main_runs.main_run(teacher_dir, [f"--model={teacher}", f"--seed={seed}",
                                                 *budget, *cache], f"{teacher_dir}.log")
                name = f"sweep-{teacher}-{student}-{labels}-{seed}-t{temperature:g}-a{alpha:g}"
                metrics = main_runs.main_run(os.path.join(work, name), [
                    "--phase=distill", f"--teacher={teacher_dir}", f"--model={student}",
                    "--weights=none", f"--examples_per_class={labels}",
                    "--unlabeled_data=rest", f"--temperature={temperature:g}",
                    f"--distill_alpha={alpha:g}", "--noexport", *budget, *cache],
                    os.path.join(work, f"{name}.log"))
                row = {"temperature": temperature, "alpha": alpha, "seed": seed,
                       "accuracy": metrics["test"]["accuracy"]}
                main_runs.append_row(rows_path, row)
                rows.append(row)
    temperatures = sorted({row["temperature"] for row in rows})
    alphas = sorted({row["alpha"] for row in rows})
    cells = [[f"T = {t:g}"] + [_cell(_mean([r for r in rows if (r["temperature"], r["alpha"])
                                             == (t, a)], "accuracy")) for a in alphas]
             for t in temperatures]
    seeds = sorted({row["seed"] for row in rows})
    return "\n".join([
        "## Distillation: temperature and alpha (benchmarks/distillation.py --sweep)", "",
        f"`python benchmarks/distillation.py --sweep{' --quick' if args.quick else ''}`, finished "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({(time.time() - started) / 60:.0f}"
        f" minutes this invocation). The distilled `{student}`'s test accuracy from the "
        f"default `{teacher}` run on digits 5-9, {labels} labels a class and the unlabelled "
        f"rest, from random weights; mean over seeds {seeds}.", "",
        table.markdown(["", *[f"alpha = {a:g}" for a in alphas]], cells)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work_dir", default="/tmp/keras_transfer_distillation")
    parser.add_argument("--teacher_models", default="vgg16,resnet50")
    parser.add_argument("--students", default="mobilenet_v3_small,mobilenet_v2")
    parser.add_argument("--dataset", default="digits", choices=sorted(TEACHER_FLAGS))
    parser.add_argument("--labels", default=None,
                        help="labels a class, or all (default: 10,20,all on digits, 200 on "
                        "fashion_mnist)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sweep", action="store_true",
                        help="a grid of --temperatures x --alphas instead")
    parser.add_argument("--temperatures", default="1,2,4,8")
    parser.add_argument("--alphas", default="0.1,0.5,0.9")
    parser.add_argument("--rows", default=None, help="finished rows, one JSON line each "
                        "(default: benchmarks/distillation[_quick].jsonl)")
    parser.add_argument("--results", default=os.path.join(os.path.dirname(__file__),
                                                          "RESULTS.md"))
    args = parser.parse_args()
    args.labels = args.labels or STUDENT_LABELS[args.dataset]
    if args.quick:
        args.teacher_models, args.students, args.labels, args.seeds = (
            "vgg16", "mobilenet_v3_small", args.labels.split(",")[0], "0")
    work = os.path.join(args.work_dir, "quick" if args.quick else "full")
    args.rows = args.rows or os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        f"distillation{'_quick' if args.quick else ''}.jsonl")
    os.makedirs(work, exist_ok=True)
    budget = (["--epochs=1", "--fine_tune_epochs=1", "--pretrain_epochs=1",
               "--min_steps_per_epoch=5"] if args.quick else [])
    cache = [f"--cache_dir={os.path.join(work, 'cache')}"]
    if args.sweep:
        if args.dataset != "digits":
            parser.error("--sweep runs on digits only")
        block = sweep(args, work, budget, cache)
        print(block)
        if not args.quick:
            table.write_block(args.results, SWEEP_BEGIN, SWEEP_END, block)
        return
    rows_path = args.rows
    rows, started = main_runs.read_rows(rows_path), time.time()
    done = {(row.get("dataset", "digits"), row["teacher"], row["student"], str(row["labels"]),
             row["seed"]) for row in rows}
    # Digits' folders keep their first names, so earlier invocations' runs are found.
    prefix = "" if args.dataset == "digits" else f"{args.dataset}-"
    for seed in [int(s) for s in args.seeds.split(",")]:
        for teacher in args.teacher_models.split(","):
            teacher_dir = os.path.join(work, f"{prefix}teacher-{teacher}-{seed}")
            for student in args.students.split(","):
                for labels in args.labels.split(","):
                    if (args.dataset, teacher, student, labels, seed) in done:
                        continue
                    main_runs.main_run(teacher_dir, [f"--model={teacher}", f"--seed={seed}",
                                                     *TEACHER_FLAGS[args.dataset], *budget,
                                                     *cache], f"{teacher_dir}.log")
                    name = f"{prefix}student-{teacher}-{student}-{labels}-{seed}"
                    unlabelled = ([] if labels == "all" else
                                  [f"--examples_per_class={labels}", "--unlabeled_data=rest"])
                    metrics = main_runs.main_run(os.path.join(work, name), [
                        "--phase=distill", f"--teacher={teacher_dir}", f"--model={student}",
                        "--weights=none", "--baseline", *unlabelled, *budget, *cache],
                        os.path.join(work, f"{name}.log"))
                    row = _row(metrics, args.dataset, teacher, student,
                               labels if labels == "all" else int(labels), seed)
                    main_runs.append_row(rows_path, row)
                    rows.append(row)
    block = "\n".join([
        "## Distillation (benchmarks/distillation.py)", "",
        f"`python benchmarks/distillation.py{' --quick' if args.quick else ''}`, finished "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({(time.time() - started) / 60:.0f}"
        " minutes this invocation; rows of earlier invocations are read from "
        "benchmarks/distillation.jsonl). "
        "Teachers: the default run on digits 5-9, all labels (on Fashion-MNIST 5-9: 200 labels "
        "a class, the source capped at 1,000 images a class); students from random weights at "
        "the teacher's image size, `--temperature=4 --distill_alpha=0.5` (the defaults), with "
        "the unlabelled rest of the training split below all labels; the student from scratch "
        "is `--baseline` of the same run. Test accuracy, mean over seeds; the speed-up is the "
        "student's export against the teacher's, batch 64, measured side by side.", "",
        summary(rows)])
    print(block)
    if not args.quick:
        table.write_block(args.results, BEGIN, END, block)


if __name__ == "__main__":
    main()
