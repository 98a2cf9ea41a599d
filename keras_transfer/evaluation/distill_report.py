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


def _costs(model):
    """FLOPs per image, and the export's size, batch-1 latency and batch-64
    throughput (n/a where the run did not export)."""
    serving = model.get("serving") or {}
    flops = model.get("flops_per_image")
    size = serving.get("size_bytes")
    return ("n/a" if flops is None else f"{flops / 1e6:,.1f} M",
            "n/a" if size is None else f"{size / 1e6:,.1f}",
            number(serving.get("latency_ms_batch1"), 2),
            number(serving.get("images_per_second_batch64"), 0))


def _speed(teacher, student):
    ours, theirs = [(model.get("serving") or {}).get("images_per_second_batch64")
                    for model in (student, teacher)]
    if not ours or not theirs:
        return ""
    return (f" Measured side by side in this run, the student's export answers batch-64 "
            f"requests {ours / theirs:.1f}x as fast as the teacher's.")


def section(run):
    """The section's lines; none for other runs."""
    entry = run.distillation
    if not entry:
        return []
    teacher, student = entry["teacher"], entry["student"]
    scratch = (run.baseline or {}).get("test")
    rows = [(f"teacher `{teacher['model']}`", number(teacher["test"]["accuracy"]),
             number(teacher["test"]["f1"]), f"{teacher['parameters']:,}", *_costs(teacher)),
            (f"distilled student `{student['model']}`", number(student["test"]["accuracy"]),
             number(student["test"]["f1"]), f"{student['parameters']:,}", *_costs(student))]
    if scratch:
        rows.append((f"`{student['model']}` from scratch (same budget)",
                     number(scratch["accuracy"]), number(scratch["f1"]),
                     f"{student['parameters']:,}", *_costs(student)[:1], "", "", ""))
    agreement = entry.get("agreement")
    return ["## Distillation", "",
            f"The student learned from the run in `{teacher['run_dir']}` at temperature "
            f"{entry['temperature']:g} with alpha {entry['alpha']:g} (the labels' share of "
            f"the loss), on {entry['labelled']:,} labelled and {entry['unlabelled']:,} "
            "unlabelled training images"
            + (", the teacher running on each augmented batch." if entry["teacher_in_step"]
               else ", against the teacher's outputs recorded once."), "",
            *table(("model", "test accuracy", "macro F1", "parameters", "FLOPs per image",
                    "export MB", "batch-1 ms", "batch-64 images/s"), rows), "",
            f"Student and teacher give the same answer on "
            f"{'n/a' if agreement is None else f'{agreement:.1%}'} of the test images. "
            + _gap(entry) + _speed(teacher, student), ""]
