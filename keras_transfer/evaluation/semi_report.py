"""`report.md`'s section on a `--semi_supervised` run: what the unlabelled
images did per epoch (the share above the confidence threshold and, where
the pool's labels are known, how many of those pseudo-labels were right),
and whether the semi-supervised model beat the supervised one on
validation."""

from keras_transfer import semi_supervised_checks
from keras_transfer.evaluation.markdown import number, table


def _epochs(name, phase):
    history = phase["history"]
    accuracy = history.get("pseudo_label_accuracy")
    return [(name, phase["first_epoch"] + index + 1, number(rate),
             number(accuracy[index]) if accuracy else "n/a (labels unknown)")
            for index, rate in enumerate(history["mask_rate"])]


def _decision(entry, monitor):
    if not entry:
        return []
    verdict = "worse" if entry["worse"] else "not worse"
    kept = (f"the supervised model ({entry['supervised_phase']}) was restored and exported"
            if entry["restored_supervised"] else "it was exported")
    phase = entry.get("semi_supervised_phase", "semi_supervised")
    return [f"Safety net: on validation ({monitor}) the semi-supervised model ({phase}) "
            f"ended {verdict} than the supervised one ({number(entry['semi_supervised'], 4)} vs "
            f"{number(entry['supervised'], 4)}); {kept}.", ""]


def section(run):
    """The section's lines; none for other runs."""
    config = run.config
    if config.get("semi_supervised", "none") == "none":
        return []
    rows = [row for name, phase in run.phases.items() if "mask_rate" in phase["history"]
            for row in _epochs(name, phase)]
    safety = run.safety_net or {}
    threshold = semi_supervised_checks.confidence_threshold(
        config["semi_supervised"], config.get("confidence_threshold"))
    how = (f"{config['unlabeled_ratio']} unlabelled images per labelled one a step"
           if config["semi_supervised"] == "fixmatch" else
           f"{config.get('self_training_rounds')} round(s), the pool labelled by the model "
           "as each round starts")
    return ["## Semi-supervised", "",
            f"`{config['semi_supervised']}` on `--unlabeled_data={config['unlabeled_data']}`, "
            f"{how}, pseudo-labels at confidence >= {threshold:g} x the "
            "model's mean confidence on labelled images, from "
            "the supervised model the safety net keeps. Per epoch, the share of unlabelled "
            "images above the threshold and how many of those pseudo-labels were right:", "",
            *table(("phase", "epoch", "mask rate", "pseudo-label accuracy"), rows), "",
            *_decision(safety.get("semi_supervised"), safety.get("monitor"))]
