"""Cache entries verified before use: a manifest of sizes and checksums,
written last, that every later run checks.

A cache entry (a source-pretrained base, recorded features) is trusted only
when its manifest says so: an entry cut short, truncated, garbled or
edited since it was written fails the check, is set aside under a name that
says so (never deleted: it may be evidence of a failing disk), and is built
again. An entry written before manifests existed has none and is rebuilt
the same way, once.
"""

import datetime
import hashlib
import json
import os

from keras_transfer.log import logger

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def _checksum(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _entry_files(folder, names):
    """`names` in `folder`; a name that is a folder stands for every file under it."""
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            for directory, _, files in os.walk(path):
                for file in sorted(files):
                    yield os.path.relpath(os.path.join(directory, file), folder)
        else:
            yield name


def seal(folder, names):
    """Writes the manifest of `names` (files, or folders of files) in `folder`:
    the last write of a cache entry, atomically."""
    files = {name: {"size": os.path.getsize(os.path.join(folder, name)),
                    "sha256": _checksum(os.path.join(folder, name))}
             for name in sorted(_entry_files(folder, names))}
    temporary = os.path.join(folder, f".{MANIFEST}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"files": files}, handle, indent=1)
    os.replace(temporary, os.path.join(folder, MANIFEST))


def problem(folder):
    """None when every file the manifest of `folder` lists is there with its
    size and checksum; else what is wrong, in a few words."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return ("no manifest (cut short while written, or written by a version "
                "without manifests)")
    try:
        with open(path, encoding="utf-8") as handle:
            files = json.load(handle)["files"]
        listed = {name: (int(entry["size"]), str(entry["sha256"]))
                  for name, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "an unreadable manifest"
    for name, (size, checksum) in sorted(listed.items()):
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            return f"{name} is missing"
        if os.path.getsize(file) != size:
            return f"{name} has {os.path.getsize(file):,} bytes, not the {size:,} written"
        if _checksum(file) != checksum:
            return f"{name} is not the file written (its checksum differs)"
    return None


def set_aside(folder, names, reason):
    """Renames the damaged entry's `names` and manifest to `NAME.damaged-STAMP`
    (kept, not deleted) and says so; the caller builds the entry again."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    for name in [*names, MANIFEST]:
        path = os.path.join(folder, name)
        if os.path.lexists(path):
            os.replace(path, f"{path}.damaged-{stamp}")
    logger.warning(f"warning: the cache entry {folder} is damaged ({reason}); set aside "
                   f"as *.damaged-{stamp} and built again")
