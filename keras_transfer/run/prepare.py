"""Before the first epoch: the data loaded, every setting checked, the
output folder created last.

Everything that can be wrong with the settings (flags, data, weights, output
folder) is found here, before anything is written.
"""

import dataclasses
import os
import shutil
from typing import Any, Optional

from keras_transfer import (config as config_lib, data_checks, disk_space, multitask_checks,
                            outputs, schema)
from keras_transfer.data import summary as data_summary, task_streams, tasks
from keras_transfer.log import logger
from keras_transfer.models import backbones, classifier as model_lib, weights
from keras_transfer.run import teacher as teacher_lib
from keras_transfer.training import distribute


@dataclasses.dataclass(frozen=True)
class PreparedRun:
    """A run whose settings are all checked and whose folder exists.

    Attributes:
      config: the `RunConfig` with its `auto` cut and rate made concrete and a
        folder dataset named by its resolved path.
      data: the target task (`LabelledData`).
      image_size: the resolved input size.
      resolved: `--weights` resolved (`weights.ResolvedWeights`).
      unfreeze: `--unfreeze` resolved for those weights.
      output_dir: where this process writes.
      run_config: what `run_config.json` records (the config and the above).
      previous: with `--phase=fine_tune`, the metrics of the run it continues.
      state: "new", "resume" (an interrupted run continues), "continue"
        (`--phase=fine_tune` in a finished run's folder) or "worker" (a
        multi-worker worker's scratch folder).
      lock: the `outputs.FolderLock` this process holds on `output_dir` for
        the run's life (None on a worker: only the chief holds the folder).
      teacher: with `--phase=distill`, the run the student learns from.
      tasks: with `--phase=multitask`, every task (`task_streams.Task`), the
        target's first.
    """

    config: config_lib.RunConfig
    data: Any
    image_size: int
    resolved: Any
    unfreeze: str
    output_dir: str
    run_config: dict
    previous: Optional[schema.RunRecord]
    state: str
    lock: Optional[outputs.FolderLock]
    teacher: Optional[teacher_lib.Teacher] = None
    tasks: tuple = ()


def resolve_image_size(config, data):
    """`--image_size`, or the data's own resolution within the backbone's range."""
    spec = config.backbone
    if config.image_size:
        return config.image_size
    if data.native_size is None:
        return spec.default_size
    return max(spec.min_size, min(data.native_size, spec.default_size))


def _check_settings(config, image_size, unfreeze):
    """Checks that need TensorFlow or the data; raises before any writing."""
    fine_tunes = config.phase in ("fine_tune", "both", multitask_checks.MULTITASK)
    if fine_tunes or config.base_layer != "top":
        base = model_lib.cut_base(config.backbone, config.backbone.build(image_size),
                                  config.base_layer)
    if fine_tunes:
        model_lib.check_unfreeze(config.backbone, unfreeze, base)


def _phase_one_result(config):
    """The metrics of the run whose feature-extraction result
    `--phase=fine_tune` continues (None for other phases)."""
    if config.phase != "fine_tune":
        return None
    state = outputs.check_output_dir(config.output_dir or "", "fine_tune")
    if state == "resume":
        interrupted = outputs.read_json(os.path.join(config.output_dir, schema.CONFIG_FILE))
        raise outputs.OutputDirError(
            f"output_dir holds an interrupted run (phase={interrupted.get('phase')}); run "
            "its own command again to resume it, fine-tuning included. "
            f"Received: output_dir={config.output_dir!r}")
    if state != "continue":
        raise outputs.OutputDirError(
            "phase=fine_tune starts from a feature-extraction result: pass the "
            "--output_dir of a run that has one, or use --phase=both. "
            f"Received: output_dir={config.output_dir!r}"
        )
    return schema.RunRecord.from_dict(
        outputs.read_json(os.path.join(config.output_dir, schema.METRICS_FILE)))


def _base_layer(config, resolved, previous):
    """`config.base_layer` resolved. `--phase=fine_tune` continues the model
    of an earlier phase-1 run (`previous`), so `auto` is that run's cut, which
    the phase-1 rule may have put elsewhere than the fine-tuning one."""
    if previous is not None and config.base_layer == "auto":
        return previous.config["base_layer"]
    return backbones.resolve_base_layer(config.backbone, config.base_layer, resolved.kind,
                                        config.phase)


