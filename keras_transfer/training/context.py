"""What every part of a run's training shares, fixed before the first epoch."""

import dataclasses
import os
from typing import Any, Optional


@dataclasses.dataclass(frozen=True)
class RunContext:
    """The run's shared state, built whole by the run before training.

    Attributes:
      strategy: the `tf.distribute.Strategy` every model and optimizer is
        created under.
      image_size: the square input size the data is resized to.
      global_batch: the per-replica `--batch_size` times the replicas: what
        the `tf.data` pipelines batch by.
      output_dir: where this process writes; a scratch folder on a
        multi-worker worker that is not the chief.
      backup_root: where every worker reads the per-epoch backups from: the
        chief's output folder.
      writes: whether this process writes results (the chief, or the only
        process); other workers train in step and write nothing that stays.
      unfreeze: `--unfreeze` resolved for the weights (`top`, `all`, ...).
      class_weight: `--class_weight=balanced`'s {class index: weight}, or None.
      test_data: the test split's `tf.data` pipeline, evaluated after each phase.
    """

    strategy: Any
    image_size: int
    global_batch: int
    output_dir: str
    backup_root: str
    writes: bool
    unfreeze: str
    class_weight: Optional[dict]
    test_data: Any

    def for_seed(self, index, seed):
        """The context of `--repeats`' seed number `index`: the first seed
        writes to the run's folder (its model is exported), the others to
        repeats/seed_<seed>/ inside it."""
        if index == 0:
            return self
        folder = os.path.join("repeats", f"seed_{seed}")
        return dataclasses.replace(self, output_dir=os.path.join(self.output_dir, folder),
                                   backup_root=os.path.join(self.backup_root, folder))
