"""The default trainer: the training steps of one epoch, then a pass over the validation data."""

import itertools
import sys

import torch
from tqdm import tqdm

from base import BaseTrainer
from utils import MetricTracker, distributed


class Trainer(BaseTrainer):
    """Trains on `data_loader`, validating on `valid_data_loader` (if any) after every epoch.

    `limit_batches` caps the batches per epoch and per validation; the smoke run uses it.
    """

    def __init__(self, *args, data_loader, valid_data_loader=None, limit_batches: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_loader = data_loader
        self.valid_data_loader = valid_data_loader
        self.classes = data_loader.classes
        self.limit_batches = limit_batches
        for loader in (data_loader, valid_data_loader):
            if loader is not None and self.distributed:
                loader.shard(distributed.rank(), distributed.world_size(), pad=loader is data_loader)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_model.train()
        if self.samples_done == 0:  # otherwise resuming mid-epoch: keep the restored sums
            self.train_metrics.reset()
        self.data_loader.set_epoch(epoch, skip_samples=self.samples_done)
        global_batch = self.data_loader.batch_size * distributed.world_size()
        batches = progress(self.data_loader, f"epoch {epoch}", self.limit_batches)
        for group in accumulation_groups(batches, self.accumulate):
            group_size = sum(target.shape[0] for _, target in group)
            for i, (data, target) in enumerate(group):
                data, target = data.to(self.device, non_blocking=True), target.to(self.device, non_blocking=True)
                with self.no_sync(last_micro_batch=i == len(group) - 1):
                    with self.autocast():
                        output = self.train_model(data)
                        loss = self.criterion(output, target)
                    self.guard.check_loss(loss, self.global_step + 1)
                    weight = target.shape[0] / group_size  # micro-batches add up to one batch of their union
                    self.scaler.scale(loss * weight if weight != 1 else loss).backward()
                update_metrics(self.train_metrics, loss, output, target, self.metric_fns)
            self.clip_gradients()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self._after_step(epoch, len(group) * global_batch, loss)
        self.samples_done = 0
        log = self.train_metrics.result()
        if self.valid_data_loader is not None:
            valid_log = evaluate(
                self.model, self.valid_data_loader, self.criterion, self.metric_fns, self.device, self.limit_batches
            )
            log.update({f"val_{key}": value for key, value in valid_log.items()})
        return log


def accumulation_groups(batches, size: int):
    """Consecutive lists of `size` batches (the last may be shorter): one optimizer step each."""
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def update_metrics(metrics: MetricTracker, loss, output, target, metric_fns) -> None:
    """Add one batch's loss and metrics, weighted by its size; stays on the device (no sync)."""
    n = target.shape[0]
    metrics.update("loss", loss, n)
    output = output.detach()
    for fn in metric_fns:
        metrics.update(fn.__name__, fn(output, target), n)


@torch.no_grad()
def evaluate(model, loader, criterion, metric_fns, device, limit_batches: int | None = None) -> dict[str, float]:
    """Average loss and metrics of `model` over `loader`, weighted by sample count (all processes)."""
    model.eval()
    metrics = MetricTracker("loss", *(fn.__name__ for fn in metric_fns))
    for data, target in progress(loader, "evaluate", limit_batches):
        data, target = data.to(device, non_blocking=True), target.to(device, non_blocking=True)
        output = model(data)
        update_metrics(metrics, criterion(output, target), output, target, metric_fns)
    return metrics.result()


def progress(loader, desc: str, limit: int | None = None):
    """Iterate `loader` (at most `limit` batches), with a progress bar when stderr is a terminal."""
    total = len(loader) if limit is None else min(limit, len(loader))
    batches = loader if limit is None else itertools.islice(loader, limit)
    if not sys.stderr.isatty() or not distributed.is_main():
        return batches
    return tqdm(batches, total=total, desc=desc, leave=False, dynamic_ncols=True)
