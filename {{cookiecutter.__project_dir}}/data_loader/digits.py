"""The bundled digits: small, offline and fast. Your own data loader goes in a new file of this
folder (README.md, "Use your own dataset"): every `BaseDataLoader` subclass defined in a file
here can be named in `data_loader.type`.
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from base import BaseDataLoader
from utils.errors import DataError


class DigitsDataLoader(BaseDataLoader):
    """The bundled UCI handwritten digits: 8x8 grayscale images, 10 classes, held in memory.

    `data/digits.npz` holds a fixed split: 1,437 images for training (and validation) and 360
    for testing (`training=False`). Pixel values 0..16 are scaled to 0..1.
    """

    def __init__(self, data_dir, batch_size, shuffle=True, validation_split=0.0, num_workers=0, training=True):
        path = Path(data_dir) / "digits.npz"
        if not path.is_file():
            raise DataError(
                f"no digits.npz in '{data_dir}' (looked for {path.absolute()}); "
                "run from the project folder or fix data_loader.args.data_dir"
            )
        split = "train" if training else "test"
        with np.load(path) as arrays:
            images = _scaled(torch.from_numpy(arrays[f"x_{split}"])).unsqueeze(1)
            labels = torch.from_numpy(arrays[f"y_{split}"]).long()
        super().__init__(TensorDataset(images, labels), batch_size, shuffle, validation_split, num_workers)
        self.classes = [str(digit) for digit in range(10)]

    @staticmethod
    def read_input(path) -> torch.Tensor:
        """One digit for predict.py, as the data's samples look: an 8x8 (or 64-value) .npy array
        of values 0..16 like digits.npz's, or an 8x8 image file, white on black, whose 0..255
        grey levels are rounded to the data's 17 levels (0..16)."""
        path = Path(path)
        if path.suffix.lower() == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except ValueError:  # (numpy's wording: it "contains pickled data", which is never loaded)
                raise DataError(f"cannot read {path}: not a .npy file of numbers") from None
            except OSError as exc:
                raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
            if not np.issubdtype(array.dtype, np.number) or array.size != 64:
                raise DataError(f"{path} holds {array.dtype} values of shape {array.shape}; a digit is 8x8 numbers")
            pixels = torch.from_numpy(array.astype(np.float32)).reshape(8, 8)
        else:
            grey = torch.from_numpy(_read_grey_image(path))
            if grey.shape != (8, 8):
                raise DataError(f"{path} is {grey.shape[1]}x{grey.shape[0]} pixels; the digits are 8x8 images")
            pixels = grey.float().mul(16 / 255).round()
        return _scaled(pixels).unsqueeze(0)


def _scaled(pixels: torch.Tensor) -> torch.Tensor:
    """Values 0..16 (as digits.npz holds them) as the model sees them: 0..1."""
    return pixels.float().div(16.0)


def _read_grey_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image  # Pillow: only for image files (torchvision brings it; .npy needs none)
    except ImportError:
        raise DataError(f"reading {path} needs Pillow: pip install pillow, or give .npy arrays") from None
    try:
        with Image.open(path) as image:
            return np.array(image.convert("L"))
    except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"cannot read {path} as an image or a .npy array: {exc}") from None
