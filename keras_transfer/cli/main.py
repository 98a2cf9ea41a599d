"""Command line: `python -m keras_transfer.main --model=vgg16 --phase=both`.

Defines the flags, turns them into a frozen `RunConfig` and runs it. Any flag
can come from a file: `--flagfile=flags/NAME.flags`.
"""

import sys

from absl import app, flags, logging

from keras_transfer import (autoencoder_checks, config as config_lib, multitask_checks,
                            semi_supervised_checks, tf_quiet)
from keras_transfer.checks import ConfigError
from keras_transfer.log import show_on_console
from keras_transfer.models import backbones

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.RunConfig.__dataclass_fields__


def _default(name):
    return _DEFAULTS[name].default


def define_flags():
    """Defines the CLI flags (idempotent, so tests can import this module)."""
    if "model" in FLAGS:
        return
    flags.DEFINE_enum("model", _default("model"), sorted(backbones.REGISTRY), "Backbone.")
    flags.DEFINE_enum("phase", _default("phase"), config_lib.PHASES,
                      "feature_extraction, fine_tune, both (the first then the second), "
                      "pretrain (whole network from scratch; saves base weights), distill "
                      "(a --model student learns from a --teacher run), or multitask (the "
                      "source task and the target trained together on one base).")
    flags.DEFINE_string("weights", _default("weights"),
                        "auto, imagenet, none, source, autoencoder (the encoder of an "
                        "autoencoder trained on unlabelled images), or a base weights file.")
    flags.DEFINE_string("dataset", _default("dataset"),
                        "digits, fashion_mnist, tfds:NAME, or a folder of class subfolders.")
    flags.DEFINE_list("classes", None, "Subset of the dataset's classes (names).")
    flags.DEFINE_string("source_dataset", None, "Source task dataset for weights=source.")
    flags.DEFINE_list("source_classes", None, "Source task classes for weights=source.")
    flags.DEFINE_string("teacher", None, "phase=distill: the output folder of a finished "
                        "run; the student trains on its data, classes, splits and image size.")
    flags.DEFINE_float("temperature", _default("temperature"), "phase=distill: softmax "
                       "temperature of the teacher's and the student's outputs.")
    flags.DEFINE_float("distill_alpha", _default("distill_alpha"), "phase=distill: weight of "
                       "the labels' cross-entropy; 1 - alpha weighs the teacher's.")
    flags.DEFINE_string("unlabeled_data", None, "Images without labels: a folder, or rest "
                        "(the training images beyond --examples_per_class, labels hidden). "
                        "phase=distill: the student learns the teacher's outputs on them; "
                        "weights=autoencoder: the autoencoder reconstructs them.")
    flags.DEFINE_enum("autoencoder", _default("autoencoder"), autoencoder_checks.OBJECTIVES,
                      "weights=autoencoder: what the encoder learns to undo: nothing, "
                      "Gaussian noise (--noise_stddev) or hidden patches (--mask_ratio).")
    flags.DEFINE_float("noise_stddev", _default("noise_stddev"), "autoencoder=denoising: "
                       "the noise's standard deviation, as a share of the 0-255 range.")
    flags.DEFINE_float("mask_ratio", _default("mask_ratio"), "autoencoder=masked: the share "
                       "of 4x4 patches hidden; the loss counts the hidden pixels.")
    flags.DEFINE_enum("pretrain_objective", _default("pretrain_objective"),
                      autoencoder_checks.PRETRAIN_OBJECTIVES, "phase=pretrain: train the "
                      "base on the labels (supervised) or as an autoencoder's encoder on the "
                      "dataset's images (and --unlabeled_data).")
    flags.DEFINE_enum("semi_supervised", _default("semi_supervised"),
                      semi_supervised_checks.SEMI_SUPERVISED, "fixmatch: fine-tuning (and "
                      "training from scratch) also learns --unlabeled_data: pseudo-labels "
                      "from a weak view where confident, trained on a strong view; "
                      "self_training: the fine-tuned model labels the pool, the model "
                      "trains on its confident labels too, for a few rounds.")
    flags.DEFINE_integer("self_training_rounds", _default("self_training_rounds"),
                         "semi_supervised=self_training: rounds of labelling the pool and "
                         "training on it, --semi_supervised_epochs each.")
    flags.DEFINE_float("confidence_threshold", _default("confidence_threshold"),
                       "semi_supervised: the least confidence a pseudo-label needs, relative to "
                       "the model's mean confidence on labelled images (default: the method's "
                       "own, 0.95 for fixmatch, 0.8 for self_training).")
    flags.DEFINE_integer("unlabeled_ratio", _default("unlabeled_ratio"), "semi_supervised: "
                         "unlabelled images per labelled image in a step.")
    flags.DEFINE_float("unlabeled_weight", _default("unlabeled_weight"), "semi_supervised: "
                       "the weight of the unlabelled images' loss, after its warm-up.")
    flags.DEFINE_integer("unlabeled_warmup_epochs", _default("unlabeled_warmup_epochs"),
                         "semi_supervised: epochs over which that weight rises from 0.")
    flags.DEFINE_integer("semi_supervised_warmup_epochs",
                         _default("semi_supervised_warmup_epochs"),
                         "semi_supervised: epochs over which phase 3's learning rate (each "
                         "self-training round's) rises from 0 to the fine-tuning rate.")
    flags.DEFINE_integer("semi_supervised_epochs", _default("semi_supervised_epochs"),
                         "semi_supervised: phase 3's epochs (each self-training round's); "
                         "default: --fine_tune_epochs.")
    flags.DEFINE_multi_string("tasks", [], "phase=multitask: a further task beside the "
                              "target and the source task, DATASET or DATASET@CLASS,CLASS,... "
                              "(repeat the flag for more).")
    flags.DEFINE_enum("task_sampling", _default("task_sampling"), multitask_checks.TASK_SAMPLING,
                      "phase=multitask: joint: a batch of --batch_size from every task each "
                      "step, the smaller tasks repeating within an epoch of the largest; "
                      "proportional: the tasks share the step's images by their sizes, so an "
                      "epoch is one pass over each.")
    flags.DEFINE_list("task_weights", [], "phase=multitask: each task's loss weight: the "
                      "target, the source task, then each of --tasks (default: 1 each).")
    flags.DEFINE_enum("task_weighting", _default("task_weighting"),
                      multitask_checks.TASK_WEIGHTING, "phase=multitask: fixed (--task_weights) "
                      "or uncertainty (weights learned with the network, Kendall et al. 2018).")
    flags.DEFINE_enum("export_heads", _default("export_heads"), multitask_checks.EXPORT_HEADS,
                      "phase=multitask: export the target's classifier, or all heads (one "
                      "signature per task, each with its labels).")
    flags.DEFINE_enum("fine_tune_tasks", _default("fine_tune_tasks"),
                      multitask_checks.FINE_TUNE_TASKS, "phase=multitask: what the "
                      "fine-tuning after the joint phase trains: the target alone, or all "
                      "tasks together (the others keep regularising the shared base).")
    flags.DEFINE_string("output_dir", None, "Folder for everything the run writes "
                        "(default: a new runs/MODEL-PHASE-TIMESTAMP).")
    flags.DEFINE_enum("strategy", _default("strategy"), config_lib.STRATEGIES,
                      "tf.distribute strategy; multi_worker reads TF_CONFIG.")
    flags.DEFINE_integer("cpu_replicas", 0, "With strategy=mirrored and no GPU: "
                         "split the CPU into this many logical devices.")
    flags.DEFINE_integer("image_size", None, "Square input size (default: the data's "
                         "own size within the backbone's range; 224 for folders).")
    flags.DEFINE_integer("batch_size", _default("batch_size"), "Per-replica batch size.")
    flags.DEFINE_integer("min_steps_per_epoch", _default("min_steps_per_epoch"),
                         "A smaller training split is repeated (reshuffled) within an "
                         "epoch until it has this many steps (1: one pass an epoch).")
    flags.DEFINE_integer("epochs", _default("epochs"), "Feature-extraction epochs.")
    flags.DEFINE_float("learning_rate", _default("learning_rate"), "Feature-extraction learning rate.")
    flags.DEFINE_integer("fine_tune_epochs", _default("fine_tune_epochs"), "Fine-tune epochs.")
    flags.DEFINE_float("fine_tune_learning_rate", None,
                       "Fine-tune learning rate; default: 1e-4 for ImageNet or file "
                       "weights, the backbone's from-scratch rate for a source-task base.")
    flags.DEFINE_enum("fine_tune_schedule", _default("fine_tune_schedule"),
                      config_lib.SCHEDULES, "cosine: the fine-tune rate decays from "
                      "--fine_tune_learning_rate to 0 along a half cosine over the "
                      "phase's steps; constant: it stays.")
    flags.DEFINE_integer("pretrain_epochs", _default("pretrain_epochs"),
                         "Epochs of training from scratch (pretrain, source task).")
    flags.DEFINE_float("pretrain_learning_rate", None,
                       "Learning rate of training from scratch (pretrain, source task, "
                       "baseline); default: the backbone's (VGG 1e-4, others 1e-3).")
    flags.DEFINE_string("unfreeze", _default("unfreeze"), "Fine-tune from: auto (top for "
                        "ImageNet or file weights, all for a source-task base), top (last "
                        "block/stage), all, a block name (block4, conv4) or a layer name.")
    flags.DEFINE_string("base_layer", _default("base_layer"), "Where the base ends: auto "
                        "(top for ImageNet or file weights; for a source-task base, and for "
                        "phase=multitask from random weights, the block below the top one, "
                        "VGG's block3 when fine-tuned), top (its output), "
                        "a block name (block4, conv4: that block's output) or a layer name; "
                        "the head pools what comes out there.")
    flags.DEFINE_float("dropout", _default("dropout"), "Dropout before the head.")
    flags.DEFINE_float("l2", _default("l2"), "L2 penalty on the head's kernel.")
    flags.DEFINE_float("l2_sp", _default("l2_sp"), "Fine-tuning: penalty on the squared "
                       "distance of the base's weights from where fine-tuning started "
                       "(L2-SP; 0: off).")
    flags.DEFINE_float("label_smoothing", _default("label_smoothing"), "Label smoothing of "
                       "the cross-entropy: source pretraining, both phases and the "
                       "baseline (0: off).")
    flags.DEFINE_list("augment", [], "Training augmentations: flip, rotation, zoom.")
    flags.DEFINE_enum("class_weight", _default("class_weight"), config_lib.CLASS_WEIGHTS,
                      "balanced: weight classes by inverse training frequency.")
    flags.DEFINE_integer("examples_per_class", 0, "Cap on training labels per class (0: all).")
    flags.DEFINE_integer("source_examples_per_class", 0, "Same cap for the source task "
                         "(and, with phase=multitask, every --tasks entry).")
    flags.DEFINE_float("validation_fraction", _default("validation_fraction"), "Validation share.")
    flags.DEFINE_float("test_fraction", _default("test_fraction"), "Test share.")
    flags.DEFINE_integer("early_stopping_patience", _default("early_stopping_patience"),
                         "Epochs without --monitor improvement before stopping (0: off).")
    flags.DEFINE_bool("baseline", False, "Also train the same network from scratch.")
    flags.DEFINE_integer("repeats", _default("repeats"), "Train (and the baseline) this "
                         "many times with seeds seed..seed+N-1; report mean and spread.")
    flags.DEFINE_enum("monitor", _default("monitor"), config_lib.MONITORS,
                      "Validation quantity that picks each phase's best epoch "
                      "(min for val_loss, max otherwise) and early stopping.")
    flags.DEFINE_bool("keep_best_phase", _default("keep_best_phase"),
                      "Export the feature-extraction model when fine-tuning ends "
                      "worse on validation (by --monitor).")
    flags.DEFINE_integer("seed", _default("seed"), "Seed for splits, shuffling and initialisation.")
    flags.DEFINE_bool("mixed_precision", False, "mixed_float16 on GPU, mixed_bfloat16 on CPU.")
    flags.DEFINE_bool("jit_compile", False, "Compile train steps with XLA.")
    flags.DEFINE_bool("deterministic", False, "Deterministic ops: the same command gives "
                      "bit-identical weights (slower on GPU).")
    flags.DEFINE_bool("export", True, "Write the SavedModel at the end of the run; "
                      "--noexport: metrics and checkpoints only (python -m "
                      "keras_transfer.export --run_dir=... exports the run later).")
    flags.DEFINE_bool("export_tflite", False, "Also write a TFLite model of the pixels "
                      "path into the export version (tflite/model.tflite).")
    flags.DEFINE_string("cache_dir", None, "Cache of source-pretrained bases "
                        "(default: $KERAS_TRANSFER_CACHE or ~/.cache/keras_transfer).")
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory.")
    flags.DEFINE_alias("data_dir", "tfds_data_dir")
    flags.DEFINE_string("tfds_split", None, "TFDS splits to pool before the stratified "
                        "split, in TFDS syntax (e.g. train, train+test; default: all).")
    flags.DEFINE_string("split_file", None, "Folders: pin the train/validation/test split "
                        "in this JSON file (written on first use; new images are added, "
                        "old ones never move).")
    flags.DEFINE_float("max_broken_fraction", _default("max_broken_fraction"),
                       "Stop when more than this share of a folder's image files is broken.")
    flags.DEFINE_enum("feature_cache", _default("feature_cache"), config_lib.FEATURE_CACHE,
                      "Phase 1 records the frozen base's features once and trains the "
                      "head on them (unless --augment): auto: in memory when they fit, "
                      "else streamed from disk; memory; disk; off: the base runs every epoch.")
    flags.DEFINE_integer("feature_cache_copies", _default("feature_cache_copies"),
                         "With --augment: record this many augmented views of each training "
                         "image and draw one per epoch (0: the base runs every epoch).")
    flags.DEFINE_float("max_megapixels", _default("max_megapixels"),
                       "Refuse images whose header declares more pixels than this "
                       "(millions), before decoding them: in training and in the "
                       "export's serving_default.")
    flags.DEFINE_integer("verbose", None, "Progress: 0 silent (the run's own lines too, "
                         "but warnings), 1 a bar, 2 a line per epoch (default: 1 on a "
                         "terminal, else 2).")


