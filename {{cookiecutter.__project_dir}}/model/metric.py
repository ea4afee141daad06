"""Metrics that the config can name in `metrics`.

A function `fn(output, target) -> batch mean` is averaged over the epoch's samples: right for
accuracy, wrong for any metric of the whole dataset (F1, R², AUC), whose average over batches
changes with the batch size. Such a metric is a class, like `MacroF1`: it accumulates its state
over the epoch and computes its value once (README: Epoch-level metrics).

Return tensors, not Python numbers: the trainer keeps metrics on the device and reads them back
once per epoch, which keeps the GPU from waiting on every batch.
"""

import torch

from utils.errors import ConfigError


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of samples whose highest-scoring class is the target."""
    check_class_scores("accuracy", output, target)
    return (output.argmax(dim=1) == target).float().mean()


def top_k_acc(output: torch.Tensor, target: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Fraction of samples whose target is among the `k` highest-scoring classes."""
    check_class_scores("top_k_acc", output, target)
    top_k = output.topk(min(k, output.shape[1]), dim=1).indices
    return (top_k == target.unsqueeze(1)).any(dim=1).float().mean()


def check_class_scores(metric: str, output: torch.Tensor, target: torch.Tensor) -> None:
    """These metrics read scores of shape (batch, classes) and class indices: a model of another
    task (a regression's one value per sample) gets one line before training, not a traceback."""
    if output.dim() != 2 or target.dim() != 1 or target.is_floating_point():
        raise ConfigError(
            f"config key 'metrics': {metric} needs class scores of shape (batch, classes) and class-index "
            f"targets, got outputs of shape {tuple(output.shape)} and {target.dtype} targets; remove it from "
            "metrics for this model"
        )


class MacroF1:
    """The F1 score of each class, averaged over the classes that occur in the targets or the
    predictions (scikit-learn's `f1_score(average="macro")`), from a confusion matrix of the
    whole epoch. The number of classes is the width of the model's output."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.confusion: torch.Tensor | None = None  # [target class, predicted class] -> samples

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        check_class_scores("MacroF1", output, target)
        classes = output.shape[1]
        pairs = target.long() * classes + output.argmax(dim=1)
        counts = torch.bincount(pairs, minlength=classes * classes).view(classes, classes)
        if self.confusion is not None and self.confusion.shape != counts.shape:
            raise ValueError(f"MacroF1 saw outputs of {len(self.confusion)} classes, now of {classes}")
        # (a restored state is on the CPU)
        self.confusion = counts if self.confusion is None else self.confusion.to(counts.device) + counts

    def compute(self) -> torch.Tensor:
        if self.confusion is None:
            return torch.tensor(float("nan"))
        confusion = self.confusion.double()
        # F1 = 2 TP / (2 TP + FP + FN), and 2 TP + FP + FN = (times predicted) + (times the target)
        seen = confusion.sum(dim=0) + confusion.sum(dim=1)
        return (2 * confusion.diagonal()[seen > 0] / seen[seen > 0]).mean()

    # For torchrun and exact resume: tensors that add up over processes, and putting them back.
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.confusion is None else {"confusion": self.confusion}

    def load_state_dict(self, state: dict) -> None:
        confusion = state.get("confusion")
        if state and not (
            isinstance(confusion, torch.Tensor)
            and confusion.dim() == 2
            and confusion.shape[0] == confusion.shape[1]
            and not confusion.is_floating_point()
        ):
            raise ValueError("MacroF1's state should be {'confusion': a square integer tensor}")
        self.confusion = confusion
