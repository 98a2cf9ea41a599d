"""TensorFlow starts without its benign start-up lines (`tf_quiet.py`), and
without hiding anything else.

The start-up lines come once per process, so those checks run fresh
processes; the filter itself is checked in this one, on lines written to
file descriptor 2 as TensorFlow's C++ code writes them.
"""

import json
import os

import pytest

from conftest import run_python
from keras_transfer import tf_quiet

# Stable text of lines a CPU machine prints on every TensorFlow start.
BENIGN = ["All log messages before absl::InitializeLog", "oneDNN custom operations",
          "Could not find cuda drivers", "cpu_feature_guard",
          "To enable the following instructions", "failed call to cuInit"]

IMPORT_CODE = r"""
import json
import os

from keras_transfer import log, tf_quiet

log.show_on_console()
tf = tf_quiet.import_tensorflow()
print(json.dumps({"gpus": len(tf.config.list_physical_devices("GPU")),
                  "level": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}))
"""


def _benign_in(text):
    return [marker for marker in BENIGN if marker in text]


@pytest.fixture
def no_level(monkeypatch):
    """A user who did not set TF_CPP_MIN_LOG_LEVEL (conftest sets it)."""
    monkeypatch.delenv(tf_quiet.LEVEL_VARIABLE, raising=False)


def test_a_command_starts_without_the_start_up_lines(no_level, tmp_path):
    result = run_python(["-m", "keras_transfer.predict", f"--model_dir={tmp_path}",
                         str(tmp_path / "image.png")])
    assert result.returncode == 1
    assert _benign_in(result.stderr) == [], result.stderr
    # Its own error still comes through, last.
    assert result.stderr.splitlines()[-1] == (
        f"keras_transfer.predict: error: no SavedModel export found under {str(tmp_path)!r}")


def test_import_tensorflow_sets_the_default_level_and_says_when_there_is_no_gpu(no_level):
    result = run_python(IMPORT_CODE)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _benign_in(result.stderr) == [], result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["level"] == tf_quiet.DEFAULT_LEVEL  # Later INFO lines stay hidden.
    no_gpu = "[keras_transfer] no GPU visible to TensorFlow: running on the CPU"
    assert (no_gpu in result.stdout.splitlines()) == (found["gpus"] == 0), result.stdout


def test_a_level_the_user_set_wins_and_nothing_is_filtered():
    result = run_python(IMPORT_CODE, env={tf_quiet.LEVEL_VARIABLE: "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    # Lines on every machine (oneDNN is on unless TF_ENABLE_ONEDNN_OPTS=0).
    assert "All log messages before absl::InitializeLog" in result.stderr
    assert "oneDNN custom operations" in result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["level"] == "0"
    assert "no GPU visible" not in result.stdout


def test_only_known_start_up_lines_are_dropped(capfd):
    capfd.readouterr()
    with tf_quiet.filtered_stderr(tf_quiet.STARTUP_LINES):
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called "
                    b"are written to STDERR\n")
        os.write(2, b"I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 00:00:1.0 1 some_file.cc:12] real problem\n")
        os.write(2, b"To enable the following instructions: AVX2 FMA, in other operations\n")
        os.write(2, b"E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: 303\n")
        os.write(2, b"a last line without a newline")
    assert capfd.readouterr().err == (
        "E0000 00:00:1.0 1 some_file.cc:12] real problem\n"
        # Not known as benign until the block says there is no GPU.
        "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: 303\n"
        "a last line without a newline")


def test_the_block_can_add_patterns_and_a_failure_still_replays(capfd):
    capfd.readouterr()
    with pytest.raises(ImportError, match="no such module"):
        with tf_quiet.filtered_stderr(tf_quiet.STARTUP_LINES) as patterns:
            os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: 303\n")
            os.write(2, b"E0000 real problem\n")
            patterns.extend(tf_quiet.NO_GPU_LINES)
            raise ImportError("no such module")
    os.write(2, b"after the block\n")  # File descriptor 2 is back.
    assert capfd.readouterr().err == "E0000 real problem\nafter the block\n"
