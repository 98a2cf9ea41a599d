"""A full disk under the output folder, the cache or an export: one line
naming the folder and the room the step needed, what was written before
intact, no temporary file left to keep the disk full, and the same command
finishing once there is room.

The disks are real: a small tmpfs mounted for the test (root is needed to
mount one; elsewhere these tests are skipped, and say why).
"""

import os
import subprocess
import sys

import pytest

from conftest import REPO, TINY

SETTINGS = {**TINY, "model": "vgg16", "classes": "5,6", "examples_per_class": 8,
            "source_examples_per_class": 8, "verbose": 2}


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB file system of its own; `resize(megabytes)` grows or shrinks it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")

    def resize(megabytes):
        subprocess.run(["mount", "-o", f"remount,size={megabytes}m", str(mount)], check=True)

    yield mount, resize
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _main(output_dir, cache_dir, **overrides):
    args = {**SETTINGS, "output_dir": output_dir, "cache_dir": cache_dir, **overrides}
    return subprocess.run(
        [sys.executable, "-m", "keras_transfer.main",
         *[f"--{key}={value}" for key, value in args.items()]],
        cwd=REPO, capture_output=True, text=True, timeout=600)


def _temporaries(folder):
    return [os.path.join(directory, name) for directory, subdirs, names in os.walk(folder)
            for name in [*names, *subdirs] if ".tmp-" in name or ".staging-" in name]


def _one_line(result, folder):
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"keras_transfer: error: no space left in {folder}" in result.stderr, (
        result.stderr[-3000:])
    assert "MB, " in result.stderr and "MB free" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


@pytest.mark.long
def test_a_full_output_folder_stops_in_one_line_and_the_same_command_finishes(
        small_disk, cache_dir):
    disk, resize = small_disk
    output_dir = disk / "run"
    result = _main(output_dir, cache_dir)
    _one_line(result, output_dir)
    assert (output_dir / "run_config.json").is_file()  # What came before is intact.
    assert not _temporaries(disk)
    resize(400)
    again = _main(output_dir, cache_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (output_dir / "metrics.json").is_file()
    assert sorted(os.listdir(output_dir / "export")) == ["1"]

    # The run is finished; the disk fills up; re-exporting it says so in one line.
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as handle:
        handle.truncate(0)
        os.posix_fallocate(handle.fileno(), 0, max(0, free - (1 << 20)))
    export = subprocess.run([sys.executable, "-m", "keras_transfer.export",
                             f"--run_dir={output_dir}"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert export.returncode == 1 and "Traceback" not in export.stderr, export.stderr[-3000:]
    assert f"no space left in {output_dir / 'export'} for the export" in export.stderr
    assert sorted(os.listdir(output_dir / "export")) == ["1"]
    assert not _temporaries(disk)


def test_a_full_cache_stops_in_one_line_and_leaves_no_temporary_file(small_disk, tmp_path):
    disk, _ = small_disk
    output_dir = tmp_path / "run"
    result = _main(output_dir, disk / "cache")
    assert "no space left in " + str(disk / "cache") in result.stderr, result.stderr[-3000:]
    _one_line(result, disk / "cache")
    assert not _temporaries(disk)


def test_a_full_cache_while_recording_features_stops_in_one_line(small_disk, tmp_path,
                                                                 random_vgg16_base):
    disk, resize = small_disk
    resize(1)  # Below what a recording asks to keep free.
    result = _main(tmp_path / "run", disk / "cache", weights=random_vgg16_base)
    assert "for the recorded features (train)" in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "keras_transfer: error: no space left in " + str(disk / "cache" / "features") in (
        result.stderr)
    assert not _temporaries(disk)


def test_stale_temporaries_of_a_dead_process_are_removed_on_the_next_start(tmp_path):
    from keras_transfer import disk_space

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = [tmp_path / "checkpoints" / f".tmp-{dead}-fine_tune.weights.h5",
             tmp_path / f"metrics.json.tmp-{dead}"]
    live = tmp_path / "checkpoints" / f".tmp-{os.getpid()}-feature_extraction.weights.h5"
    (tmp_path / "checkpoints").mkdir()
    for path in [*stale, live]:
        path.write_bytes(b"x" * 1000)
    (tmp_path / f"train.tmp-{dead}").mkdir()
    disk_space.remove_stale_temporaries(str(tmp_path))
    assert not any(path.exists() for path in stale)
    assert not (tmp_path / f"train.tmp-{dead}").exists()
    assert live.exists()  # A live process's save in progress is left alone.
