"""A run killed with SIGKILL continues where it stopped when the same
command runs again.

The kills are real (`faults`: the process sends itself SIGKILL at a named
point, so the test knows where it stopped), plus one from outside at an
arbitrary moment of fine-tuning. That a resumed phase computes what an
uninterrupted one does (weights, optimizer state, best-so-far) is checked
exactly, in process, in test_loop.py.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, TINY
from keras_transfer import faults, outputs
from keras_transfer.training import backup as backup_lib

SETTINGS = {**TINY, "model": "vgg16", "classes": "5,6", "examples_per_class": 8,
            "source_examples_per_class": 8, "epochs": 2, "fine_tune_epochs": 2,
            "pretrain_epochs": 2, "early_stopping_patience": 0, "batch_size": 8,
            "verbose": 2}


def _command(output_dir, cache_dir, **overrides):
    args = {**SETTINGS, "output_dir": output_dir, "cache_dir": cache_dir, **overrides}
    return [sys.executable, "-m", "keras_transfer.main",
            *[f"--{key}={value}" for key, value in args.items()]]


def _run(command, kill_at=None):
    env = {**os.environ}
    env.pop(faults.ENV, None)
    if kill_at:
        env[faults.ENV] = kill_at
    return subprocess.run(command, cwd=REPO, text=True, capture_output=True, env=env,
                          timeout=600)


def _killed(result):
    assert result.returncode == -signal.SIGKILL, result.stdout[-2000:] + result.stderr[-3000:]


@pytest.mark.long
def test_killed_at_every_stage_the_same_command_finishes_the_run(tmp_path):
    """Killed during source pretraining, phase 1, phase 2 (while saving its
    backup) and the export; each restart continues, a restart with other
    settings is refused, and the finished run has every phase's epochs
    exactly once, is never resumed again, and (with --deterministic) ends
    bit-identical to the same run never stopped: dropout, augmentation and
    the shuffle go on where they stood."""
    output_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    exact = dict(deterministic=True, augment="flip")
    command = _command(output_dir, cache_dir, **exact)
    _killed(_run(command, kill_at="source_pretrain:1"))
    other = _run(_command(output_dir, cache_dir, image_size=48, **exact))
    assert other.returncode != 0 and "holds a run with image_size=32" in other.stderr
    for point in ("feature_extraction:1", "fine_tune:2:saving", "export"):
        result = _run(command, kill_at=point)
        _killed(result)
        assert "resuming the interrupted run" in result.stdout
    assert "phase fine_tune resumed after epoch 1" in result.stdout
    assert any(name.startswith(".staging-") for name in os.listdir(output_dir / "export"))
    result = _run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming the interrupted run" in result.stdout
    metrics = outputs.read_json(str(output_dir / "metrics.json"))
    phases = metrics["phases"]
    assert phases["feature_extraction"]["epochs_run"] == SETTINGS["epochs"]
    assert phases["fine_tune"]["epochs_run"] == SETTINGS["fine_tune_epochs"]
    assert phases["fine_tune"]["first_epoch"] == SETTINGS["epochs"]
    # The last restart found both phases finished (the kill came in the export).
    assert metrics["resumed"] == {"from_epoch": {"feature_extraction": 2, "fine_tune": 2}}
    with open(output_dir / "history_fine_tune.csv") as handle:
        # fine_tune:2:saving died after the CSV row of epoch 2, before its
        # backup: that epoch ran again, and its row is there once.
        assert len(handle.read().splitlines()) == 1 + SETTINGS["fine_tune_epochs"]
    assert os.listdir(output_dir / "export") == ["1"]  # The half-written one is gone.
    assert not (output_dir / "backup").exists()
    with open(output_dir / "history.csv") as handle:
        epochs = [int(line.split(",")[1]) for line in handle.read().splitlines()[1:]]
    assert epochs == list(range(1, SETTINGS["epochs"] + SETTINGS["fine_tune_epochs"] + 1))
    never_stopped = _run(_command(tmp_path / "whole", tmp_path / "other_cache", **exact))
    assert never_stopped.returncode == 0, never_stopped.stderr[-3000:]
    whole = outputs.read_json(str(tmp_path / "whole" / "metrics.json"))
    assert metrics["weights_fingerprint"] == whole["weights_fingerprint"]
    assert metrics["test"]["accuracy"] == whole["test"]["accuracy"]
    # A kill during the final clean-up would leave the backups in the finished
    # run: the next command that looks at the folder removes them.
    (output_dir / "backup" / "fine_tune").mkdir(parents=True)
    (output_dir / "backup" / "fine_tune" / "epoch-2.weights.h5").write_bytes(b"x" * 1000)
    again = _run(command)
    assert again.returncode != 0 and "would be overwritten" in again.stderr
    assert not (output_dir / "backup").exists()


@pytest.mark.long
def test_a_ctrl_c_and_a_kill_from_outside_mid_phase_resume(tmp_path):
    """Ctrl-C (SIGINT) mid-phase stops with one line saying how to continue;
    the same command resumes, is killed (SIGKILL) from outside at another
    epoch, and the same command again finishes the phase."""
    output_dir = tmp_path / "run"
    # --weights=none: one phase, the whole network from scratch, 4 epochs.
    command = _command(output_dir, tmp_path / "cache", weights="none", epochs=0,
                       fine_tune_epochs=4)
    backup = str(output_dir / "backup" / "scratch")
    for sent, after_epoch in ((signal.SIGINT, 1), (signal.SIGKILL, 2)):
        with open(tmp_path / "stderr", "w") as stderr:
            # SIGINT as a terminal sends it, even where CI starts us with it ignored.
            process = subprocess.Popen(
                command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            deadline = time.time() + 300
            while ((backup_lib.read_state(backup) or {"epoch": 0})["epoch"] < after_epoch
                   and process.poll() is None and time.time() < deadline):
                time.sleep(0.05)
            process.send_signal(sent)
            process.wait(timeout=300)
        said = (tmp_path / "stderr").read_text()
        if sent == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL, said[-3000:]
        else:  # Ctrl-C: one line saying how to continue, no traceback.
            assert process.returncode == 130, said[-3000:]
            assert "interrupted; the same command continues the run" in said
            assert "Traceback" not in said, said[-3000:]
    result = _run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = outputs.read_json(str(output_dir / "metrics.json"))
    assert metrics["phases"]["scratch"]["epochs_run"] == 4
    assert metrics["resumed"]["from_epoch"]["scratch"] >= 2


INTERRUPTED = {"model": "vgg16", "classes": ["5", "6"], "image_size": 32, "weights": "auto",
               "augment": [], "batch_size": 32, "label_smoothing": 0.1,
               "monitor": "val_loss", "output_dir": "run", "verbose": 2, "export": True}


@pytest.mark.parametrize("key, other", [("model", "resnet50"), ("classes", ["5", "7"]),
                                        ("image_size", 48), ("weights", "none"),
                                        ("augment", ["flip"]), ("batch_size", 4),
                                        ("label_smoothing", 0.0), ("monitor", "val_accuracy")])
def test_a_restart_with_other_settings_is_refused(key, other):
    current = {**INTERRUPTED, key: other}
    with pytest.raises(outputs.OutputDirError, match=f"holds a run with {key}="):
        outputs.check_compatible(INTERRUPTED, current, "run",
                                 outputs.resume_keys(INTERRUPTED, current))


def test_a_restart_may_change_where_files_go_and_how_it_reports():
    current = {**INTERRUPTED, "output_dir": "/abs/run", "verbose": 0, "export": False}
    outputs.check_compatible(INTERRUPTED, current, "run",
                             outputs.resume_keys(INTERRUPTED, current))


def test_a_folder_dataset_is_known_by_its_resolved_path(tmp_path, monkeypatch):
    from keras_transfer import data_checks

    (tmp_path / "clean").mkdir()
    (tmp_path / "elsewhere" / "clean").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spellings = {data_checks.dataset_identity(name)
                 for name in ("clean", "clean/", "./clean", str(tmp_path / "clean"))}
    assert spellings == {os.path.realpath(tmp_path / "clean")}
    monkeypatch.chdir(tmp_path / "elsewhere")  # The same name, another folder.
    assert data_checks.dataset_identity("clean") != spellings.pop()
    assert data_checks.dataset_identity("digits") == "digits"
    assert data_checks.dataset_identity("tfds:beans") == "tfds:beans"


def test_a_live_run_holds_its_folder_and_the_same_command_again_is_refused(tmp_path):
    """A retry or a double submit while the run is alive must not "resume"
    over it: the second process stops with one line naming the holder, and
    the first finishes as if alone. Its death frees the folder at once."""
    output_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    # One short phase from scratch: the lock, not the training, is the question.
    command = _command(output_dir, cache_dir, weights="none", epochs=0, fine_tune_epochs=1)
    first = subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not (output_dir / "run_config.json").exists() and time.time() < deadline:
        assert first.poll() is None, first.stdout.read()[-3000:]
        time.sleep(0.05)
    second = _run(command)
    assert second.returncode != 0
    assert (f"output_dir is in use by the run of process {first.pid} on "
            f"{socket.gethostname()}") in second.stderr, second.stderr[-2000:]
    assert "Traceback" not in second.stderr and "resuming" not in second.stdout
    console = first.communicate(timeout=600)[0]
    assert first.returncode == 0, console[-3000:]
    assert "resuming" not in console
    assert list(outputs.read_json(output_dir / "metrics.json")["phases"]) == ["scratch"]
    assert sorted(os.listdir(output_dir / "export")) == ["1"]  # One export, not two.

    # A killed holder leaves nothing to clear: the next process takes the folder.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from keras_transfer import outputs; "
         "lock = outputs.FolderLock(sys.argv[1]); print('held', flush=True); time.sleep(600)",
         str(tmp_path)], cwd=REPO, text=True, stdout=subprocess.PIPE)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(outputs.OutputDirError, match=f"process {holder.pid} on"):
        outputs.FolderLock(str(tmp_path))
    holder.kill()
    holder.wait()
    outputs.FolderLock(str(tmp_path)).release()


def test_a_newer_version_resumes_a_run_that_lacked_its_new_settings_at_their_defaults():
    defaults = {"task_sampling": "joint", "tasks": []}
    at_default = {**INTERRUPTED, **defaults}
    outputs.check_compatible(INTERRUPTED, at_default, "run",
                             outputs.resume_keys(INTERRUPTED, at_default, defaults))
    changed = {**at_default, "task_sampling": "proportional"}
    with pytest.raises(outputs.OutputDirError, match="holds a run with task_sampling=None"):
        outputs.check_compatible(INTERRUPTED, changed, "run",
                                 outputs.resume_keys(INTERRUPTED, changed, defaults))
