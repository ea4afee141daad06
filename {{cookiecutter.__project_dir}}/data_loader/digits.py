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
            images = torch.from_numpy(arrays[f"x_{split}"]).float().div_(16.0).unsqueeze(1)
            labels = torch.from_numpy(arrays[f"y_{split}"]).long()
        super().__init__(TensorDataset(images, labels), batch_size, shuffle, validation_split, num_workers)
        self.classes = [str(digit) for digit in range(10)]
