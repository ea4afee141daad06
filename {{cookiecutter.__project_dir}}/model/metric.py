"""Metrics that the config can name in `metrics`: `fn(output, target) -> batch mean`.

Return a tensor, not a Python number: the trainer averages metrics on the device and reads
them back once per epoch, which keeps the GPU from waiting on every batch.
"""

import torch


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of samples whose highest-scoring class is the target."""
    return (output.argmax(dim=1) == target).float().mean()


def top_k_acc(output: torch.Tensor, target: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Fraction of samples whose target is among the `k` highest-scoring classes."""
    top_k = output.topk(min(k, output.shape[1]), dim=1).indices
    return (top_k == target.unsqueeze(1)).any(dim=1).float().mean()
