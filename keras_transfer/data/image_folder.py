"""Discovery of a folder of images laid out as one subfolder per class.

Discovery only looks at names; whether a file really is an image is decided
by its content later (`image_check`). Everything passed over is counted, so a
run can say what it found, used and skipped.
"""

import collections
import dataclasses
import os
import stat
from typing import Dict, List, Tuple

from keras_transfer.config import ConfigError

# What TensorFlow's own decoder reads here (tf.io.decode_image: JPEG, PNG,
# GIF, BMP, WebP). Matched case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Image formats people keep next to their photos that TensorFlow cannot
# decode: listed as unsupported in the data report rather than lumped in with
# text files.
UNSUPPORTED_IMAGE_EXTENSIONS = (".tif", ".tiff", ".heic", ".heif", ".avif",
                                ".svg", ".psd", ".ico", ".raw", ".cr2", ".nef")
# How many paths of each skipped kind the report lists (counts are complete).
LISTED_PER_KIND = 100


class FolderLayoutError(ConfigError):
    """The folder cannot be read as one subfolder per class."""


@dataclasses.dataclass
class FolderScan:
    """What discovery found under `root`.

    `files` maps each class name to its sorted image paths; `ignored` counts
    hidden entries, non-image files, unsupported image formats, entries
    that are not regular files (FIFOs, sockets, devices) and second paths to
    a file of the same class (used once);
    `unsupported` and `not_regular` list (some of) the paths of the last two.
    """

    root: str
    class_names: List[str]
    files: Dict[str, List[str]]
    ignored: Dict[str, int]
    unsupported: List[str]
    not_regular: List[str] = dataclasses.field(default_factory=list)

    def paths_and_labels(self) -> Tuple[List[str], List[int]]:
        paths, labels = [], []
        for index, name in enumerate(self.class_names):
            paths.extend(self.files[name])
            labels.extend([index] * len(self.files[name]))
        return paths, labels


def is_special_file(path):
    """True for a FIFO, socket or device (or a link to one): named `x.png`, it
    would block its reader or never end a read, so it is passed over, never
    opened. A dangling link is not special: it is read and reported broken."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path)
    except OSError:
        return False


def _is_hidden(name):
    # __MACOSX is the resource-fork folder macOS zip files carry.
    return name.startswith(".") or name.startswith("__")


def list_class_folders(root):
    """Returns the sorted non-hidden subfolder names of `root`."""
    return sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not _is_hidden(entry.name)
    )


def _walk_class(folder, ignored, unsupported, not_regular):
    """Sorted image paths under `folder` (recursively); counts the rest.

    Sorting makes the file order, and so the splits and the shards of a
    multi-worker run, deterministic.
    """
    paths = []
    for directory, subdirs, names in os.walk(folder):
        hidden = [name for name in subdirs if _is_hidden(name)]
        ignored["hidden"] += len(hidden)
        subdirs[:] = sorted(name for name in subdirs if not _is_hidden(name))
        for name in names:
            lower = name.lower()
            path = os.path.join(directory, name)
            if _is_hidden(name):
                ignored["hidden"] += 1
            elif is_special_file(path):
                ignored["not_regular"] += 1
                if len(not_regular) < LISTED_PER_KIND:
                    not_regular.append(path)
            elif lower.endswith(IMAGE_EXTENSIONS):
                paths.append(path)
            elif lower.endswith(UNSUPPORTED_IMAGE_EXTENSIONS):
                ignored["unsupported"] += 1
                if len(unsupported) < LISTED_PER_KIND:
                    unsupported.append(path)
            else:
                ignored["not_image"] += 1
    return sorted(paths)


def _once(paths, class_name, seen, ignored):
    """`paths` without a second path to a file already listed (a link, a hard
    link): within one class it is used once and counted; under another class
    it would train under two labels, so the folder is refused."""
    kept = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:  # Unreadable: the image check reports it.
            kept.append(path)
            continue
        first = seen.setdefault((stat.st_dev, stat.st_ino), (class_name, path))
        if first[1] == path:
            kept.append(path)
        elif first[0] == class_name:
            ignored["duplicate"] += 1
        else:
            raise FolderLayoutError(
                f"one file is in two classes, {first[0]!r} and {class_name!r}, as {first[1]!r} "
                f"and {path!r} (a link, or a class folder linking to another): an image has "
                "one label; remove one of them")
    return kept


def list_images(folder, unsupported=None, not_regular=None):
    """Sorted image paths under `folder`, hidden and non-image files skipped;
    the paths of images TensorFlow cannot decode (TIFF, HEIC, ...) are added
    to the list `unsupported`, and those of entries that are not regular
    files to `not_regular`, when given (the first LISTED_PER_KIND of each)."""
    return _walk_class(folder, collections.Counter(), [] if unsupported is None else unsupported,
                       [] if not_regular is None else not_regular)


def scan(root, flag_name="dataset", classes=None):
    """Returns the `FolderScan` of a class-per-subfolder layout.

    With `classes`, only those class folders are walked and checked: a junk
    or empty folder beside them need not be moved away. Raises
    FolderLayoutError with a one-line message naming the folder when the
    layout cannot be trained on.
    """
    if not os.path.isdir(root):
        raise FolderLayoutError(
            f"{flag_name} must be an existing folder of class subfolders. "
            f"Received: {flag_name}={root!r}"
        )
    class_names = list_class_folders(root)
    if not class_names:
        raise FolderLayoutError(
            f"{flag_name} folder has no class subfolders; expected "
            f"{root}/CLASS_NAME/IMAGE. Received: {flag_name}={root!r}"
        )
    if len(class_names) < 2:
        raise FolderLayoutError(
            f"{flag_name} folder needs at least two class subfolders, found "
            f"only {class_names[0]!r}. Received: {flag_name}={root!r}"
        )
    if classes is not None:
        missing = [name for name in classes if name not in class_names]
        if missing:
            raise FolderLayoutError(
                f"{'classes' if flag_name == 'dataset' else 'source_classes'} names "
                f"{', '.join(missing)}, not a class folder of {root!r}; its class folders: "
                f"{', '.join(class_names)}")
        class_names = [name for name in class_names if name in set(classes)]
    ignored = collections.Counter(hidden=0, not_image=0, unsupported=0, not_regular=0,
                                  duplicate=0)
    for entry in os.scandir(root):  # Loose files and hidden folders at the top.
        if entry.is_dir():
            ignored["hidden"] += _is_hidden(entry.name)
        else:
            ignored["hidden" if _is_hidden(entry.name) else "not_image"] += 1
    unsupported, not_regular = [], []
    files, seen = {}, {}
    for name in class_names:
        folder = os.path.join(root, name)
        files[name] = _once(_walk_class(folder, ignored, unsupported, not_regular), name, seen,
                            ignored)
        if not files[name]:
            raise FolderLayoutError(
                f"class folder {folder!r} has no images "
                f"(extensions: {', '.join(IMAGE_EXTENSIONS)})"
            )
    return FolderScan(root, class_names, files, dict(ignored), unsupported, not_regular)


def discover(root, flag_name="dataset"):
    """Returns (class_names, paths, labels) for a class-per-subfolder layout."""
    found = scan(root, flag_name)
    paths, labels = found.paths_and_labels()
    return found.class_names, paths, labels
