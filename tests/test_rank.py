"""Ranking candidates by transferability of their frozen features."""

import json

import numpy as np
import pytest

from conftest import TINY, run_python
from keras_transfer import config as config_lib
from keras_transfer.models import backbones
from keras_transfer.models import classifier as model_lib
from keras_transfer.run import rank


def test_block_names_cut_at_the_blocks_output():
    import keras

    spec = backbones.get("vgg16")
    base = spec.build(32)
    assert model_lib.cut_tensor(spec, base, "block4").shape[1:] == (2, 2, 512)  # block4_pool.
    assert model_lib.cut_tensor(spec, base, "block5") is base.output
    assert model_lib.cut_tensor(spec, base, "block3_conv2").shape[1:] == (8, 8, 256)
    assert model_lib.cut_tensor(spec, base, "conv4") is None  # A ResNet block.
    resnet = backbones.get("resnet50")
    assert model_lib.cut_tensor(resnet, resnet.build(32), "conv4").shape[-1] == 1024
    del keras


def test_rank_scores_every_candidate_and_sorts_best_first(cache_dir, console):
    config = config_lib.RunConfig(weights="none", cache_dir=cache_dir,
                                  **{**TINY, "examples_per_class": 8})
    # `auto` is where a run cuts this base (random weights: the top), scored once.
    rows = rank.rank_candidates(config, ["vgg16"], ["auto", "top", "block3", "conv4"],
                                ["logme", "hscore"])
    assert sorted(row["base_layer"] for row in rows) == ["block3", "top"]
    assert "[keras_transfer] vgg16 has no layer or block 'conv4'; skipped" in (
        console.readouterr().out)
    assert rows[0]["logme"] >= rows[1]["logme"]
    assert {row["features"] for row in rows} == {512, 256}
    assert all(row["examples"] == 40 and np.isfinite(row["hscore"]) for row in rows)
    # Two widths: the table says H-score cannot compare them; one width is fine.
    assert "256, 512 features" in rank.caveats(rows, ["logme", "hscore"])[0]
    assert rank.caveats(rows, ["logme", "nleep"]) == []
    assert rank.caveats(rows[:1], ["logme", "hscore"]) == []


def test_rank_cli_prints_a_table_and_writes_json(tmp_path, cache_dir):
    output = tmp_path / "ranking.json"
    result = run_python(["-m", "keras_transfer.rank", "--models=vgg16", "--weights=none",
                         "--base_layers=block2,block4", "--examples_per_class=5",
                         f"--cache_dir={cache_dir}", f"--ranking_output={output}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rank" in result.stdout and "block4" in result.stdout
    assert "note: hscore grows with the feature width" in result.stdout  # 128 vs 512.
    rows = json.loads(output.read_text())
    assert [row["model"] for row in rows] == ["vgg16", "vgg16"]


def test_rank_cli_rejects_an_unknown_estimator():
    result = run_python(["-m", "keras_transfer.rank", "--estimators=magic"])
    assert result.returncode != 0
    assert "estimators must be among" in result.stderr


@pytest.mark.parametrize("flags, says", [
    (["--models=vgg16", "--base_layers=conv4"], "no candidate could be scored"),
    (["--models="], "models must name at least one backbone"),
    (["--ranking_output=/nonexistent/folder/r.json"], "ranking_output must be a file in"),
    (["--classes=5,lions"], "lions"),  # The main command's data error, in one line.
])
def test_rank_cli_refuses_in_one_line(flags, says, cache_dir):
    result = run_python(["-m", "keras_transfer.rank", "--weights=none",
                         "--examples_per_class=5", f"--cache_dir={cache_dir}", *flags])
    assert result.returncode != 0
    assert says in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


def test_rank_pretrains_a_source_base_that_is_not_cached_yet(tmp_path, console):
    """The README's rank command on an empty cache: the candidate's source base
    is pretrained once, cached where the run that follows finds it, and scored."""
    empty_cache = tmp_path / "cache"
    config = config_lib.RunConfig(weights="source", cache_dir=str(empty_cache),
                                  **{**TINY, "examples_per_class": 8})
    rows = rank.rank_candidates(config, ["vgg16"], ["top"], ["logme"])
    assert [(row["model"], row["weights"]) for row in rows] == [("vgg16", "source")]
    assert np.isfinite(rows[0]["logme"])
    assert "pretraining the base on the source task digits" in console.readouterr().out
    cached = list((empty_cache / "source").glob("vgg16-*/base.weights.h5"))
    assert len(cached) == 1
    # A second ranking finds the base in the cache and trains nothing.
    rank.rank_candidates(config, ["vgg16"], ["top"], ["logme"])
    assert "pretraining the base" not in console.readouterr().out


def test_rank_takes_an_autoencoder_base_as_a_candidate(tmp_path, console):
    """`--weights=autoencoder` candidates: the autoencoder is trained once on
    the task's pool, cached where the run that follows finds it, and its base
    scored at the cut a run would make."""
    config = config_lib.RunConfig(weights="autoencoder", cache_dir=str(tmp_path / "cache"),
                                  autoencoder="plain", **{**TINY, "examples_per_class": 8})
    rows = rank.rank_candidates(config, ["vgg16"], ["auto"], ["logme"])
    assert [(row["model"], row["weights"], row["base_layer"]) for row in rows] == [
        ("vgg16", "autoencoder", "block3")]
    assert np.isfinite(rows[0]["logme"])
    # The source capped at 10 images a class (TINY), and the 8 a class of the target.
    assert "autoencoder (plain) on 90 unlabelled images" in console.readouterr().out
    assert len(list((tmp_path / "cache" / "autoencoder").glob("vgg16-*/base.weights.h5"))) == 1
    rank.rank_candidates(config, ["vgg16"], ["auto"], ["logme"])
    assert "unlabelled images" not in console.readouterr().out
