"""Every ready flagfile in flags/ parses into a valid RunConfig."""

import glob
import os

import pytest
from absl import flags
from absl.testing import flagsaver

from conftest import REPO, run_python
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


def test_no_recipe_fixes_an_output_folder():
    """A flagfile that fixed --output_dir made its own second run "another
    run" to be refused; a recipe leaves the folder to the user."""
    for name in os.listdir(os.path.join(REPO, "flags")):
        with open(os.path.join(REPO, "flags", name)) as handle:
            assert not any(line.startswith("--output_dir") for line in handle), name


def test_a_refused_output_dir_names_the_flagfile_that_set_it(tmp_path):
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "metrics.json").write_text("{}")
    (finished / "run_config.json").write_text("{}")
    flagfile = tmp_path / "mine.flags"
    flagfile.write_text(f"--output_dir={finished}\n--weights=none\n")
    result = run_python(["-m", "keras_transfer.main", f"--flagfile={flagfile}"], timeout=300)
    assert result.returncode == 1
    assert "would be overwritten" in result.stderr
    assert f"(--output_dir was set by {flagfile})" in result.stderr, result.stderr[-2000:]
