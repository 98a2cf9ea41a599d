"""The installed entry points and the README's promises about them."""

import gzip
import os
import shutil
import sys

import numpy as np
import pytest

from conftest import REPO, run_python
from keras_transfer import config as config_lib
from keras_transfer.data import sources


def _readme():
    with open(os.path.join(REPO, "README.md")) as handle:
        return handle.read()


def test_readme_commands_are_what_ci_runs():
    readme = _readme()
    with open(os.path.join(REPO, ".ci", "run")) as handle:
        ci_commands = [line for line in handle.read().splitlines() if "pip install" in line]
    assert ci_commands and ci_commands[0] in readme
    assert "python -m keras_transfer.main --model=vgg16 --phase=both" in readme


def test_every_flag_is_documented_in_the_readme():
    readme = _readme()
    for name in config_lib.RunConfig.__dataclass_fields__:
        assert f"`--{name}`" in readme, name


def test_console_script_reports_bad_flags():
    script = shutil.which("keras-transfer", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("package not installed with its console script")
    result = run_python(["-c", "import sys; from keras_transfer.main import run_cli; "
                         "sys.argv = ['keras-transfer', '--epochs=-1']; run_cli()"])
    assert "epochs must be >= 0. Received: epochs=-1" in result.stderr
    assert result.returncode != 0


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(size).to_bytes(4, "big") for size in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_debian_idx_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 30), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    monkeypatch.setattr(sources, "FASHION_MNIST_DIRS", (str(tmp_path),))
    names, examples, _ = sources.load_source("fashion_mnist")
    assert names[5] == "sandal" and len(names) == 10
    assert examples.images.shape == (50, 28, 28, 1)
    assert np.array_equal(examples.labels[:30], np.arange(30) % 10)


def test_fashion_mnist_missing_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "FASHION_MNIST_DIRS", (str(tmp_path),))
    with pytest.raises(sources.DatasetError) as raised:
        sources.load_source("fashion_mnist", tfds_data_dir=str(tmp_path / "tfds"))
    # Both ways to get it: Debian's package, or TFDS (offline here: not tried).
    message = str(raised.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "TFDS" in message and str(tmp_path / "tfds") in message
