"""Models that the config can name in `arch.type` (subclasses of `BaseModel`)."""

import torch
from torch import nn

from base import BaseModel


class DigitsCNN(BaseModel):
    """A small CNN for 8x8 single-channel images: two 3x3 convolutions, then two linear layers."""

    def __init__(self, num_classes: int = 10, channels: int = 32, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
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
        """Class scores (logits) of shape (batch, num_classes) for images of shape (batch, 1, 8, 8)."""
        return self.classifier(self.features(x))