def _tuple(values):
    return tuple(values) if values else None


def _floats(name, values):
    try:
        return tuple(float(value) for value in values or ())
    except ValueError:
        raise ConfigError(f"{name} takes numbers. Received: {name}={','.join(values)}") from None


def config_from_flags():
    """The frozen `RunConfig` the parsed flags describe."""
    names = [name for name in _DEFAULTS if name in FLAGS]
    values = {name: FLAGS[name].value for name in names}
    values["classes"] = _tuple(values["classes"])
    values["source_classes"] = _tuple(values["source_classes"])
    values["augment"] = tuple(values["augment"] or ())
    values["tasks"] = tuple(values["tasks"] or ())
    values["task_weights"] = _floats("task_weights", values["task_weights"])
    if values["verbose"] is None:
        values["verbose"] = 1 if sys.stdout.isatty() else 2
    return config_lib.RunConfig(**values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        # TensorFlow's Python INFO lines (SavedModel internals, staging paths)
        # read as noise next to the run's own progress; --verbosity=0 shows them.
        logging.set_verbosity(logging.WARNING)
    try:
        config = config_from_flags()
        show_on_console(config.verbose)
        # TensorFlow's C++ start-up chatter (CUDA probing on a CPU machine)
        # buries the run's own output; warnings and errors still show.
        tf_quiet.import_tensorflow()
        from keras_transfer.run import execute  # TensorFlow loads only for a valid config.

        execute.run(config)
    except config_lib.ConfigError as error:
        # Settings or data the run cannot use: one line, no traceback.
        sys.exit(f"keras_transfer: error: {error}{_origin_of_output_dir(error)}")
    except KeyboardInterrupt:
        # Every backup and checkpoint is renamed into place whole: what was
        # written stays usable, and the same command continues the run.
        again = ("the same command" if FLAGS.output_dir else
                 "the same command with --output_dir=<the output folder printed above>")
        print(f"keras_transfer: interrupted; {again} continues the run from its last "
              "completed epoch", file=sys.stderr, flush=True)
        sys.exit(130)


def _flagfile_setting(path, name):
    """Whether the flagfile at `path` sets `--name`."""
    try:
        with open(path, encoding="utf-8") as handle:
            return any(line.strip().startswith(f"--{name}=") for line in handle)
    except OSError:
        return False


def _origin_of_output_dir(error):
    """Where an `--output_dir` that the error is about came from, when that
    was a flagfile: a refusal to overwrite "another run" is puzzling when the
    folder was fixed by a file the user never read."""
    if "output_dir" not in str(error):
        return ""
    origin = None
    for argument in sys.argv[1:]:  # Later settings win, as absl reads them.
        if argument.startswith("--output_dir="):
            origin = None
        elif argument.startswith("--flagfile="):
            path = argument.split("=", 1)[1]
            origin = path if _flagfile_setting(path, "output_dir") else origin
    return f" (--output_dir was set by {origin})" if origin else ""


def run_cli():
    """Entry point of the `keras-transfer` console script."""
    define_flags()
    app.run(main)

