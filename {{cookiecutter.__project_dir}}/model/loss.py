"""Loss functions that the config can name in `loss`: `fn(output, target) -> scalar tensor`."""

import torch
import torch.nn.functional as F


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of class scores (logits) against integer class labels."""
    return F.cross_entropy(output, target)


def nll_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood, for models whose output is already log-probabilities."""
    return F.nll_loss(output, target)
