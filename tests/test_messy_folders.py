"""Folders as users collect them: odd but valid files used, broken files
skipped and named, hidden and non-image files counted, absurd sizes refused
from the header, checks cached, splits stable and pinnable."""

import io
import json
import os
import shutil
import socket
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import run_python
from keras_transfer.data import (folders, image_check, image_folder, image_headers, pipeline,
                                 sources, split_file, tasks)

COLOR = (200, 100, 50)
FRACTIONS = dict(validation_fraction=0.2, test_fraction=0.2)


def encode(fmt, mode="RGB", size=(9, 7), color=COLOR, **save):
    image = Image.new("RGB", size, color).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def animated_gif():
    frames = [Image.new("RGB", (8, 8), COLOR), Image.new("RGB", (8, 8), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def png_declaring(width, height):
    """A PNG whose header claims `width` x `height` (a decompression bomb's
    calling card); its pixel data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"\x00" * 16


# Every kind of valid file users keep, under the names they give them.
VALID = {
    "rgb.png": encode("PNG"),
    "upper.JPG": encode("JPEG", quality=95),
    "grey.jpeg": encode("JPEG", "L", quality=95),
    "alpha.png": encode("PNG", "RGBA"),
    "grey_alpha.png": encode("PNG", "LA"),
    "palette.png": encode("PNG", "P"),
    "png_named.jpg": encode("PNG"),
    "cmyk.jpg": encode("JPEG", "CMYK", quality=95),
    "animated.gif": animated_gif(),
    "photo.webp": encode("WEBP", lossless=True),
    "old.BMP": encode("BMP"),
}
BROKEN = {
    "empty.jpg": b"",
    "truncated.jpg": encode("JPEG", size=(64, 64))[:300],
    "text.png": b"this is not an image, whatever its name says\n",
    "bomb.png": png_declaring(100_000, 100_000),
}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


@pytest.fixture
def messy(tmp_path):
    """cats: every valid kind plus every broken kind; dogs: plain PNGs; and
    the clutter real folders carry."""
    root = tmp_path / "messy"
    for name, data in {**VALID, **BROKEN}.items():
        write(root / "cats" / name, data)
    for index in range(8):
        write(root / "dogs" / f"dog{index}.png", encode("PNG", color=(index, 9, 9)))
    write(root / "dogs" / "scan.tiff", encode("TIFF"))
    write(root / "dogs" / "notes.txt", b"notes")
    write(root / "cats" / ".DS_Store", b"\0")
    write(root / "cats" / ".ipynb_checkpoints" / "rgb-checkpoint.png", encode("PNG"))
    write(root / ".git" / "HEAD", b"ref")
    write(root / "README.md", b"# my photos")
    return str(root)


def policy(tmp_path, **overrides):
    settings = dict(max_broken_fraction=0.5, cache_dir=str(tmp_path / "cache"))
    return folders.FolderPolicy(**{**settings, **overrides})


def test_discovery_counts_what_it_passes_over(messy):
    found = image_folder.scan(messy)
    assert found.class_names == ["cats", "dogs"]
    assert sorted(os.path.basename(p) for p in found.files["cats"]) == sorted(
        {**VALID, **BROKEN})
    # .DS_Store, .ipynb_checkpoints and .git are hidden; notes.txt and
    # README.md are not images; the TIFF is an image TensorFlow cannot read.
    assert found.ignored == {"hidden": 3, "not_image": 2, "unsupported": 1, "not_regular": 0,
                             "duplicate": 0}
    assert [os.path.basename(p) for p in found.unsupported] == ["scan.tiff"]


def test_special_files_are_passed_over_and_named_never_opened(messy):
    """A FIFO named `pipe.png` blocks whoever opens it, forever and through
    Ctrl-C; a dangling link fails every read. Loading the folder passes over
    every entry that is not a regular file and says so. Run in a process of
    its own: were the FIFO opened, the test would fail on the timeout, not hang."""
    os.mkfifo(os.path.join(messy, "cats", "pipe.png"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(messy, "dogs", "sock.png"))
    code = ("import json, sys; from keras_transfer.data import folders, tasks; "
            "data = tasks.load_task(sys.argv[1], None, role='target', seed=0, "
            "validation_fraction=0.2, test_fraction=0.2, folder_policy=folders.FolderPolicy("
            "max_broken_fraction=0.5, cache_dir=None)); "
            "print(json.dumps({'report': data.report, 'lines': folders.summary_lines("
            "data.report), 'examples': len(data.train) + len(data.validation) + "
            "len(data.test)}))")
    result = run_python(["-c", code, messy], timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.splitlines()[-1])
    report = loaded["report"]
    assert report["ignored"]["not_regular"] == 2
    assert sorted(os.path.basename(path) for path in report["not_regular"]) == [
        "pipe.png", "sock.png"]
    sock.close()
    assert "2 not a regular file" in loaded["lines"][0]
    assert loaded["examples"] == len(VALID) + 8  # Every image, once; nothing else.


def test_one_file_under_two_classes_stops_the_run_and_a_link_within_one_is_used_once(
        tmp_path):
    """A class folder that is a link to another trains the same images under
    two labels without a word; a file linked twice into one class would be
    counted twice (and could land in train and test)."""
    root = tmp_path / "linked"
    make_folder(root, {"cats": 6, "dogs": 6})
    os.symlink(root / "cats" / "000.png", root / "cats" / "again.png")
    os.link(root / "dogs" / "000.png", root / "dogs" / "hard.png")
    found = image_folder.scan(str(root))
    assert found.ignored["duplicate"] == 2
    assert [len(found.files[name]) for name in ("cats", "dogs")] == [6, 6]
    (root / "lions").symlink_to(root / "cats", target_is_directory=True)
    with pytest.raises(image_folder.FolderLayoutError,
                       match="one file is in two classes, 'cats' and 'lions'"):
        image_folder.scan(str(root))
    # Only the classes asked for are walked: without lions the folder trains.
    assert image_folder.scan(str(root), classes=("cats", "dogs")).class_names == [
        "cats", "dogs"]


def test_classes_leave_the_other_class_folders_unread(messy, tmp_path):
    root = tmp_path / "with_junk"
    shutil.copytree(messy, root)
    (root / "birds").mkdir()  # Empty: alone it stops the scan.
    with pytest.raises(image_folder.FolderLayoutError, match="has no images"):
        image_folder.scan(str(root))
    found = image_folder.scan(str(root), classes=("dogs", "cats"))
    assert found.class_names == ["cats", "dogs"]
    with pytest.raises(image_folder.FolderLayoutError,
                       match="classes names lions, not a class folder of .*birds, cats, dogs"):
        image_folder.scan(str(root), classes=("cats", "lions"))


def test_a_class_name_holding_a_comma_is_named_in_csv_quotes(tmp_path):
    from absl import flags
    from absl.testing import flagsaver

    from keras_transfer.cli import main as main_lib

    root = make_folder(tmp_path / "data", {"red, blue": 4, "green": 4, "grey": 4})
    with flagsaver.flagsaver():
        flags.FLAGS(["keras_transfer", f"--dataset={root}", '--classes="red, blue",green'])
        classes = main_lib.config_from_flags().classes
    assert classes == ("red, blue", "green")
    assert image_folder.scan(root, classes=classes).class_names == ["green", "red, blue"]


def test_headers_give_format_and_size_by_content():
    for name, data in VALID.items():
        image_format, width, height = image_headers.read_header(data)
        assert (width, height) == ((8, 8) if name == "animated.gif" else (9, 7)), name
    assert image_headers.read_header(VALID["png_named.jpg"])[0] == "png"
    assert image_headers.read_header(png_declaring(123, 45)) == ("png", 123, 45)
    with pytest.raises(image_headers.HeaderError, match="empty"):
        image_headers.read_header(b"")


def test_broken_files_are_skipped_with_their_reason(messy, tmp_path):
    names, paths, labels, report = folders.load(messy, policy(tmp_path))
    used = {os.path.basename(p) for p in paths}
    assert used == set(VALID) | {f"dog{i}.png" for i in range(8)}
    reasons = {os.path.basename(item["path"]): item["reason"] for item in report["broken"]}
    assert set(reasons) == set(BROKEN)
    assert reasons["empty.jpg"] == "empty file"
    assert "cannot be decoded" in reasons["truncated.jpg"]
    assert "not a JPEG, PNG" in reasons["text.png"]
    # Refused from its header: 10,000 megapixels are never decoded.
    assert "10000.0 megapixels" in reasons["bomb.png"] and "not decoded" in reasons["bomb.png"]
    assert report["classes"]["cats"] == {"files": 15, "used": 11, "broken": 4}
    assert report["ignored"]["unsupported"] == 1
    assert report["misnamed"] == 1  # png_named.jpg
    assert report["formats"]["png"] == 5 + 8


def test_megapixel_limit_is_a_setting(tmp_path):
    root = tmp_path / "data"
    for label in ("a", "b"):
        for index in range(3):
            write(root / label / f"small{index}.png", encode("PNG", size=(20, 20)))
    write(root / "a" / "large.png", encode("PNG", size=(30, 30)))
    _, paths, _, report = folders.load(
        str(root), policy(tmp_path, max_megapixels=0.0005))  # 500 pixels.
    assert len(paths) == 6
    assert "900 pixels" not in report["broken"][0]["reason"]
    assert "30x30 pixels (0.0 megapixels), above the limit of 0.0005" in (
        report["broken"][0]["reason"])
    # Raising the limit decodes the file the cache only knew by its header.
    _, paths, _, report = folders.load(str(root), policy(tmp_path))
    assert len(paths) == 7 and report["check"]["checked"] == 1


def test_every_valid_odd_file_decodes_to_rgb(messy, tmp_path):
    _, paths, labels, _ = folders.load(messy, policy(tmp_path))
    cats = sorted(p for p in paths if os.sep + "cats" + os.sep in p)
    examples = sources.Examples(labels=np.zeros(len(cats), np.int64),
                                 files=np.asarray(cats, object))
    batches = pipeline.make_dataset(examples, num_classes=2, batch_size=64,
                                    image_size=8, channels=3)
    images = np.concatenate([batch.numpy() for batch, _ in batches])
    assert images.shape == (len(VALID), 8, 8, 3)
    by_name = dict(zip((os.path.basename(p) for p in cats), images))
    grey = 0.299 * COLOR[0] + 0.587 * COLOR[1] + 0.114 * COLOR[2]
    for name in ("grey.jpeg", "grey_alpha.png"):  # Grey made RGB: equal channels.
        np.testing.assert_allclose(by_name[name], grey, atol=3)
    for name in ("rgb.png", "alpha.png", "png_named.jpg", "old.BMP", "photo.webp",
                 "animated.gif"):  # Alpha dropped; first frame of the GIF.
        np.testing.assert_allclose(by_name[name], np.broadcast_to(COLOR, (8, 8, 3)),
                                   atol=1, err_msg=name)
    for name in ("upper.JPG", "cmyk.jpg", "palette.png"):  # Lossy, or a palette.
        np.testing.assert_allclose(by_name[name].mean(axis=(0, 1)), COLOR, atol=12,
                                   err_msg=name)


def test_too_many_broken_files_stop_the_run(messy, tmp_path):
    # 4 broken of 23 image files: 17 %.
    with pytest.raises(folders.TooManyBrokenError) as raised:
        folders.load(messy, policy(tmp_path, max_broken_fraction=0.05))
    message = str(raised.value)
    assert "\n" not in message
    assert messy in message and "4 broken of 23" in message
    assert "max_broken_fraction=0.05" in message
    listed = json.load(open(tmp_path / "cache" / "image_checks" / "last_refused.json"))
    assert len(listed["broken"]) == 4


def test_checks_are_cached_by_path_size_and_mtime(messy, tmp_path):
    root_policy = policy(tmp_path)
    first = folders.load(messy, root_policy)[3]["check"]
    assert (first["checked"], first["cached"]) == (23, 0)
    second = folders.load(messy, root_policy)[3]["check"]
    assert (second["checked"], second["cached"]) == (0, 23)
    # A file that changes is checked again, and only that file.
    write(os.path.join(messy, "cats", "truncated.jpg"), encode("JPEG"))
    _, paths, _, report = folders.load(messy, root_policy)
    assert (report["check"]["checked"], report["check"]["cached"]) == (1, 22)
    assert os.path.join(messy, "cats", "truncated.jpg") in paths


def test_a_class_with_only_broken_files_names_its_folder(tmp_path):
    root = tmp_path / "data"
    for index in range(4):
        write(root / "good" / f"{index}.png", encode("PNG"))
        write(root / "bad" / f"{index}.jpg", b"")
    with pytest.raises(image_folder.FolderLayoutError) as raised:
        tasks.load_task(str(root), None, role="target", seed=0, folder_policy=policy(
            tmp_path, max_broken_fraction=0.6), **FRACTIONS)
    assert str(root / "bad") in str(raised.value)
    assert "0 usable image(s) (4 broken)" in str(raised.value)


def make_folder(root, counts, start=0):
    for name, count in counts.items():
        for index in range(start, start + count):
            write(os.path.join(root, name, f"{index:03d}.png"),
                  encode("PNG", color=(index, 0, 0)))
    return str(root)


def split_of(data):
    return {split: sorted(getattr(data, split).files)
            for split in ("train", "validation", "test")}


def test_same_folder_and_seed_give_the_same_split(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 20, "b": 12})
    load = lambda seed: tasks.load_task(  # noqa: E731
        root, None, role="target", seed=seed, folder_policy=policy(tmp_path), **FRACTIONS)
    assert split_of(load(0)) == split_of(load(0))
    assert split_of(load(0)) != split_of(load(1))


def test_split_file_keeps_old_files_in_their_split(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 20, "b": 12})
    pinned = str(tmp_path / "split.json")
    load = lambda: tasks.load_task(  # noqa: E731
        root, None, role="target", seed=0, folder_policy=policy(tmp_path),
        split_file_path=pinned, **FRACTIONS)
    before = load()
    assert before.split_summary == {"split_file": pinned, "pinned": 0, "new": 32,
                                    "missing": 0, "written": True}
    assert split_of(before) == split_of(tasks.load_task(
        root, None, role="target", seed=0, folder_policy=policy(tmp_path), **FRACTIONS))
    make_folder(root, {"a": 10, "b": 10}, start=100)  # New images arrive.
    os.remove(os.path.join(root, "a", "000.png"))
    after = load()
    assert after.split_summary["pinned"] == 31 and after.split_summary["new"] == 20
    assert after.split_summary["missing"] == 1
    for split, files in split_of(before).items():
        kept = [f for f in files if os.path.exists(f)]
        assert set(kept) <= set(split_of(after)[split]), split
    new_test = [f for f in split_of(after)["test"] if os.path.basename(f).startswith("1")]
    assert new_test, "new images are split too, test included"
    assert len(split_file.read(pinned)) == 52  # The gone file stays listed.


def test_split_file_that_is_not_one_is_refused(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 5, "b": 5})
    bad = tmp_path / "split.json"
    bad.write_text("{not json")
    with pytest.raises(split_file.SplitFileError, match="split_file"):
        tasks.load_task(root, None, role="target", seed=0, folder_policy=policy(
            tmp_path), split_file_path=str(bad), **FRACTIONS)


def test_split_file_of_another_folder_is_refused_and_left_as_it_was(tmp_path):
    pinned = tmp_path / "split.json"
    load = lambda root: tasks.load_task(  # noqa: E731
        root, None, role="target", seed=0, folder_policy=policy(tmp_path),
        split_file_path=str(pinned), **FRACTIONS)
    load(make_folder(tmp_path / "cats", {"a": 6, "b": 6}))
    written = pinned.read_bytes()
    other = make_folder(tmp_path / "dogs", {"a": 6, "b": 6}, start=500)
    with pytest.raises(split_file.SplitFileError,
                       match="written for the folder .*cats.*none of its 12 files"):
        load(other)
    assert pinned.read_bytes() == written


def test_split_file_follows_its_folder_moved_and_says_what_it_adds(tmp_path, caplog):
    pinned = tmp_path / "split.json"
    load = lambda root: tasks.load_task(  # noqa: E731
        root, None, role="target", seed=0, folder_policy=policy(tmp_path),
        split_file_path=str(pinned), **FRACTIONS)
    before = load(make_folder(tmp_path / "old", {"a": 10, "b": 10}))
    os.rename(tmp_path / "old", tmp_path / "new")
    moved = load(str(tmp_path / "new"))  # Nothing new: no warning.
    assert moved.split_summary["pinned"] == 20 and "written for" not in caplog.text
    rename = lambda files: sorted(f.replace("/old/", "/new/") for f in files)  # noqa: E731
    assert {k: rename(v) for k, v in split_of(before).items()} == split_of(moved)
    make_folder(tmp_path / "new", {"a": 2}, start=100)
    added = load(str(tmp_path / "new"))
    assert added.split_summary["new"] == 2
    assert "was written for the folder" in caplog.text and "2 files are new" in caplog.text


def test_per_class_counts_show_the_imbalance(tmp_path):
    root = make_folder(tmp_path / "data", {"many": 40, "few": 5})
    data = tasks.load_task(root, None, role="target", seed=0,
                              folder_policy=policy(tmp_path), **FRACTIONS)
    counts = data.class_counts()
    assert counts["train"]["many"] + counts["validation"]["many"] + counts["test"][
        "many"] == 40
    assert counts["train"]["few"] == 3


def test_checked_cache_file_is_per_folder(tmp_path):
    assert image_check.cache_file("c", "/x/a") != image_check.cache_file("c", "/x/b")


def test_a_file_broken_after_the_check_does_not_end_the_epoch(tmp_path):
    files = [write(tmp_path / f"{index}.png", encode("PNG", color=(index, 0, 0)))
             for index in range(6)]
    write(files[2], b"overwritten by a sync tool mid-run")
    examples = sources.Examples(labels=np.arange(6) % 2, files=np.asarray(files, object))
    dataset = pipeline.make_dataset(examples, num_classes=2, batch_size=4, image_size=8,
                                    channels=3, training=True)
    assert int(dataset.cardinality()) == 2  # Keras still knows the steps.
    for _ in range(2):  # Every epoch has its 6 examples; none is the broken one.
        reds = np.concatenate([images.numpy()[:, 0, 0, 0] for images, _ in dataset])
        assert len(reds) == 6 and 2 not in reds


def test_a_run_on_a_messy_folder_says_what_it_used_and_skipped(messy, tmp_path, console):
    from conftest import TINY
    from keras_transfer import config as config_lib
    from keras_transfer.run import execute as run

    output_dir = str(tmp_path / "run")
    config = config_lib.RunConfig(
        dataset=messy, weights="none", image_size=32, output_dir=output_dir,
        cache_dir=str(tmp_path / "cache"), max_broken_fraction=0.25, export=False,
        **{**TINY, "fine_tune_epochs": 0})
    metrics = run.run(config)
    console = console.readouterr().out
    assert f"found 23 image files in 2 classes under {messy}" in console
    assert "passed over 3 hidden, 2 not an image, 1 unsupported format" in console
    assert "19 usable, 4 broken and skipped (listed in data_report.json)" in console
    assert "class        train  validation        test" in console
    report = json.load(open(os.path.join(output_dir, "data_report.json")))
    assert sorted(os.path.basename(i["path"]) for i in report["broken"]) == sorted(BROKEN)
    files = metrics["dataset"]["files"]
    assert (files["files_found"], files["images_used"], files["broken_count"]) == (23, 19, 4)
    assert metrics["dataset"]["class_counts"]["train"] == {"cats": 4, "dogs": 4}
    assert metrics["test"]["examples"] == metrics["dataset"]["split_sizes"]["test"]
    # Recorded by its resolved path: how a restart knows it is the same folder.
    assert metrics["config"]["dataset"] == os.path.realpath(messy)


def test_a_class_name_the_export_would_refuse_is_refused_before_training(tmp_path):
    """A class folder named with a line break used to train to the end and
    fail at export, and again on every resume: now the data is refused
    before anything is written."""
    root = make_folder(tmp_path / "lines", {"cats": 12, "two\nlines": 12})
    output_dir = tmp_path / "run"
    result = run_python(["-m", "keras_transfer.main", f"--dataset={root}",
                         f"--output_dir={output_dir}", "--image_size=32", "--weights=none",
                         f"--cache_dir={tmp_path / 'cache'}"], timeout=300)
    assert result.returncode != 0
    assert ("class names must be one line (an export's labels.txt holds one a line); "
            "rename the class folder. Received: dataset class 'two\\nlines'") in result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not output_dir.exists()
