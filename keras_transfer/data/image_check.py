"""Every image file checked once before training: header, size limit, decode.

A broken file found here is skipped and reported; found mid-epoch it would
crash the run (or, with a silent skip, lose an example without a word). The
check decodes with the same TensorFlow decoder the pipeline uses, in
parallel threads (the decode op releases the GIL), and its results are cached
by path, size and modification time so the next run on the same folder only
decodes what changed.
"""

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import re
from typing import Optional

from keras_transfer.data import image_headers
from keras_transfer import log
from keras_transfer.log import logger

# Folders at least this large get a progress bar while they are checked.
PROGRESS_MIN_FILES = 200
_CACHE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """One file's verdict: `reason` is None for a usable image."""

    path: str
    reason: Optional[str]
    image_format: Optional[str] = None
    width: int = 0
    height: int = 0

    @property
    def ok(self):
        return self.reason is None


def _tf_error_text(error):
    """TensorFlow's message without its op and device decorations."""
    text = str(getattr(error, "message", error)).strip().splitlines()[0]
    text = re.sub(r"^\{\{[^}]*\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:\w+\]$", "", text) or type(error).__name__


def _decode_error(data):
    """None when TensorFlow decodes `data` to RGB pixels, else the reason."""
    import tensorflow as tf

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as error:
        return f"cannot be decoded: {_tf_error_text(error)}"
    return None


def _inspect(path, decode):
    """The cache record of one file: header facts and, if asked, the decode."""
    record = {"size": None, "mtime_ns": None, "format": None,
              "width": 0, "height": 0, "error": None, "decoded": False}
    try:
        stat = os.stat(path)
        record["size"], record["mtime_ns"] = stat.st_size, stat.st_mtime_ns
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        record["error"] = f"cannot be read: {error.strerror or error}"
        return record
    try:
        record["format"], record["width"], record["height"] = image_headers.read_header(data)
    except image_headers.HeaderError as error:
        record["error"] = str(error)
        return record
    if decode(record):
        record["error"] = _decode_error(data)
        record["decoded"] = True
    return record


def _verdict(path, record, max_pixels):
    if record["error"] is not None:
        return FileCheck(path, record["error"])
    pixels = record["width"] * record["height"]
    if pixels > max_pixels:
        return FileCheck(
            path,
            f"declares {record['width']}x{record['height']} pixels "
            f"({pixels / 1e6:.1f} megapixels), above the limit of "
            f"{max_pixels / 1e6:g} (--max_megapixels); not decoded",
            record["format"], record["width"], record["height"])
    return FileCheck(path, None, record["format"], record["width"], record["height"])


def _still_valid(record, path, max_pixels):
    """A cached record answers for `path` unless the file or the limit changed."""
    try:
        stat = os.stat(path)
    except OSError:
        return False
    if (record.get("size"), record.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
        return False
    within_limit = record["width"] * record["height"] <= max_pixels
    # A file once refused by its size alone was never decoded.
    return record["error"] is not None or record["decoded"] or not within_limit


def cache_file(cache_dir, root):
    """Where the checks of folder `root` are cached (per TensorFlow version,
    since what decodes depends on the decoder)."""
    import tensorflow as tf

    key = f"{os.path.abspath(root)}|{tf.__version__}|{_CACHE_FORMAT}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(cache_dir, "image_checks", f"{digest}.json")


# Each cached record's fields and the types they must have: a record of any
# other shape (a file edited by hand, another tool's) is checked anew.
_RECORD_TYPES = {"size": int, "mtime_ns": int, "format": (str, type(None)), "width": int,
                 "height": int, "error": (str, type(None)), "decoded": bool}


def _is_record(record):
    return isinstance(record, dict) and all(
        isinstance(record.get(key), types) for key, types in _RECORD_TYPES.items())


def _load_cache(path):
    """The cached records of a folder's files, those of the right shape only."""
    try:
        with open(path, encoding="utf-8") as handle:
            cached = json.load(handle)
    except FileNotFoundError:
        return {}  # No cache yet: check everything.
    except (OSError, ValueError) as error:
        cached = error
    files = cached.get("files") if isinstance(cached, dict) else None
    if not isinstance(files, dict):
        logger.warning(f"warning: the image-check cache {path} is unreadable or not one "
                       "this tool wrote; every file is checked again and the cache rewritten")
        return {}
    return {key: record for key, record in files.items() if _is_record(record)}


def _save_cache(path, root, records):
    """Writes the cache; a cache that cannot be written (a full disk, a
    read-only folder) costs the next run a new check, not this run its data."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"root": os.path.abspath(root), "files": records}, handle)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        logger.warning(f"warning: the image-check cache {path} could not be written "
                       f"({error.strerror or error}); the next run checks the files again")


def _progress(total, verbose):
    return log.Progress(f"checking {total:,} image files", total, "file",
                        verbose if total >= PROGRESS_MIN_FILES else 0)


def check_files(paths, *, max_megapixels, root, cache_dir=None, verbose=0, workers=None):
    """Checks `paths`; returns ([FileCheck] in input order, stats dict).

    stats: `checked` (files read now), `cached` (answered by the cache).
    """
    max_pixels = int(max_megapixels * 1e6)
    cache_path = cache_file(cache_dir, root) if cache_dir else None
    cached = _load_cache(cache_path) if cache_path else {}
    records, todo = {}, []
    for path in paths:
        key = os.path.relpath(path, root)
        if key in cached and _still_valid(cached[key], path, max_pixels):
            records[key] = cached[key]
        else:
            todo.append((key, path))

    def decode(record):
        return record["width"] * record["height"] <= max_pixels

    progress = _progress(len(todo), verbose)
    workers = workers or min(32, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(_inspect, path, decode): key for key, path in todo}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            records[futures[future]] = future.result()
            progress.update(done)
    progress.finish()
    if cache_path and todo:
        _save_cache(cache_path, root, {**cached, **records})
    checks = [_verdict(path, records[os.path.relpath(path, root)], max_pixels)
              for path in paths]
    return checks, {"checked": len(todo), "cached": len(paths) - len(todo)}
