"""`report.md`: the run's metrics.json written for a person, answering three
questions in order: is it good, where does it fail, did transfer help."""

from keras_transfer import schema
from keras_transfer.evaluation import (advice, base_report, distill_report, multitask_report,
                                       semi_report)
from keras_transfer.evaluation.markdown import number as _f, table as _table

REPORT_FILE = "report.md"
WELL_CALIBRATED_ECE = 0.05  # Below this, confidence and accuracy agree.
MATRIX_TABLE_MAX_CLASSES = 15  # Above this a markdown table is unreadable.


def _change(before, after):
    if before is None or after is None:
        return "n/a"
    return f"{after - before:+.3f}"


def _chance(test):
    """Accuracy of always answering the largest test class."""
    supports = [entry["support"] for entry in test["per_class"].values()]
    return max(supports) / max(sum(supports), 1)


def _how_good(test):
    """The answer to "is it good?" against both baselines a reader knows:
    a uniform guess (1 / classes) and always answering the largest class."""
    accuracy, majority = test["accuracy"], _chance(test)
    guess = 1 / max(len(test["class_names"]), 1)
    baselines = (f"a uniform guess scores {guess:.3f}, always answering the largest class "
                 f"{majority:.3f}")
    if accuracy < guess:
        return f"no: test accuracy {accuracy:.3f} is below chance ({baselines})"
    if accuracy <= majority + 0.05:
        return (f"no: test accuracy {accuracy:.3f} is no better than always answering the "
                f"largest class ({baselines})")
    return f"test accuracy {accuracy:.3f}, macro F1 {test['f1']:.3f} ({baselines})"


def _calibration(test):
    ece, confidence, accuracy = test["ece"], test["mean_confidence"], test["accuracy"]
    if ece < WELL_CALIBRATED_ECE:
        return (f"Calibration: expected calibration error {ece:.3f} ({test['ece_bins']} bins): "
                "its confidence can be read as a probability of being right.")
    side = "overconfident" if confidence > accuracy else "underconfident"
    return (f"Calibration: expected calibration error {ece:.3f} ({test['ece_bins']} bins): "
            f"{side} (mean confidence {confidence:.3f} against accuracy {accuracy:.3f}); "
            "do not read its scores as probabilities without recalibrating.")


def _is_it_good(run):
    test = run.test
    k = test["top_k_k"]
    lines = ["## Is it good?", "",
             f"Test accuracy **{test['accuracy']:.3f}** (macro F1 {test['f1']:.3f}) on "
             f"{test['examples']} test images of {len(test['class_names'])} classes; "
             f"always answering the largest class would score {_chance(test):.3f}.", ""]
    if test.get("non_finite_outputs"):
        lines += [f"**The model outputs NaN for {test['non_finite_outputs']} of the "
                  f"{test['examples']} test images: its training diverged.** They are "
                  "scored as uniform guesses below.", ""]
    if test.get("unread"):
        lines += [f"**{test['unread']} test images could not be read** (deleted or damaged "
                  "since the data was checked): the numbers below count the other "
                  f"{test['examples']}, each once.", ""]
    rows = [("accuracy", _f(test["accuracy"]))]
    if k:
        rows.append((f"top-{k} accuracy", _f(test["top_k"])))
    rows += [("precision / recall / F1, macro",
              f"{_f(test['precision'])} / {_f(test['recall'])} / {_f(test['f1'])}"),
             ("precision / recall / F1, weighted by support",
              f"{_f(test['precision_weighted'])} / {_f(test['recall_weighted'])} / "
              f"{_f(test['f1_weighted'])}"),
             ("ROC AUC, one-vs-rest macro", _f(test["auc"])),
             ("PR AUC (average precision), macro", _f(test["pr_auc"])),
             ("cross-entropy loss", _f(test["loss"])),
             (f"expected calibration error ({test['ece_bins']} bins)", _f(test["ece"]))]
    return lines + _table(("test metric", "value"), rows) + ["", _calibration(test), ""]


def _per_class(test):
    rows = [(name, e["support"], _f(e["precision"]), _f(e["recall"]), _f(e["f1"]),
             _f(e["roc_auc"]), _f(e["pr_auc"])) for name, e in test["per_class"].items()]
    return _table(("class", "test images", "precision", "recall", "F1", "ROC AUC",
                   "PR AUC"), rows)


def _matrices(test):
    names = test["class_names"]
    if len(names) > MATRIX_TABLE_MAX_CLASSES:
        return ["The confusion matrix is in `confusion_matrix.png` and metrics.json."]
    header = ["true \\ predicted", *names]
    counts = _table(header, [(n, *row) for n, row in zip(names, test["confusion_matrix"])])
    shares = _table(header, [(n, *(f"{v:.0%}" for v in row))
                             for n, row in zip(names, test["confusion_matrix_normalized"])])
    return ["Confusion matrix, counts (rows: true class, columns: predicted):", "",
            *counts, "", "The same, as a share of each true class:", "", *shares]


