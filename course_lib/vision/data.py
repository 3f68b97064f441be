"""Image data sets for the ViT: scikit-learn's 8×8 digits (offline) and CIFAR-10 (downloaded only when asked).

Both come as one :class:`ImageData`: whole train and test sets as ``uint8`` tensors (small
enough to sit on the GPU at once; batches are cut and normalised on the device) with the
normalisation computed on the training images.

* :func:`load_digits_split`: the 1,797 digits of ``sklearn.datasets.load_digits`` (16 grey
  levels, shipped inside scikit-learn's wheel), split once and for all, stratified by class,
  into 1,347 training and 450 test images. The split does not depend on any run's seed, so
  every model and seed is scored on the same 450 images.
* :func:`load_cifar10`: CIFAR-10 from its on-disk python format (``cifar-10-batches-py``:
  pickles ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each with ``b"data"``
  ``[N, 3072]`` uint8 in (R, G, B) planes of 32×32 and ``b"labels"``). It downloads only with
  ``download=True`` (through torchvision when installed, else from the official URL);
  otherwise a missing folder is a :class:`DatasetMissing` error saying what to do.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..core.config import ConfigError

__all__ = ["ImageData", "DatasetMissing", "load_digits_split", "load_cifar10", "read_cifar_batches",
           "random_shift", "random_flip", "DIGITS_TEST_FRACTION", "DIGITS_SPLIT_SEED", "CIFAR10_URL",
           "CIFAR10_FOLDER", "DATASETS", "load_dataset"]

# The digits split: a quarter of the images, stratified by class, chosen by a fixed seed.
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"    # of the archive, as published with it
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class DatasetMissing(ConfigError):
    """The data set is not on disk and was not (or could not be) downloaded; the message says what to do."""


class ImageData(NamedTuple):
    """A labelled image data set, split into train and test.

    ``train_images [N, C, H, W]`` and ``test_images [M, C, H, W]`` are ``uint8`` (raw pixel
    levels, at most ``scale``); ``train_labels [N]``, ``test_labels [M]`` long in
    ``0..len(classes)-1``. ``mean [C]`` and ``std [C]`` are the per-channel statistics of the
    training images divided by ``scale``: :meth:`normalize` maps a batch to the float input of
    the models.
    """
    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    scale: float
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, C, H, W] -> float32 [B, C, H, W]``: ``(x / scale - mean) / std`` per channel."""
        mean = self.mean.to(images.device).view(-1, 1, 1)
        std = self.std.to(images.device).view(-1, 1, 1)
        return (images.float() / self.scale - mean) / std

    def to(self, device: torch.device | str) -> "ImageData":
        """The same data with every tensor on ``device``."""
        return self._replace(**{k: v.to(device) for k, v in self._asdict().items() if isinstance(v, torch.Tensor)})


def _make(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
          classes: tuple[str, ...], scale: float) -> ImageData:
    train = torch.as_tensor(np.ascontiguousarray(train_x), dtype=torch.uint8)
    scaled = train.float() / scale
    return ImageData(name, train, torch.as_tensor(train_y, dtype=torch.long),
                     torch.as_tensor(np.ascontiguousarray(test_x), dtype=torch.uint8),
                     torch.as_tensor(test_y, dtype=torch.long), tuple(classes), float(scale),
                     scaled.mean(dim=(0, 2, 3)), scaled.std(dim=(0, 2, 3)))