def _baseline(config, resolved):
    """`--baseline`, unless the run itself is the network from scratch."""
    if config.baseline and resolved.kind == "none" and config.phase not in (
            "fine_tune", "distill", multitask_checks.MULTITASK):
        logger.warning("warning: --baseline adds nothing to --weights=none: the run itself "
                       "trains the network from scratch, as the baseline would; no baseline")
        return False
    return config.baseline


def prepare(config, strategy, writes):
    """Loads the data and checks every setting; creates the output folder last.
    Returns a `PreparedRun`.

    On a multi-worker worker that is not the chief (`writes` False) the
    outputs go to a scratch folder that the run removes; the chief's folder
    (`config.output_dir`) is where every worker reads backups from.
    """
    teacher = teacher_lib.read(config)
    config = teacher_lib.with_teacher_data(config, teacher)
    data = tasks.load_for(config, "target", config.classes, config.dataset,
                          config.examples_per_class)
    teacher_lib.check_same_test_split(teacher, data)
    data = tasks.with_unlabeled(config, data)
    # The other tasks' data is checked as the target's, before any writing.
    task_list = (task_streams.load_tasks(config, data)
                 if config.phase == multitask_checks.MULTITASK else ())
    image_size = resolve_image_size(config, data)
    resolved = weights.resolve(config, image_size)
    unfreeze = backbones.resolve_unfreeze(config.unfreeze, resolved.kind)
    previous = _phase_one_result(config)
    # From here on the cut and the rate are concrete: the feature cache, the
    # baseline, the report and re-export all read them from the config.
    config = dataclasses.replace(
        config, base_layer=_base_layer(config, resolved, previous),
        fine_tune_learning_rate=config.fine_tune_rate_for(resolved.kind),
        dataset=data_checks.dataset_identity(config.dataset), baseline=_baseline(config, resolved))
    _check_settings(config, image_size, unfreeze)
    if writes:
        output_dir, state, lock = outputs.create_output_dir(config)
        # What a killed or disk-full save left behind keeps a full disk full.
        disk_space.remove_stale_temporaries(output_dir)
    else:  # Only the chief holds the run folder; a worker has its scratch.
        output_dir, state, lock = (distribute.worker_scratch_dir(strategy, config.output_dir),
                                   "worker", None)
        shutil.rmtree(output_dir, ignore_errors=True)
        os.makedirs(output_dir)
    try:
        run_config = _record_settings(config, image_size, unfreeze, output_dir, state,
                                      previous)
        data_summary.write_report(output_dir, data)
    except BaseException:
        if lock:  # A refused run frees the folder (a notebook process lives on).
            lock.release()
        raise
    return PreparedRun(config=config, data=data, image_size=image_size, resolved=resolved,
                       unfreeze=unfreeze, output_dir=output_dir, run_config=run_config,
                       previous=previous, state=state, lock=lock, teacher=teacher,
                       tasks=task_list)


def _record_settings(config, image_size, unfreeze, output_dir, state, previous):
    """Checks a continued or resumed run's settings against what it was
    started with, then writes run_config.json; returns what it holds."""
    run_config = {**config.to_dict(), "image_size": image_size, "output_dir": output_dir,
                  "unfreeze_resolved": unfreeze}
    if previous is not None:
        outputs.check_compatible(previous.config, run_config, config.output_dir)
    if state == "resume":
        interrupted = outputs.read_json(os.path.join(output_dir, schema.CONFIG_FILE))
        outputs.check_compatible(interrupted, run_config, output_dir,
                                 outputs.resume_keys(interrupted, run_config,
                                                     config_lib.RunConfig().to_dict()))
        logger.info(f"resuming the interrupted run in {output_dir}: finished phases are "
                    "kept, the interrupted one continues from its last completed epoch")
    outputs.write_json(os.path.join(output_dir, schema.CONFIG_FILE), run_config)
    return run_config
