"""Models that the config can name in `arch.type` (subclasses of `BaseModel`)."""

import torch
from torch import nn

from base import BaseModel
from utils.errors import ConfigError


class SmallCNN(BaseModel):
    """Two 3x3 convolutions, a max-pool down to a 4x4 grid, then two linear layers.

    The pool adapts to the input size, so the same model takes the 8x8 digits, 28x28 MNIST and
    the resized images of an image folder; `in_channels` is 1 for grayscale and 3 for colour.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, channels: int = 32, dropout: float = 0.25) -> None:
        super().__init__()
        # Check your model's arguments like this: a ConfigError is one line naming the config key;
        # any other exception raised here is taken for a bug in the model and shows its traceback.
        for name, value in {"num_classes": num_classes, "in_channels": in_channels, "channels": channels}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"config key 'arch.args.{name}': {value!r} is not a positive integer; use 1 or more")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ConfigError(
                f"config key 'arch.args.dropout': {dropout!r} is not a probability; use a value in [0, 1)"
            )
        self.num_classes = num_classes  # train.py compares it with the classes the data has
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * channels * 4 * 4, 128),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) of shape (batch, num_classes) for images of shape (batch, C, H, W)."""
        return self.classifier(self.features(x))
