"""What report.md advises when transfer did not pay: rank other starting
points on the same data before training them."""

from keras_transfer.models import backbones

# Other backbones the ranking command offers next to the run's own.
RANK_ALTERNATIVES = ("vgg16", "resnet50", "mobilenet_v2")


def ranking_advice(config):
    """When scratch came out ahead: a ranking command over other starting
    points on the same data, so the next run is chosen from evidence."""
    spec = backbones.get(config["model"])
    cuts = ["top", *list(spec.blocks)[-3:-1]]  # The output, and two blocks lower.
    models = [config["model"], *[name for name in RANK_ALTERNATIVES
                                 if name != config["model"]]]
    args = [f"--dataset={config.get('dataset', 'digits')}"]
    for key in ("classes", "examples_per_class", "weights"):
        value = config.get(key)
        if value:
            args.append(f"--{key}={','.join(value) if isinstance(value, (list, tuple)) else value}")
    args += [f"--models={','.join(models)}", f"--base_layers={','.join(cuts)}"]
    return [
        "",
        "**Transfer did not pay here.** Before training other set-ups, rank them on "
        "this data from frozen features (LogME, H-score and NLEEP: minutes, not a "
        "training run each):",
        "",
        f"    python -m keras_transfer.rank {' '.join(args)}",
        "",
        "and train the backbone it puts first (`--model`). When a cut below the top "
        "ranks above the top, the base's last layers are too specific to its source: "
        "fine-tune more of it (`--unfreeze=all`), pretrain on a closer source "
        "(`--source_dataset`), or start from ImageNet (`--weights=imagenet`).",
    ]


# The best validation accuracy this far below the best training accuracy of
# the exported phase reads as a model that learned its training images rather
# than the classes. Training accuracy is measured under dropout and
# augmentation, so the gap understates the real one.
OVERFIT_GAP = 0.2


def _accuracies(run):
    """The exported phase's (best training accuracy, best validation
    accuracy, validation accuracy and confusion matrix at the kept epoch),
    or None when its history lacks them."""
    phase = run.phases.get(run.exported_phase or "") or {}
    history, best = phase.get("history") or {}, phase.get("best_epoch")
    trained = [value for value in history.get("accuracy", []) if value is not None]
    validated = history.get("val_accuracy", [])
    index = None if best is None else best - phase.get("first_epoch", 0) - 1
    if not trained or index is None or not 0 <= index < len(validated):
        return None
    if validated[index] is None:
        return None
    return (max(trained), max(v for v in validated if v is not None), validated[index],
            phase.get("validation_confusion_matrix"))


def _what_to_try(run):
    config, kind = run.config, (run.weights or {}).get("kind")
    tries = ["augmentation (`--augment=flip,rotation,zoom`; `rotation,zoom` for "
             "characters, which a flip changes)", "more labelled images per class"]
    if kind == "none":
        tries.append("a pretrained base: `--weights=imagenet` (offline: the Keras "
                     "weights file, see the README's \"What to expect on your own "
                     "folder\"), or "
                     "`--source_dataset` with a related labelled dataset")
    else:
        tries.append(f"a lower cut (`--base_layer`, now `{config.get('base_layer')}`), "
                     "whose features are less specific to the source task")
        if kind in ("source", "autoencoder"):
            tries.append("`--weights=imagenet` where the ImageNet file is at hand")
    return "try " + "; ".join(tries)


def fit_problems(run):
    """Sentences on a model that did not learn the classes: validation
    accuracy far below training accuracy, or no better than always answering
    the largest class; each names what to try. Empty when neither holds."""
    accuracies = _accuracies(run)
    if accuracies is None:
        return []
    train, best_validation, validation, matrix = accuracies
    problems = []
    if matrix:
        counts = [sum(row) for row in matrix]
        majority = max(counts) / max(1, sum(counts))
        # In images: the logged accuracy is float32 (6/18 reads 0.33333334).
        if validation * sum(counts) < max(counts) + 0.5:
            problems.append(
                f"validation accuracy {validation:.2f} is no better than always answering "
                f"the largest class ({majority:.2f} of the validation images): the model "
                f"has not learned the classes")
    if train - best_validation >= OVERFIT_GAP:
        problems.append(
            f"validation accuracy (at best {best_validation:.2f}) stays far below training "
            f"accuracy (up to {train:.2f}) in phase {run.exported_phase}: the model learned "
            "its training images rather than the classes")
    if problems:
        problems[-1] += f"; {_what_to_try(run)}"
    return problems
