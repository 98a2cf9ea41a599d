"""Discovery of a folder of images laid out as one subfolder per class."""

import os

from keras_transfer.config import ConfigError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class FolderLayoutError(ConfigError):
    """The folder cannot be read as one subfolder per class."""


def _is_hidden(name):
    return name.startswith(".") or name.startswith("__")


def list_class_folders(root):
    """Returns the sorted non-hidden subfolder names of `root`."""
    return sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not _is_hidden(entry.name)
    )


def list_images(folder):
    """Returns sorted paths of image files under `folder` (recursively).

    Hidden files and folders are skipped; extensions match case-insensitively.
    Sorting makes the file order, and so the splits, deterministic.
    """
    paths = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = [name for name in subdirs if not _is_hidden(name)]
        for name in files:
            if not _is_hidden(name) and name.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.join(directory, name))
    return sorted(paths)


def discover(root, flag_name="dataset"):
    """Returns (class_names, paths, labels) for a class-per-subfolder layout.

    Raises FolderLayoutError with a one-line message naming the folder when the
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
    paths, labels = [], []
    for index, name in enumerate(class_names):
        images = list_images(os.path.join(root, name))
        if not images:
            raise FolderLayoutError(
                f"class folder {os.path.join(root, name)!r} has no images "
                f"(extensions: {', '.join(IMAGE_EXTENSIONS)})"
            )
        paths.extend(images)
        labels.extend([index] * len(images))
    return class_names, paths, labels
