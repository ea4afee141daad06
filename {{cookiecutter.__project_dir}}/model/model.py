"""Models that the config can name in `arch.type` (subclasses of `BaseModel`)."""

import torch
from torch import nn

from base import BaseModel


class SmallCNN(BaseModel):
    """Two 3x3 convolutions, a max-pool down to a 4x4 grid, then two linear layers.

    The pool adapts to the input size, so the same model takes the 8x8 digits, 28x28 MNIST and
    the resized images of an image folder; `in_channels` is 1 for grayscale and 3 for colour.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, channels: int = 32, dropout: float = 0.25) -> None:
        super().__init__()
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
