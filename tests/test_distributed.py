"""tf.distribute for real: two worker processes on localhost ports, two
logical CPU devices, and the checks on TF_CONFIG."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, TINY
from keras_transfer import config as config_lib, outputs
from keras_transfer.training import distribute


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("localhost", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"localhost:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


# VGG16 (no BatchNormalization, quick to trace) at 32 px on two classes, one
# global batch of 16 per epoch, no dropout: the runs of one, two replicas and
# two workers see the same global batches, so their results agree to
# float rounding, not just within noise.
TASK = {**TINY, "model": "vgg16", "classes": "5,6", "examples_per_class": 8,
        "source_examples_per_class": 8, "epochs": 2, "fine_tune_epochs": 1,
        "pretrain_epochs": 1, "dropout": 0, "batch_size": 8,
        "verbose": 2}  # The console lines the tests read (0 silences them).


def _same_result(a, b):
    """The same losses to float rounding, every phase's first epoch (later
    ones drift further: Adam divides by the root of tiny second moments,
    which magnifies rounding), and close validation losses."""
    runs = [{"source_pretrain": run["source_pretrain"], **run["phases"]} for run in (a, b)]
    for phase in [name for name in runs[0] if runs[0][name] and runs[1][name]]:
        first, second = (run[phase]["history"] for run in runs)
        assert first["loss"][0] == pytest.approx(second["loss"][0], rel=1e-3), phase
        assert first["val_loss"][0] == pytest.approx(second["val_loss"][0], rel=1e-2), phase
        assert first["val_loss"] == pytest.approx(second["val_loss"], rel=5e-2), phase


def _args(**overrides):
    return [f"--{key}={value}" for key, value in {**TASK, **overrides}.items()]


def _start(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_transfer.main", *args], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env})


def _fingerprint(console):
    lines = [line for line in console.splitlines() if "final weights fingerprint" in line]
    assert lines, console[-3000:]
    return lines[-1].split()[-1]


@pytest.mark.parametrize("raw, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "no cluster.worker list"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}',
     "0 <= index < 1"),
    ("", "needs the TF_CONFIG environment variable"),
])
def test_bad_tf_config_is_refused_with_what_was_received(raw, message):
    with pytest.raises(distribute.StrategyError, match=message):
        distribute.validate_tf_config(raw)


def test_multi_worker_needs_a_shared_output_dir():
    with pytest.raises(config_lib.ConfigError, match="needs --output_dir"):
        config_lib.RunConfig(strategy="multi_worker")


@pytest.mark.long
def test_two_workers_survive_a_dead_worker_and_train_like_one_device(tmp_path):
    """Two worker processes under MultiWorkerMirroredStrategy: source
    pretraining and both phases. Worker 1 is killed during fine-tuning: the
    chief stops within the collective timeout with a message, not a hang.
    Both restarted, they continue from the chief's backup and exit 0 with
    bit-identical weights; only the chief wrote outputs (the worker's scratch
    folder is gone); the result is that of one device, and of two mirrored
    devices, on the same global batch."""
    ports = _free_ports(2)
    output_dir, scratch = tmp_path / "run", tmp_path / "tmp"
    scratch.mkdir()
    common = _args(strategy="multi_worker", output_dir=output_dir,
                   cache_dir=tmp_path / "cache", fine_tune_epochs=3)

    def start_workers():
        return [_start(common, {"TF_CONFIG": _tf_config(ports, index),
                                "TMPDIR": str(scratch)}) for index in range(2)]

    workers = start_workers()
    state = output_dir / "backup" / "fine_tune" / "state.json"
    deadline = time.time() + 600
    while not state.exists() and workers[0].poll() is None and time.time() < deadline:
        time.sleep(0.1)
    workers[1].kill()
    killed_at = time.time()
    chief_console = workers[0].communicate(timeout=distribute.COLLECTIVE_TIMEOUT_SECONDS + 60)[0]
    assert workers[0].returncode != 0
    assert time.time() - killed_at < distribute.COLLECTIVE_TIMEOUT_SECONDS + 30
    assert "the cluster lost a worker" in chief_console, chief_console[-3000:]
    workers[1].communicate()

    workers = start_workers()
    consoles = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, console in zip(workers, consoles):
        assert worker.returncode == 0, console[-4000:]
        assert "phase fine_tune resumed after epoch" in console
    assert _fingerprint(consoles[0]) == _fingerprint(consoles[1])
    # The worker's scratch folder is gone, the killed one's too (autograph's
    # generated sources are TensorFlow's own).
    assert [path.name for path in scratch.iterdir()
            if path.name.startswith("keras_transfer-")] == []
    metrics = outputs.read_json(str(output_dir / "metrics.json"))
    assert metrics["strategy"] == {"name": "multi_worker", "replicas": 2,
                                   "global_batch_size": 2 * TASK["batch_size"]}
    assert metrics["resumed"]["from_epoch"]["fine_tune"] >= 1
    assert set(metrics["phases"]) == {"feature_extraction", "fine_tune"}
    assert os.listdir(output_dir / "export") == ["1"]
    assert not os.path.exists(output_dir / "backup")  # Removed once finished.

    # The same global batch on one device, and on two mirrored logical CPU
    # devices (a fresh process: they are set before TensorFlow initialises).
    results = {}
    for name, extra in (("one", {"batch_size": 2 * TASK["batch_size"]}),
                        ("mirrored", {"strategy": "mirrored", "cpu_replicas": 2})):
        result = subprocess.run(
            [sys.executable, "-m", "keras_transfer.main",
             *_args(output_dir=tmp_path / name, cache_dir=tmp_path / f"cache_{name}",
                    fine_tune_epochs=3, export="false", **extra)],
            cwd=REPO, text=True, capture_output=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        results[name] = outputs.read_json(str(tmp_path / name / "metrics.json"))
    assert results["mirrored"]["strategy"] == {"name": "mirrored", "replicas": 2,
                                               "global_batch_size": 2 * TASK["batch_size"]}
    _same_result(results["one"], metrics)
    _same_result(results["one"], results["mirrored"])
