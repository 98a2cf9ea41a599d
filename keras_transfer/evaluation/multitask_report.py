"""`report.md`'s section on a `--phase=multitask` run: every task's scores
after the joint phase beside the same task trained alone, the target
beside sequential transfer, and negative transfer flagged where a task
ended below itself alone."""

from keras_transfer.evaluation.markdown import number, table


def phase_words(name):
    """What the safety net compared fine-tuning with, in a sentence (runs
    that did not record it: feature extraction)."""
    return "the joint multi-task phase" if name == "multitask" else "feature extraction"


def _weight(task, weighting):
    """The fixed weight, or the learned one at the last epoch."""
    if weighting != "uncertainty":
        return number(task["weight"], 3)
    learned = task["history"].get(f"{task['name']}_weight") or [None]
    return f"{number(learned[-1], 3)} (learned)"


def _final(task, final_test):
    """The task's test accuracy as the run ends: the target's exported
    model; another task's head after any fine-tuning kept."""
    if task["name"] == "target":
        return final_test["accuracy"]
    return (task.get("test_after_fine_tune") or task["test"])["accuracy"]


def negative_transfer(tasks, final_test):
    """The tasks (names) that scored below themselves trained alone: the
    target as exported, another task after the joint phase (what
    target-only fine-tuning leaves of its head is not its training's
    result, and the table shows it)."""
    return [task["name"] for task in tasks if task.get("alone") and (
        final_test if task["name"] == "target" else task["test"])["accuracy"]
        < task["alone"]["accuracy"]]


def section(run):
    """The section's lines; none for other runs."""
    if not run.tasks:
        return []
    config = run.config
    rows = [(task["name"], f"{task['dataset']} ({', '.join(task['class_names'])})",
             task["training_images"], _weight(task, config.get("task_weighting")),
             number(task["validation"]["accuracy"], 4), number(task["test"]["accuracy"], 4),
             number(_final(task, run.test), 4),
             number(task["alone"]["accuracy"], 4) if task.get("alone") else "n/a")
            for task in run.tasks]
    end = ("another task's head fine-tuned with it" if config.get("fine_tune_tasks") == "all"
           else "another task's head after target-only fine-tuning moved the base")
    lines = ["## Tasks trained together", "",
             f"One base, a head per task, {config['task_sampling']} sampling, "
             f"{config['task_weighting']} loss weights; the joint phase's best epoch is the "
             "target's (validation). Test accuracy after the joint phase, as the run ends "
             f"(the target's export; {end}), and of the same task trained alone from "
             "scratch (`--baseline`):", "",
             *table(("task", "data", "training images", "loss weight", "validation",
                     "test, joint", "test, end", "test, alone"), rows), ""]
    target = run.tasks[0]
    if target.get("sequential"):
        lines += [f"Sequential transfer (the source task first, then both phases on the "
                  f"target): test accuracy {number(target['sequential']['accuracy'], 4)}, "
                  f"against {number(run.test['accuracy'], 4)} for this run.", ""]
    hurt = negative_transfer(run.tasks, run.test)
    if hurt:
        lines += [f"**Negative transfer**: {', '.join(hurt)} scored below the same task "
                  "trained alone: training together cost accuracy there.", ""]
    elif any(task.get("alone") for task in run.tasks):
        lines += ["No negative transfer: every task scored at least as well as alone.", ""]
    return lines
