"""Every cache entry is verified before use: a damaged one is named, set
aside (kept for inspection) and built again, never trusted and never the
cause of a traceback."""

import glob
import json
import os
import shutil

import numpy as np

from conftest import TINY
from keras_transfer import config as config_lib, integrity
from keras_transfer.data import image_check, pipeline, tasks
from keras_transfer.models import backbones, weights
from keras_transfer.models import classifier as model_lib
from keras_transfer.training import distribute, feature_cache, source


def _truncate(path):
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


def _garble(path):
    """Random bytes over part of the file, its size unchanged: what an exit-0
    run at chance accuracy was trained from before checksums."""
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.seek(size // 2)
        handle.write(np.random.default_rng(0).bytes(4096))
    assert os.path.getsize(path) == size


def test_a_damaged_source_base_is_set_aside_and_pretrained_again(tmp_path, console):
    config = config_lib.RunConfig(weights="source", cache_dir=str(tmp_path / "cache"),
                                  **{**TINY, "source_examples_per_class": 6})
    resolved = weights.resolve(config, 32)
    folder = os.path.dirname(resolved.load)
    settings = dict(strategy=distribute.make_strategy("one_device"), image_size=32,
                    global_batch=16)
    assert source.pretrain_base_if_needed(config, resolved, **settings) is not None
    assert integrity.problem(folder) is None
    assert source.pretrain_base_if_needed(config, resolved, **settings) is None  # Cached.
    manifest = os.path.join(folder, integrity.MANIFEST)
    # Each kind of damage is seen (in a copy of the entry)...
    for damage, says in [(_truncate, "bytes, not the"),
                         (_garble, "is not the file written (its checksum differs)"),
                         (os.remove, "no manifest")]:
        copy = str(tmp_path / f"copy_{damage.__name__}")
        shutil.copytree(folder, copy)
        damage(os.path.join(copy, os.path.basename(manifest if damage is os.remove
                                                   else resolved.load)))
        assert says in integrity.problem(copy)
    # ...and a damaged entry is set aside and pretrained again.
    _garble(resolved.load)
    assert source.pretrain_base_if_needed(config, resolved, **settings) is not None
    printed = console.readouterr().out
    assert f"the cache entry {folder} is damaged" in printed and "checksum differs" in printed
    assert "pretraining the base on the source task" in printed
    assert integrity.problem(folder) is None  # Whole again.
    # The damaged file is kept beside the new one, never deleted.
    assert len(glob.glob(resolved.load + ".damaged-*")) == 1
    # And the base loads: the rebuilt entry is a real one.
    model_lib.build_classifier(backbones.get("vgg16"), 5, image_size=32, channels=1,
                               base_weights=resolved.load)


def test_damaged_recorded_features_are_recorded_again(tmp_path, console):
    data = tasks.load_task("digits", None, role="target", seed=0, validation_fraction=0.1,
                           test_fraction=0.2, examples_per_class=4)
    classifier = model_lib.build_classifier(backbones.get("vgg16"), 5, image_size=32,
                                            channels=1)
    trunk = feature_cache.trunk_of(classifier)
    views = [pipeline.make_dataset(data.train, num_classes=5, batch_size=8, image_size=32,
                                   channels=1)]
    path = str(tmp_path / "features" / "train")
    first, reused = feature_cache.load_or_record(path, trunk, views)
    assert not reused and integrity.problem(path) is None
    expected = np.stack([features for features, _ in first])
    _, reused = feature_cache.load_or_record(path, trunk, views)
    assert reused
    for damage, says in [(_truncate, "bytes, not the"), (_garble, "checksum differs"),
                         (os.remove, "is missing")]:
        console.readouterr()
        # A shard of this recording (each recording names its own).
        damage(glob.glob(os.path.join(path, "**", "*.shard", "*"), recursive=True)[0])
        stored, reused = feature_cache.load_or_record(path, trunk, views)
        printed = console.readouterr().out
        assert not reused and "is damaged" in printed and says in printed, printed
        np.testing.assert_allclose(np.stack([f for f, _ in stored]), expected, atol=1e-6)
    assert len(glob.glob(path + ".damaged-*")) == 3


def test_an_image_check_cache_of_the_wrong_shape_is_ignored_and_rewritten(tmp_path, console):
    from PIL import Image

    root = tmp_path / "images"
    paths = []
    for index in range(3):
        (root / "a").mkdir(parents=True, exist_ok=True)
        paths.append(str(root / "a" / f"{index}.png"))
        Image.new("RGB", (9, 7), (index, 0, 0)).save(paths[-1])
    cache_dir = str(tmp_path / "cache")
    cache = image_check.cache_file(cache_dir, str(root))
    os.makedirs(os.path.dirname(cache))
    for wrong in [[1, 2], {"files": []}, {"files": {"a/0.png": [1], "a/1.png": {"size": "x"}}},
                  "not json at all"]:
        with open(cache, "w") as handle:
            handle.write(wrong if isinstance(wrong, str) else json.dumps(wrong))
        checks, stats = image_check.check_files(paths, max_megapixels=50, root=str(root),
                                                cache_dir=cache_dir)
        assert [check.ok for check in checks] == [True] * 3
        assert stats == {"checked": 3, "cached": 0}
        with open(cache) as handle:
            assert set(json.load(handle)["files"]) == {"a/0.png", "a/1.png", "a/2.png"}
    assert "image-check cache" in console.readouterr().out


def test_a_run_waiting_for_another_pretraining_the_same_base_says_so(tmp_path, console):
    """Two runs wanting the same source base: the second waits for the first
    instead of training it too, and says whom it waits for and since when
    rather than falling silent for minutes; the wait is returned (and so
    recorded in metrics.json's timings as source_wait)."""
    import socket
    import subprocess
    import sys

    from conftest import REPO

    config = config_lib.RunConfig(weights="source", cache_dir=str(tmp_path / "cache"),
                                  **{**TINY, "source_examples_per_class": 6})
    resolved = weights.resolve(config, 32)
    folder = os.path.dirname(resolved.load)
    os.makedirs(folder)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from keras_transfer import outputs\n"
         "with outputs.locked(sys.argv[1]):\n    print('held', flush=True); time.sleep(3)",
         os.path.join(folder, ".lock")], cwd=REPO, text=True, stdout=subprocess.PIPE)
    assert holder.stdout.readline() == "held\n"
    result = source.pretrain_base_if_needed(
        config, resolved, strategy=distribute.make_strategy("one_device"), image_size=32,
        global_batch=16)
    holder.wait()
    printed = console.readouterr().out
    assert (f"waiting for process {holder.pid} on {socket.gethostname()}, which holds the "
            f"cache entry {folder} since ") in printed, printed
    assert result.waited_seconds >= 1 and result.phase is not None  # Then it trained.
