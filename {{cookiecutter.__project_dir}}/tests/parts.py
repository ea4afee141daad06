"""The tests' own model, metric, trainer and trackers, written the way README.md tells you to write yours.

tests/config.json names them by dotted path, so the tests never depend on the example model,
loss or metric: replace those freely. Only tests/test_example.py tests the example itself.
"""

import errno
import json
import random
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, default_collate

from base import BaseDataLoader, BaseTrainer
from logger.trackers import Tracker


class TinyCNN(nn.Module):
    """A plain `nn.Module` (not a BaseModel): one convolution, batch norm and dropout, so that
    exact resume has buffers and random draws to get right."""

    def __init__(self, num_classes: int = 10, channels: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LinearNet(nn.Module):
    """One linear layer over the 64 pixels: no dropout, no batch statistics; `outputs=1` makes
    it a regression model."""

    def __init__(self, outputs: int = 10) -> None:
        super().__init__()
        self.linear = nn.Linear(64, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class Regressor(nn.Module):
    """One value per sample: a regression model, for which class metrics make no sense."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)).squeeze(1)


def squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output, target.float())


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The tests' loss, here rather than in model/loss.py, which a user replaces."""
    return F.cross_entropy(output, target)


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (output.argmax(dim=1) == target).float().mean()


def in_top(output: torch.Tensor, target: torch.Tensor, k: int = 3) -> torch.Tensor:
    """A batch-mean metric with an argument: the target among the k highest scores."""
    return (output.topk(k, dim=1).indices == target.unsqueeze(1)).any(dim=1).float().mean()


class BalancedAccuracy:
    """The tests' epoch-level metric: the recall of each class, averaged over the classes seen.
    Averaged over batches instead, it would change with the batch size."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.hits = self.seen = None  # per class: samples predicted right, samples

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        classes = output.shape[1]
        hits = torch.bincount(target[output.argmax(dim=1) == target], minlength=classes)
        seen = torch.bincount(target, minlength=classes)
        if self.hits is not None:  # (a restored state is on the CPU)
            hits, seen = hits + self.hits.to(hits.device), seen + self.seen.to(seen.device)
        self.hits, self.seen = hits, seen

    def compute(self) -> torch.Tensor:
        present = self.seen > 0
        return (self.hits[present].double() / self.seen[present]).mean()

    def state_dict(self) -> dict:
        return {} if self.hits is None else {"hits": self.hits, "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        if state and not (state["hits"].shape == state["seen"].shape and not state["hits"].is_floating_point()):
            raise ValueError("hits and seen should be integer counts of as many classes")
        self.hits, self.seen = state.get("hits"), state.get("seen")


class WithoutCompute(BalancedAccuracy):
    """A metric object that forgot compute(): the config check names it."""

    compute = None


class StepOnlyTrainer(BaseTrainer):
    """A user's trainer that overrides `training_step` alone: no metrics from output and target,
    but a scalar of its own. The loop must keep every guarantee for it too."""

    extra_metrics = ("confidence",)

    def training_step(self, batch):
        images, labels = batch
        logits = self.model(images)
        confidence = F.softmax(logits.detach(), dim=1).amax(dim=1).mean()
        return {"loss": self.criterion(logits, labels), "confidence": confidence}


class Digits(Dataset):
    """The bundled digits as an ordinary map-style Dataset: one sample per `__getitem__`."""

    def __init__(self, data_dir: str, training: bool) -> None:
        split = "train" if training else "test"
        with np.load(Path(data_dir) / "digits.npz") as arrays:
            self.images = torch.from_numpy(arrays[f"x_{split}"]).float().div(16.0).unsqueeze(1)
            self.labels = torch.from_numpy(arrays[f"y_{split}"]).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


class TemplateStyleDigits(BaseDataLoader):
    """A loader written as pytorch-template shows it: no `seed`, `collate_fn` passed on
    positionally, and `validation_split` passed on for the test split too."""

    def __init__(self, data_dir, batch_size, shuffle=True, validation_split=0.0, num_workers=1, training=True):
        self.data_dir = data_dir
        self.dataset = Digits(data_dir, training)
        super().__init__(self.dataset, batch_size, shuffle, validation_split, num_workers, default_collate)


class NoisyDigits(Digits):
    """Digits with random augmentation drawn from torch's and Python's random states, as a user's
    dataset draws it: exact resume must reproduce every draw, in worker processes too."""

    def __getitem__(self, index):
        image, label = super().__getitem__(index)
        shift = random.choice((-1, 0, 1))
        return torch.roll(image, shift, dims=2) + 0.05 * torch.randn_like(image), label


class AugmentedDigits(BaseDataLoader):
    """A user's loader over a map-style dataset with random augmentation, read by `num_workers`
    worker processes (through torch's DataLoader)."""

    def __init__(self, data_dir, batch_size, shuffle=True, validation_split=0.0, num_workers=2, training=True):
        super().__init__(NoisyDigits(data_dir, training), batch_size, shuffle, validation_split, num_workers)


def loss_failing_on_rank_1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A loss that fails as a config mistake would (labels out of range), on the second process
    of a torchrun run alone: as a data problem in one process's share of the data would."""
    second = torch.distributed.is_initialized() and torch.distributed.get_rank() == 1
    return F.cross_entropy(output, target + 100 * second)


def loss_with_a_bug(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A user's loss with a bug in it."""
    raise ValueError("a bug in the user's loss")


class BallastNet(TinyCNN):
    """TinyCNN carrying `megabytes` of extra weights it never uses: its checkpoints take a while
    to write, so that a signal can arrive during a save."""

    def __init__(self, megabytes: int = 100) -> None:
        super().__init__()
        self.register_buffer("ballast", torch.zeros(megabytes * 2**18))


def nan_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A loss that is NaN from the first step: what a far too large learning rate leads to."""
    return F.cross_entropy(output, target) * float("nan")


class RecordingTracker(Tracker):
    """A user's tracker, written as README.md says: each call it gets, as a line of calls.jsonl
    in the run folder."""

    def start(self, run_dir, config, epoch, step):
        self.file = Path(run_dir) / "calls.jsonl"
        self._record("start", epoch=epoch, step=step, name=config["name"])

    def log_step(self, step, values):
        self._record("log_step", step=step, keys=sorted(values))

    def log_epoch(self, epoch, step, values):
        self._record("log_epoch", epoch=epoch, step=step, keys=sorted(values))

    def close(self, status):
        self._record("close", status=status)

    def _record(self, call: str, **fields) -> None:
        with open(self.file, "a", encoding="utf-8") as file:
            file.write(json.dumps({"call": call, **fields}) + "\n")


class FullDiskTracker(Tracker):
    """A tracker whose writes fail from the second epoch on, as on a full disk."""

    def log_epoch(self, epoch, step, values):
        if epoch >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")


class BuggyTracker(Tracker):
    """A user's tracker with a bug in it."""

    def log_epoch(self, epoch, step, values):
        raise ValueError("a bug in the user's tracker")


FIRST_STEP_TAKEN = threading.Event()


def loss_marking_the_first_step(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    FIRST_STEP_TAKEN.set()
    return F.cross_entropy(output, target)


class SlowStartTracker(Tracker):
    """A tracker that takes until the first training step (30 s at most) to start, as a tracking
    server far away would: the step must not wait for it."""

    def start(self, run_dir, config, epoch, step):
        self.step_came_first = FIRST_STEP_TAKEN.wait(timeout=30)