def load_digits_split() -> ImageData:
    """scikit-learn's 8×8 digits (``[N, 1, 8, 8]``, levels 0..16, classes ``"0"``..``"9"``), split into 75 %
    training and 25 % test images, stratified by class with a fixed seed: the same 1,347 / 450
    images for every run."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.uint8)[:, None]                    # [1797, 1, 8, 8], levels 0..16
    train, test = train_test_split(np.arange(len(digits.target)), test_size=DIGITS_TEST_FRACTION,
                                   stratify=digits.target, random_state=DIGITS_SPLIT_SEED)
    return _make("digits", images[train], digits.target[train], images[test], digits.target[test],
                 tuple(str(c) for c in range(10)), 16.0)


# ----------------------------------------------------------------------------------- CIFAR-10
def read_cifar_batches(folder: str | os.PathLike, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR pickles ``folder/name`` and stack them: ``(images [N, 3, 32, 32] uint8, labels [N] int64)``."""
    images, labels = [], []
    for name in names:
        with open(Path(folder) / name, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{Path(folder) / name}: b'data' must be [N, 3072] uint8; got {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _cifar_files(folder: Path) -> list[str]:
    return [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _missing(folder: Path) -> list[str]:
    return [name for name in _cifar_files(folder) if not (folder / name).is_file()]


def _download_cifar10(root: Path) -> None:
    """Fetch and unpack CIFAR-10 into ``root/cifar-10-batches-py``: through torchvision when it is installed
    (it checks the archive itself), else with urllib from :data:`CIFAR10_URL`, checked against its MD5."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        import torchvision
    except ImportError:
        torchvision = None
    if torchvision is not None:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
        return
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        urllib.request.urlretrieve(CIFAR10_URL, archive)
        digest = hashlib.md5(archive.read_bytes()).hexdigest()
        if digest != CIFAR10_MD5:
            raise DatasetMissing(f"the archive from {CIFAR10_URL} has MD5 {digest}, not {CIFAR10_MD5}: download "
                                 "corrupted, nothing was unpacked")
        with tarfile.open(archive, "r:gz") as tar:
            unpacked = Path(tmp) / "unpacked"
            if hasattr(tarfile, "data_filter"):                 # refuses absolute paths and links out of the folder
                tar.extractall(unpacked, filter="data")
            else:
                for member in tar.getmembers():
                    if member.name.startswith(("/", "..")) or ".." in Path(member.name).parts:
                        raise DatasetMissing(f"unsafe path {member.name!r} in the CIFAR-10 archive")
                tar.extractall(unpacked)
        target = root / CIFAR10_FOLDER
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(unpacked / CIFAR10_FOLDER), target)


def load_cifar10(root: str | os.PathLike = "data", download: bool = False) -> ImageData:
    """CIFAR-10 from ``root/cifar-10-batches-py``: 50,000 training and 10,000 test images ``[3, 32, 32]``.

    Args:
      root: the folder that holds (or will hold) ``cifar-10-batches-py``.
      download: fetch the data when it is missing (about 163 MB: needs a network, e.g. on Colab).

    Raises:
      DatasetMissing: the files are not there and ``download`` is False, or the download failed.
    """
    root = Path(root)
    folder = root / CIFAR10_FOLDER
    missing = _missing(folder)
    if missing and download:
        try:
            _download_cifar10(root)
        except DatasetMissing:
            raise
        except Exception as exc:                    # no network, a proxy, a full disk: say it in one line
            raise DatasetMissing(f"could not download CIFAR-10 into {root} ({type(exc).__name__}: {exc}); "
                                 f"download {CIFAR10_URL} and unpack it there, or use --dataset digits offline") \
                from None
        missing = _missing(folder)
    if missing:
        raise DatasetMissing(f"CIFAR-10 is not in {folder} (missing {', '.join(missing)}); pass --download true "
                             f"where a network is reachable (e.g. Colab), or unpack {CIFAR10_URL} into {root}")
    train_x, train_y = read_cifar_batches(folder, _cifar_files(folder)[:5])
    test_x, test_y = read_cifar_batches(folder, ["test_batch"])
    classes = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as fh:
            names = pickle.load(fh, encoding="bytes").get(b"label_names")
        if names:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return _make("cifar10", train_x, train_y, test_x, test_y, classes, 255.0)


DATASETS = ("digits", "cifar10")


def load_dataset(name: str, root: str | os.PathLike = "data", download: bool = False) -> ImageData:
    """:func:`load_digits_split` or :func:`load_cifar10` by name (``"digits"``, ``"cifar10"``)."""
    if name == "digits":
        return load_digits_split()
    if name == "cifar10":
        return load_cifar10(root, download)
    raise ConfigError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")


# ------------------------------------------------------------------------------- augmentation
def random_shift(images: torch.Tensor, max_shift: int, fill: float = 0.0) -> torch.Tensor:
    """Translate each image of ``[B, C, H, W]`` by its own random offset of at most ``max_shift`` pixels along each
    axis (the global torch generator of the images' device draws them), filling the uncovered border with ``fill``:
    the pad-and-crop augmentation of CIFAR training, batched (one gather, no loop over images)."""
    if max_shift == 0:
        return images
    B, C, H, W = images.shape
    k = max_shift
    padded = F.pad(images, (k, k, k, k), value=fill)                             # [B, C, H + 2k, W + 2k]
    dy = torch.randint(0, 2 * k + 1, (B,), device=images.device)
    dx = torch.randint(0, 2 * k + 1, (B,), device=images.device)
    rows = (dy[:, None] + torch.arange(H, device=images.device))[:, :, None]     # [B, H, 1]
    cols = (dx[:, None] + torch.arange(W, device=images.device))[:, None, :]     # [B, 1, W]
    batch = torch.arange(B, device=images.device)[:, None, None]
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)                      # [B, H, W, C] -> [B, C, H, W]


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Mirror each image of ``[B, C, H, W]`` left-right with probability 1/2 (not for digits: a mirrored 2 is no 2)."""
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)
