"""`report.md`'s section on a base this run's `--weights=autoencoder`
stands on: the reconstruction loss per epoch, the reconstructions, and the
linear probe of its features beside a random base, PCA of the pixels and
(where cached) the supervised source base."""

from keras_transfer.evaluation.markdown import number, table


def _losses(phase):
    if not phase:
        return ["The autoencoder was trained by an earlier run with the same settings "
                "(cached); its losses are in that run's report.", ""]
    history = phase["history"]
    rows = [(epoch + 1, number(loss, 5), number(validation, 5)) for epoch, (loss, validation)
            in enumerate(zip(history["loss"], history["val_loss"]))]
    return ["Reconstruction loss (mean squared error on 0-1 pixels) per epoch; the best "
            f"epoch by validation loss, {phase['best_epoch']}, is the base:", "",
            *table(("epoch", "training", "validation (held-out pool images)"), rows), ""]


def _probe(scores):
    if not scores:
        return []
    rows = [(score["base"], score["features"], number(score["logme"]),
             number(score["logistic_accuracy"])) for score in scores]
    ours, others = scores[0], scores[1:]
    rival = max(others, key=lambda score: score["logistic_accuracy"])
    verdict = ("the autoencoder's features separate the classes best"
               if ours["logistic_accuracy"] > rival["logistic_accuracy"] else
               f"**the {rival['base']} does as well or better than the autoencoder's "
               "features: the pretraining did not pay here**")
    return ["Linear probe before fine-tuning: LogME of the frozen features on the "
            "training split (higher is better), and the validation accuracy of a "
            f"logistic regression fitted on them; {verdict}.", "",
            *table(("features from", "per image", "LogME", "logistic regression accuracy"),
                   rows), ""]


def section(run):
    """The section's lines; none unless the base is an autoencoder's."""
    if (run.weights or {}).get("kind") != "autoencoder":
        return []
    config = run.config
    lines = ["## What the base learned", "",
             f"The base is the encoder of a `{config['autoencoder']}` autoencoder cut at "
             f"`{config['base_layer']}`, trained on unlabelled images "
             f"({run.weights['detail'].split(';')[0].split(' on ', 1)[-1]}).", ""]
    lines += _losses(run.source_pretrain)
    if "reconstructions" in run.plots:
        lines += [f"- `{run.plots['reconstructions']}`: held-out images as the encoder saw "
                  "them, their reconstructions, and the originals", ""]
    return lines + _probe(run.base_probe)
