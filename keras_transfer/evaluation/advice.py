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
