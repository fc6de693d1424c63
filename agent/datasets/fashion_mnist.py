"""Fashion-MNIST (MIT), read from Debian's package or from the subset committed with the zoo.

Debian's ``dataset-fashion-mnist`` installs the real idx.gz files under
``/usr/share/datasets/fashion-mnist``. When they are there the full 10,000-image test set is used;
otherwise the committed subset (the first 1,000 test images, see docs/zoo.md) lets the demo and
the tests run on a machine without apt. Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import DatasetError
from agent.zoo import zoo_root

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SUBSET_FILE = "data/fashion-mnist-t10k-first1000.npz"
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801


@dataclass(frozen=True)
class LabelledImages:
    """Images as uint8 [N, 28, 28], labels as int64 [N], and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str


def read_idx(path: Path) -> np.ndarray:
    """Parse one idx(.gz) file (big-endian header: magic, then one u32 per dimension)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in (_IDX_IMAGES, _IDX_LABELS):
        raise DatasetError(f"{path} is not an idx file (magic {magic:#010x}); reinstall dataset-fashion-mnist")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def debian_split(split: str, root: Path = DEBIAN_DIR) -> LabelledImages | None:
    """The full ``train`` or ``t10k`` split from Debian's package, or None when not installed."""
    images, labels = root / f"{split}-images-idx3-ubyte.gz", root / f"{split}-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        return None
    return LabelledImages(read_idx(images), read_idx(labels).astype(np.int64), f"debian:{root}/{split}")


def committed_subset() -> LabelledImages:
    """The first 1,000 images of the official test set, committed with the zoo."""
    path = zoo_root() / SUBSET_FILE
    with np.load(path) as npz:
        return LabelledImages(npz["images"], npz["labels"].astype(np.int64), f"zoo:{SUBSET_FILE}")


def test_set(prefer: str = "auto", root: Path = DEBIAN_DIR) -> LabelledImages:
    """The test set to score with: Debian's full 10k when installed (``auto``), else the subset.

    ``prefer`` is ``auto``, ``full`` (Debian's set, or an error saying how to install it) or
    ``subset`` (always the committed 1,000 images, so numbers are comparable across machines).
    """
    if prefer not in ("auto", "full", "subset"):
        raise DatasetError(f"unknown Fashion-MNIST split {prefer!r}; use auto, full or subset")
    if prefer != "subset":
        full = debian_split("t10k", root)
        if full is not None:
            return full
        if prefer == "full":
            raise DatasetError(
                "the full Fashion-MNIST test set is not installed; "
                "run 'apt-get install dataset-fashion-mnist' or use --dataset fashion-mnist:subset"
            )
    return committed_subset()
