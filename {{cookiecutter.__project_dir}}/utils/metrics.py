"""Epoch-level metrics: objects that accumulate over an epoch and compute their value once.

The config's `metrics` name functions `fn(output, target) -> batch mean`, averaged over the
epoch's samples by `utils.batches.MetricTracker`, or epoch-level metrics: objects with

    update(output, target)   add a batch (on the device: no sync)
    compute()                the value of everything added since reset(): a number or a 1-element tensor
    reset()                  forget it all
    state_dict()             what was added, as tensors that ADD UP over processes (counts, sums,
                             a confusion matrix): under torchrun they are summed over processes
                             before compute(), and they are saved in mid-epoch checkpoints
    load_state_dict(state)   put such a state back (its tensors may be on the CPU)

A torchmetrics `Metric` fits as it is: its state_dict() holds no states (unless made persistent,
which would count the other processes twice), and its compute() syncs over processes itself; its
partial epoch is not saved in a mid-epoch checkpoint.
"""

import copy

import torch

from utils import runtime
from utils.config_checks import is_epoch_metric, metric_name
from utils.errors import CheckpointError, ConfigError


class EpochMetrics:
    """Fresh copies of the epoch-level metrics among `metrics` (the config's prototypes stay
    untouched), updated with every batch and computed over all processes."""

    def __init__(self, metrics=()) -> None:
        self.metrics = {metric_name(m): copy.deepcopy(m) for m in metrics if is_epoch_metric(m)}
        self._device: torch.device | None = None
        self.reset()

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        if self.metrics and output.device != self._device:
            self._device = output.device
            for metric in self.metrics.values():  # a torchmetrics Metric keeps its states where the module is
                if isinstance(metric, torch.nn.Module):
                    metric.to(output.device)
        for metric in self.metrics.values():
            metric.update(output, target)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every metric's state summed over all processes (a collective under torchrun: call it on every process)."""
        return {name: _summed(metric.state_dict()) for name, metric in self.metrics.items()}

    def load_state_dict(self, states: dict, carry_on: bool = True, source="") -> None:
        """Restore global states saved by `state_dict()` into this process if it `carry_on` (the
        main one under torchrun, so that they are counted once); else start from nothing. A state
        that a metric refuses is one line naming checkpoint `source`."""
        self.reset()
        for name, state in states.items() if carry_on else ():
            if name in self.metrics:
                try:
                    self.metrics[name].load_state_dict(state)
                except (ValueError, TypeError, KeyError, RuntimeError) as exc:
                    where = f"checkpoint '{source}'" if source else "the checkpoint"
                    raise CheckpointError(f"{where}: 'train_metrics' state of {name} does not fit: {exc}") from None

    def result(self) -> dict[str, float]:
        """Every metric's value over all processes' batches (a collective under torchrun)."""
        values = {}
        for name, metric in self.metrics.items():
            local = {key: value.clone() for key, value in metric.state_dict().items()}
            total = _summed(local) if runtime.world_size() > 1 else {}
            if total:
                metric.load_state_dict(total)
            value = metric.compute()
            if total:  # back to this process's own share: the epoch may go on
                metric.reset()
                metric.load_state_dict(local)
            if isinstance(value, torch.Tensor) and value.numel() != 1:
                raise ConfigError(
                    f"config key 'metrics': {name}.compute() returned {value.numel()} values; a metric is one number "
                    "(a torchmetrics metric: average='macro', say)"
                )
            values[name] = float(value)
        return values


def _summed(state: dict) -> dict[str, torch.Tensor]:
    """Each entry of `state` summed over all processes, on the CPU. A collective that every process
    joins, also one whose state is still empty (it has had no batch since a resume, or no share of
    a small validation split): gathered, not all-reduced, so the processes need not hold the same keys."""
    states = runtime.all_gather({key: torch.as_tensor(value).cpu() for key, value in state.items()})
    total: dict[str, torch.Tensor] = {}
    for one in states:
        for key, value in one.items():
            total[key] = total[key] + value if key in total else value.clone()
    return total
