"""`--unlabeled_data=FOLDER`: images anywhere under a folder, no class
structure, checked as any folder's images are (header and a real decode,
cached); broken ones are skipped and counted.

No image of the target's own splits joins the pool: not a validation or test
image (it would leak what the run is measured on into training), not a
labelled training image (it trains with its label). Files are told apart by
identity (device and inode), so a link or another path to one is caught too.
"""

import dataclasses
import os

import numpy as np

from keras_transfer.checks import ConfigError
from keras_transfer.data import image_check, image_folder, pipeline, sources
from keras_transfer.log import logger


@dataclasses.dataclass(frozen=True)
class Pool:
    """The unlabelled images and what was left out of the folder."""

    examples: sources.Examples
    found: int
    broken: int
    of_the_target: int


def _identity(path):
    try:
        stat = os.stat(path)
        return (stat.st_dev, stat.st_ino)
    except OSError:
        return os.path.realpath(path)


def _in_memory(paths, like):
    """The images decoded to the in-memory target's size and channels (an
    embedded or TFDS target keeps its images as arrays)."""
    height, channels = like.images.shape[1], like.images.shape[-1]

    def decoded(path):
        with open(path, "rb") as handle:
            pixels = pipeline.decode_image(handle.read(), channels, height).numpy()
        return pixels.round().clip(0, 255).astype(like.images.dtype)

    return np.stack([decoded(path) for path in paths])


def load(root, data, policy):
    """The `Pool` of usable images under `root` that are none of `data`'s."""
    paths = image_folder.list_images(root)
    checks, _ = image_check.check_files(paths, max_megapixels=policy.max_megapixels,
                                        root=root, cache_dir=policy.cache_dir,
                                        verbose=policy.verbose)
    usable = [check.path for check in checks if check.ok]
    own = {_identity(str(path)) for split in (data.train, data.validation, data.test)
           if split.files is not None for path in split.files}
    kept = [path for path in usable if _identity(path) not in own]
    if not kept:
        raise ConfigError(
            f"unlabeled_data has no usable image that is not one of the dataset's own "
            f"({len(paths)} found, {len(paths) - len(usable)} broken, "
            f"{len(usable)} of the dataset). Received: unlabeled_data={root!r}")
    labels = np.zeros(len(kept), np.int64)  # Placeholders: the pool trains without them.
    if data.train.images is not None:
        examples = sources.Examples(labels=labels, images=_in_memory(kept, data.train))
    else:
        examples = sources.Examples(labels=labels, files=np.asarray(kept))
    pool = Pool(examples, found=len(paths), broken=len(paths) - len(usable),
                of_the_target=len(usable) - len(kept))
    logger.info(f"unlabelled images: {len(kept):,} under {root} ({pool.broken:,} broken "
                f"and skipped, {pool.of_the_target:,} of the dataset's own splits left out)")
    return pool
