"""MNIST through torchvision: 60,000 training and 10,000 test images of handwritten digits."""

import gzip
import os
import shutil
import uuid
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import TensorDataset
from torchvision.datasets import MNIST
from torchvision.transforms.functional import pil_to_tensor

from base import BaseDataLoader
from utils.errors import DataError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MEAN, STD = 0.1307, 0.3081  # of the MNIST training images, after scaling to [0, 1]


class MnistDataLoader(BaseDataLoader):
    """28x28 grayscale digits, 10 classes, held in memory as one tensor (fast batching).

    torchvision downloads the four files to `<data_dir>/MNIST/raw` on first use (about 12 MB).
    Without internet, put them there yourself, compressed (.gz) or not; `download: false`
    never tries the network.
    """

    def __init__(
        self, data_dir, batch_size, shuffle=True, validation_split=0.0, num_workers=0, training=True, download=True
    ):
        raw = Path(data_dir, "MNIST", "raw")
        _extract_gz_files(raw)
        try:
            mnist = MNIST(data_dir, train=training, download=download)
        except (RuntimeError, OSError) as exc:
            why = "download is false" if not download else f"the download failed: {_last_line(exc)}"
            raise DataError(
                f"MNIST files are missing from {raw.absolute()} and {why}; "
                f"put {', '.join(FILES)} there (or their .gz files) and run again"
            ) from None
        except (AssertionError, ValueError):  # torchvision checks the files' headers with assert
            raise DataError(
                f"the MNIST files in {raw.absolute()} are damaged (not in MNIST's IDX format); "
                "delete them and run again to download them, or copy the original files there"
            ) from None
        images = _normalised(mnist.data).unsqueeze(1)
        super().__init__(
            TensorDataset(images, mnist.targets.long()), batch_size, shuffle, validation_split, num_workers
        )
        self.classes = [str(digit) for digit in range(10)]

    @staticmethod
    def read_input(path) -> torch.Tensor:
        """One image file for predict.py, as the data's images look: 28x28 pixels, grey (a colour
        image is converted), a white digit on black, normalised as the data is."""
        try:
            with Image.open(path) as image:
                grey = pil_to_tensor(image.convert("L"))
        except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
            raise DataError(f"cannot read image {path}: {exc}") from None
        if grey.shape != (1, 28, 28):
            raise DataError(f"{path} is {grey.shape[2]}x{grey.shape[1]} pixels; MNIST's images are 28x28")
        return _normalised(grey)

    @staticmethod
    def write_sample(data_dir: str | Path, train: int = 96, test: int = 32) -> None:
        """Write a few random images in MNIST's own file format, for offline tests and smoke runs."""
        raw = Path(data_dir, "MNIST", "raw")
        raw.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for split, count in (("train", train), ("t10k", test)):
            images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
            labels = (np.arange(count) % 10).astype(np.uint8)
            # IDX format: a magic number giving the element type and rank, the sizes, then the bytes.
            (raw / f"{split}-images-idx3-ubyte").write_bytes(_idx_header(0x0803, images.shape) + images.tobytes())
            (raw / f"{split}-labels-idx1-ubyte").write_bytes(_idx_header(0x0801, labels.shape) + labels.tobytes())


def _normalised(pixels: torch.Tensor) -> torch.Tensor:
    """Grey levels 0..255 as the model sees them: scaled to [0, 1], then MNIST's mean and std."""
    return pixels.float().div_(255).sub_(MEAN).div_(STD)


def _extract_gz_files(raw: Path) -> None:
    """Unpack `<file>.gz` next to itself when `<file>` is missing: torchvision reads only the
    unpacked files unless it downloads. Each process writes to a temporary name of its own (under
    torchrun they all get here at once), renamed into place when complete."""
    for packed in raw.glob("*.gz"):
        target = packed.with_suffix("")
        if target.exists():
            continue
        partial = target.with_name(f"{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
        try:
            with gzip.open(packed, "rb") as source, open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.replace(partial, target)
        except (OSError, EOFError, zlib.error) as exc:  # a truncated download, or not gzip at all
            raise DataError(
                f"cannot unpack {packed.absolute()} ({exc}); delete it and run again to download it, "
                "or copy the original file there"
            ) from None
        finally:
            partial.unlink(missing_ok=True)


def _idx_header(magic: int, shape: tuple[int, ...]) -> bytes:
    return b"".join(int(n).to_bytes(4, "big") for n in (magic, *shape))


def _last_line(exc: Exception) -> str:
    """torchvision reports one failure per mirror, over several lines; the last one is enough."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