def _where_it_fails(run):
    test = run.test
    weakest = min(test["per_class"].items(), key=lambda item: (item[1]["f1"], item[0]))
    name, entry = weakest
    missed = entry["support"] - round(entry["recall"] * entry["support"])
    lines = ["## Where does it fail?", "",
             f"Weakest class: **{name}** (F1 {entry['f1']:.3f}; {missed} of its "
             f"{entry['support']} test images missed, precision {entry['precision']:.3f}).",
             ""]
    if test["most_confused"]:
        lines.append("Most confused pairs:")
        lines += [f"- true **{p['true']}** predicted as **{p['predicted']}**: {p['count']} "
                  f"time(s), {p['share_of_true']:.0%} of the {p['true']} images"
                  for p in test["most_confused"]]
    else:
        lines.append("No test image is misclassified.")
    lines += ["", *_per_class(test), "", *_matrices(test), ""]
    pictures = run.plots
    described = {"misclassified": "the most confidently wrong test images",
                 "confusion_matrix": "the confusion matrix",
                 "roc": "ROC curves per class", "learning_curves": "learning curves"}
    lines += [f"- `{pictures[key]}`: {text}" for key, text in described.items()
              if key in pictures]
    return lines + [""]


def _phase_rows(run):
    rows, flags = [], []
    for name, phase in run.phases.items():
        before, after = phase.get("test_before"), phase.get("test")
        if not after:
            continue
        acc_before = before["accuracy"] if before else None
        worse = acc_before is not None and after["accuracy"] < acc_before
        if after.get("non_finite_outputs"):
            flags.append(f"**{name} diverged**: NaN outputs for "
                         f"{after['non_finite_outputs']} test images.")
        if worse:
            flags.append(f"**{name} made the test accuracy worse** "
                         f"({acc_before:.3f} → {after['accuracy']:.3f}).")
        rows.append((name, f"{phase['epochs_run']} (best: epoch {phase['best_epoch']})",
                     f"{_f(acc_before)} → {_f(after['accuracy'])}",
                     _change(acc_before, after["accuracy"]),
                     f"{_f(before['f1'] if before else None)} → {_f(after['f1'])}",
                     "⚠ worse" if worse else "ok"))
    return rows, flags


def _phases(run):
    rows, flags = _phase_rows(run)
    lines = ["## Did each phase help?", ""]
    if rows:
        lines += _table(("phase", "epochs (best)", "test accuracy before → after", "change",
                         "macro F1 before → after", ""), rows)
        lines += ["", "Before feature extraction the head is untrained (chance level)."]
    for flag in flags:
        lines += ["", flag]
    safety = run.safety_net
    if safety and "fine_tune_worse" in safety:
        verdict = ("worse" if safety["fine_tune_worse"] else "not worse")
        before = multitask_report.phase_words(safety.get("before_phase"))
        lines += ["", f"Safety net: on validation ({safety['monitor']}), fine-tuning ended "
                  f"{verdict} than {before} ({_f(safety['fine_tune'], 4)} vs "
                  f"{_f(safety['feature_extraction'], 4)}). Exported: "
                  f"**{safety['exported_phase']}**"
                  + (" (the fine-tuned weights were discarded)."
                     if safety["restored_feature_extraction"] else ".")]
        if (safety["monitor"] == "val_loss" and not safety["fine_tune_worse"]
                and any(flag.startswith("**fine_tune made") for flag in flags)):
            lines += ["", "By validation loss fine-tuning was not worse, yet its test "
                      "accuracy fell: loss and accuracy disagree here. "
                      "`--monitor=val_accuracy` (or `val_f1`) keeps epochs and phases "
                      "by accuracy instead."]
    return lines + [""]


def _spread(entry):
    if entry["n"] == 1:
        return f"{entry['mean']:.3f}"
    return (f"{entry['mean']:.3f} ± {entry['std']:.3f} "
            f"({entry['min']:.3f}–{entry['max']:.3f})")


# A `--weights=none` run: the network itself trained from scratch.
NO_TRANSFER = "no transfer here: the whole network trained from scratch (`--weights=none`)"


def _from_scratch(run):
    return (run.weights or {}).get("kind") == "none" and list(run.phases) == ["scratch"]


