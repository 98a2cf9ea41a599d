"""Every ready flagfile in flags/ parses into a valid RunConfig."""

import glob
import os

import pytest
from absl import flags
from absl.testing import flagsaver

from conftest import REPO
from keras_transfer.cli import main as main_lib

FLAGFILES = sorted(glob.glob(os.path.join(REPO, "flags", "*.flags")))
# Placeholders for the user's own folders and files in the recipes.
PATH_FLAGS = ("dataset", "weights", "source_dataset")


def test_there_are_flagfiles_for_the_readme_recipes():
    names = {os.path.basename(path) for path in FLAGFILES}
    assert {"digits_vgg16.flags", "imagenet_tfds.flags", "imagenet_folder.flags",
            "offline_cluster.flags"} <= names
    with open(os.path.join(REPO, "README.md")) as handle:
        readme = handle.read()
    for name in names:
        assert f"flags/{name}" in readme, name


@pytest.mark.parametrize("path", FLAGFILES, ids=os.path.basename)
def test_flagfile_parses_into_a_valid_config(path, tmp_path):
    with flagsaver.flagsaver():
        flags.FLAGS(["keras_transfer", f"--flagfile={path}"])
        for name in PATH_FLAGS:
            value = flags.FLAGS[name].value
            if value and value.startswith("/"):
                placeholder = tmp_path / name
                if name == "weights":
                    placeholder.write_bytes(b"")
                else:
                    placeholder.mkdir()
                flags.FLAGS[name].value = str(placeholder)
        config = main_lib.config_from_flags()
    assert config.model
