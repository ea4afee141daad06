"""The bundled digits: small, offline and fast, so the tests train on them whatever the project's
own dataset. Your own data loader goes in a new file of this folder (README.md, "Use your own
dataset"): every `BaseDataLoader` subclass found here can be named in `data_loader.type`.
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from base import BaseDataLoader


class DigitsDataLoader(BaseDataLoader):
    """The bundled UCI handwritten digits: 8x8 grayscale images, 10 classes, held in memory.

    `data/digits.npz` holds a fixed split: 1,437 images for training (and validation) and 360
    for testing (`training=False`). Pixel values 0..16 are scaled to 0..1.
    """

    FILE_NAME = "digits.npz"

    def __init__(
        self,
        data_dir: str,
        batch_size: int,
        shuffle: bool = True,
        validation_split: float = 0.0,
        num_workers: int = 0,
        training: bool = True,
        seed: int = 0,
    ) -> None:
        path = Path(data_dir) / self.FILE_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no {self.FILE_NAME} in '{data_dir}' (looked for {path.absolute()}); "
                "run from the project folder or fix data_loader.args.data_dir"
            )
        split = "train" if training else "test"
        with np.load(path) as arrays:
            images = torch.from_numpy(arrays[f"x_{split}"]).float().div_(16.0).unsqueeze(1)
            labels = torch.from_numpy(arrays[f"y_{split}"]).long()
        super().__init__(
            TensorDataset(images, labels),
            batch_size,
            shuffle=shuffle and training,
            validation_split=validation_split if training else 0.0,
            num_workers=num_workers,
            seed=seed,
        )
        self.classes = [str(digit) for digit in range(10)]