def _transfer(run):
    lines = ["## Did transfer help?", ""]
    comparison = run.comparison
    if _from_scratch(run):
        return lines + [NO_TRANSFER[0].upper() + NO_TRANSFER[1:] + ".", ""]
    if not comparison:
        return lines + ["Not measured: this run has no from-scratch baseline. Rerun with "
                        "`--baseline --repeats=3` to train the same network from random "
                        "initialisation on the same data and budget, three seeds each.", ""]
    aggregate = run.repeats["aggregate"]
    seeds = run.repeats["seeds"]
    labels = {"feature_extraction": "feature extraction (after phase 1)",
              "fine_tune": "fine-tuning (after phase 2)",
              "exported": "exported model", "scratch": "from scratch (same budget)"}
    rows = []
    for arm, label in labels.items():
        if arm not in aggregate:
            continue
        gain = comparison.get(arm)
        rows.append((label, _spread(aggregate[arm]["accuracy"]),
                     _spread(aggregate[arm]["f1"]),
                     f"{gain['gain']:+.3f}" if gain else "",
                     gain["verdict"] if gain else ""))
    lines += [f"Test scores over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}): "
              "mean ± standard deviation (min–max); gain = transfer minus scratch "
              "accuracy, paired by seed.", ""]
    lines += _table(("model", "test accuracy", "macro F1", "gain vs scratch", "verdict"), rows)
    exported = comparison.get("exported")
    if exported:
        lines += ["", f"In short: {_transfer_answer(exported)}."]
        if exported["gain"] < 0:
            lines += advice.ranking_advice(run.config)
    return lines + [""]


def _transfer_answer(exported):
    """One sentence on the exported model against scratch, sign and noise."""
    gain = f"{exported['gain']:+.3f} test accuracy against scratch"
    if exported["verdict"] == "transfer is better":
        return f"transfer helped ({gain}, beyond seed noise)"
    if exported["verdict"] == "scratch is better":
        return f"transfer did not help: training from scratch was better ({gain})"
    if exported["standard_error"] is None:
        scores = (f"transfer {exported['transfer']:.3f}, scratch "
                  f"{exported['scratch']:.3f}: {exported['gain']:+.3f}")
        if exported["gain"] == 0:
            return f"transfer and scratch scored the same on one seed ({scores})"
        better = "transfer" if exported["gain"] > 0 else "scratch"
        return (f"{better} scored higher on one seed ({scores}); rerun with "
                "--repeats=3 to tell that from seed noise")
    return f"no clear difference ({gain}, within seed noise)"


def _at_a_glance(run):
    """The three answers first; the sections below give the evidence."""
    test = run.test
    good = _how_good(test)
    if test["most_confused"]:
        pair = test["most_confused"][0]
        times = "once" if pair["count"] == 1 else f"{pair['count']} times"
        fails = (f"most often class {pair['true']} taken for class {pair['predicted']} "
                 f"({times}: {pair['share_of_true']:.0%} of the test images of class "
                 f"{pair['true']})")
    else:
        fails = "no test image is misclassified"
    comparison = run.comparison or {}
    helped = (_transfer_answer(comparison["exported"]) if "exported" in comparison
              else NO_TRANSFER if _from_scratch(run) else "not measured (no --baseline)")
    safety = run.safety_net or {}
    lines = ["## At a glance", "", f"- **Is it good?** {good}.",
             f"- **Where does it fail?** {fails}.", f"- **Did transfer help?** {helped}."]
    if safety.get("restored_feature_extraction"):
        before = multitask_report.phase_words(safety.get("before_phase"))
        lines.append("- **Fine-tuning made it worse on validation**: the exported model "
                     f"is that of {before} (safety net).")
    lines += [f"- **Warning:** {problem}." for problem in advice.fit_problems(run)]
    return lines + [""]


def _the_run(run):
    config, weights = run.config, run.weights
    timings = run.timings
    return ["## The run", "",
            f"- backbone `{config['model']}`, phase `{config['phase']}`, image size "
            f"{config['image_size']}, best epochs kept by `{config['monitor']}`",
            f"- weights: `{weights['requested']}` → {weights['kind']} ({weights['detail']})",
            f"- data: {run.dataset['name']}, split sizes "
            f"{run.dataset['split_sizes']}",
            f"- seeds: {run.repeats['seeds']}",
            "- seconds: " + ", ".join(f"{k} {v}" for k, v in timings.items()), ""]


def render(metrics):
    """report.md's markdown for a metrics.json dict."""
    run = schema.RunRecord.from_dict(metrics)
    config = run.config
    title = f"# {config['model']} on {run.dataset['name']}: test report"
    parts = [[title, ""], _at_a_glance(run), _is_it_good(run), _where_it_fails(run),
             base_report.section(run), _phases(run), semi_report.section(run),
             distill_report.section(run), multitask_report.section(run), _transfer(run),
             _the_run(run)]
    return "\n".join(line for part in parts for line in part)


def write_report(path, metrics):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render(metrics))

