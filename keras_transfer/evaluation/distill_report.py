"""`report.md`'s section on a `--phase=distill` run: the teacher, the
distilled student and (with `--baseline`) the same student from scratch,
side by side, and how much of the teacher's lead over scratch the
distillation kept."""

from keras_transfer.evaluation.markdown import number, table


def _gap(entry):
    closed = entry.get("gap_closed")
    if "scratch_test_accuracy" not in entry:
        return ("Not compared with the student from scratch: rerun with `--baseline` to "
                "train it on the labelled images, the same budget and seed.")
    if closed is None:
        return ("The teacher is no better than the student from scratch here: there was "
                "no lead to keep.")
    verdict = ("it lost to the student from scratch" if closed < 0 else
               "it kept at least half of it" if closed >= 0.5 else "it kept less than half")
    return (f"Of the teacher's lead over the student from scratch in test accuracy, the "
            f"distilled student kept {closed:.0%}: {verdict}.")


def section(run):
    """The section's lines; none for other runs."""
    entry = run.distillation
    if not entry:
        return []
    teacher, student = entry["teacher"], entry["student"]
    scratch = (run.baseline or {}).get("test")
    rows = [(f"teacher `{teacher['model']}`", number(teacher["test"]["accuracy"]),
             number(teacher["test"]["f1"]), f"{teacher['parameters']:,}"),
            (f"distilled student `{student['model']}`", number(student["test"]["accuracy"]),
             number(student["test"]["f1"]), f"{student['parameters']:,}")]
    if scratch:
        rows.append((f"`{student['model']}` from scratch (same budget)",
                     number(scratch["accuracy"]), number(scratch["f1"]),
                     f"{student['parameters']:,}"))
    agreement = entry.get("agreement")
    return ["## Distillation", "",
            f"The student learned from the run in `{teacher['run_dir']}` at temperature "
            f"{entry['temperature']:g} with alpha {entry['alpha']:g} (the labels' share of "
            f"the loss), on {entry['labelled']:,} labelled and {entry['unlabelled']:,} "
            "unlabelled training images"
            + (", the teacher running on each augmented batch." if entry["teacher_in_step"]
               else ", against the teacher's outputs recorded once."), "",
            *table(("model", "test accuracy", "macro F1", "parameters"), rows), "",
            f"Student and teacher give the same answer on "
            f"{'n/a' if agreement is None else f'{agreement:.1%}'} of the test images. "
            + _gap(entry), ""]
