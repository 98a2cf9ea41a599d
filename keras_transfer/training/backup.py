"""Per-epoch backups of a phase, so a killed run continues where it stopped.

Keras' `BackupAndRestore` writes its weights file in place (a kill during the
write leaves a broken backup) and forgets the other callbacks: after a restart
`ModelCheckpoint` would take the first resumed epoch as the best so far, and
`EarlyStopping` would wait from zero again. Here every completed epoch leaves:

    <folder>/epoch-<N>.weights.h5   the model's weights and optimizer slots
    <folder>/state.json             N, the history so far, the seconds spent,
                                    the best-so-far of the callbacks, and the
                                    states of the model's random generators

With the loop drawing the batches of the done epochs again (`loop.Loop.fit`),
a resumed phase trains on the batches, augmentations and dropout masks it
would have had: with `--deterministic`, bit for bit.

The weights file is written under a temporary name and renamed, then
`state.json` (also renamed into place) is switched to it, then the previous
epoch's file is removed: killed at any instant, `state.json` names a
complete file.
"""

import json
import os
import time

import keras

from keras_transfer import faults, outputs

STATE_FILE = "state.json"


def _plain(value):
    return None if value is None else float(value)


# What each watched callback needs to go on as if never stopped.
_RESUMABLE = {
    keras.callbacks.ModelCheckpoint: ("best",),
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
}


def _seed_states(model):
    """The states of `model`'s random generators (Dropout's masks): not in
    its weights file, so kept in state.json, or a resumed phase would draw
    the masks of its first epochs again."""
    return [variable for variable in model.variables
            if variable.path.endswith("seed_generator_state")]


def _fields_of(callback):
    for kind, fields in _RESUMABLE.items():
        if isinstance(callback, kind):
            return fields
    return ()


def resumable(callback):
    """Whether `callback` keeps a best-so-far that a resumed phase needs."""
    return bool(_fields_of(callback))


class PhaseBackup(keras.callbacks.Callback):
    """Backs a phase up after every epoch and restores it on a restart.

    `watched` are the callbacks whose best-so-far is saved and restored
    (ModelCheckpoint, EarlyStopping); `report` a `callbacks.ValidationReport`
    whose per-epoch matrices are too; `csv_path` the phase's CSVLogger file,
    cut back to the restored epochs. `writes` is False on the workers of a
    multi-worker run that are not the chief: every worker restores from the
    chief's folder, only the chief writes it.
    """

    def __init__(self, folder, *, first_epoch=0, watched=(), report=None, csv_path=None,
                 writes=True):
        super().__init__()
        self.folder = folder
        self.phase = os.path.basename(folder)
        self.first_epoch = first_epoch  # Phase 2 continues phase 1's epoch count.
        self.watched = list(watched)
        self.report = report
        self.csv_path = csv_path
        self.writes = writes
        self.seconds_before = 0.0  # Spent in the phase before the restart.
        self.resumed_from = None  # Epochs of this phase done before the restart.
        self._history = {}
        self._started = None

    def on_train_begin(self, logs=None):
        self._started = time.time()

    def restore(self):
        """Loads the last backup into the model and the watched callbacks;
        returns (epoch to continue from, history so far) or None. `loop.Loop`
        calls it after every callback's `on_train_begin`, which resets them."""
        state = read_state(self.folder)
        if state is None:
            return None
        self.model.load_weights(os.path.join(self.folder, state["weights"]))
        for variable, value in zip(_seed_states(self.model), state.get("seed_states", [])):
            variable.assign(value)
        for callback, saved in zip(self.watched, state["watched"]):
            for key, value in saved.items():
                setattr(callback, key, value)
        if self.report is not None:
            self.report.matrices = list(state["matrices"])
        if self.csv_path:
            # Rows of an epoch that died before its backup go; the logger
            # (appending) goes on from the last backed-up epoch.
            _keep_csv_rows(self.csv_path, len(next(iter(state["history"].values()), [])))
        self._history = {key: list(values) for key, values in state["history"].items()}
        self.seconds_before = state["seconds"]
        self.resumed_from = state["epoch"] - self.first_epoch
        # A phase that had ended (all epochs, or stopped early) runs no more.
        return (self.params["epochs"] if state["finished"] else state["epoch"],
                state["history"])

    def seconds(self):
        """The phase's time so far, across restarts."""
        return self.seconds_before + time.time() - self._started

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(float(value))
        if not self.writes:
            return
        os.makedirs(self.folder, exist_ok=True)
        name = f"epoch-{epoch + 1}.weights.h5"
        outputs.save_weights_atomically(
            self.model, os.path.join(self.folder, name),
            before_rename=lambda: faults.reached(
                f"{self.phase}:{epoch + 1 - self.first_epoch}:saving"))
        previous = read_state(self.folder)
        outputs.write_json(os.path.join(self.folder, STATE_FILE), {
            "epoch": epoch + 1,
            "finished": bool(self.model.stop_training) or epoch + 1 >= self.params["epochs"],
            "weights": name,
            "history": self._history,
            "seconds": self.seconds(),
            "watched": [{key: _plain(getattr(callback, key)) if key == "best"
                         else getattr(callback, key) for key in _fields_of(callback)}
                        for callback in self.watched],
            "matrices": self.report.matrices if self.report is not None else [],
            "seed_states": [keras.ops.convert_to_numpy(variable).tolist()
                            for variable in _seed_states(self.model)],
        })
        if previous and previous["weights"] != name:
            _remove(os.path.join(self.folder, previous["weights"]))
        faults.reached(f"{self.phase}:{epoch + 1 - self.first_epoch}")


def read_state(folder):
    """The last completed epoch's state, or None when there is none."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _keep_csv_rows(path, rows):
    """Keeps the header and the first `rows` rows of a CSV history, in place
    (the logger holds it open for appending)."""
    if not os.path.isfile(path):
        return
    with open(path, "r+", encoding="utf-8") as handle:
        lines = handle.readlines()[:1 + rows]
        handle.seek(0)
        handle.writelines(lines)
        handle.truncate()


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
