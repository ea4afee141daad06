"""What the training loop does with batches and what steps return: moving batches to the device,
counting their samples, grouping them for accumulation, progress bars, running averages that stay
on the device until an epoch ends, and the per-sample seeds of DataLoader workers."""

import contextlib
import itertools
import multiprocessing
import random
import signal
import sys

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from utils import runtime
from utils.config_checks import is_epoch_metric
from utils.metrics import EpochMetrics


class MetricTracker:
    """Sample-weighted running averages, summed on the device and read back once, in `result()`,
    and the epoch-level metrics among `metrics` (utils/metrics.py), which compute once.

    Reading a value at every step would stall a GPU. Under torchrun, sums and counts are added up
    over all processes first, so every process reports the same global averages.
    """

    def __init__(self, metrics=()) -> None:
        self.batch_means = [metric for metric in metrics if not is_epoch_metric(metric)]
        self.epoch_metrics = EpochMetrics(metrics)
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, float] = {}
        self.epoch_metrics.reset()

    def update_metrics(self, output: torch.Tensor, target: torch.Tensor, n: int) -> None:
        """Add a batch of `n` samples to every metric."""
        for fn in self.batch_means:
            self.update(fn.__name__, fn(output, target), n)
        self.epoch_metrics.update(output, target)

    def update(self, key: str, value: torch.Tensor | float, n: int = 1) -> None:
        """Add a batch mean `value` computed over `n` samples."""
        total = self._sums.get(key, 0.0)
        if isinstance(total, torch.Tensor):
            total.add_(value.detach() if isinstance(value, torch.Tensor) else value, alpha=n)
        elif isinstance(value, torch.Tensor):  # a new tensor, safe to update in place from now on
            self._sums[key] = value.detach().float() * n + total
        else:
            self._sums[key] = total + float(value) * n
        self._counts[key] = self._counts.get(key, 0.0) + n

    def _totals(self) -> dict[str, tuple[float, float]]:
        """Sum and count of every key, added up over all processes (a collective under torchrun)."""
        sums = list(self._sums.values())
        device = next((s.device for s in sums if isinstance(s, torch.Tensor)), torch.device("cpu"))
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        values = [torch.as_tensor(s, dtype=dtype, device=device) for s in [*sums, *self._counts.values()]]
        totals = runtime.all_reduce(torch.stack(values)).tolist() if values else []
        return {key: (totals[i], totals[len(sums) + i]) for i, key in enumerate(self._sums)}

    def state_dict(self) -> dict:
        """Global sums and counts so far, and the epoch-level metrics' global states, for a
        mid-epoch checkpoint (call on every process)."""
        totals = self._totals()
        sums, counts = {k: s for k, (s, _) in totals.items()}, {k: c for k, (_, c) in totals.items()}
        return {"sums": sums, "counts": counts, "states": self.epoch_metrics.state_dict()}

    def load_state_dict(self, state: dict, source="") -> None:
        """Continue from `state_dict()`'s global sums (of checkpoint `source`): under torchrun, the
        main process carries them on and the others start from zero, so that they are counted once."""
        main = runtime.is_main()
        self._sums = {key: value if main else 0.0 for key, value in state["sums"].items()}
        self._counts = {key: value if main else 0.0 for key, value in state["counts"].items()}
        self.epoch_metrics.load_state_dict(state.get("states", {}), main, source)  # (earlier versions: none)

    def result(self) -> dict[str, float]:
        means = {key: total / count for key, (total, count) in self._totals().items() if count > 0}
        return {**means, **self.epoch_metrics.result()}


def as_step_result(value) -> dict:
    """A step's return value as a dict with "loss"."""
    if isinstance(value, torch.Tensor):
        return {"loss": value}
    if isinstance(value, dict) and isinstance(value.get("loss"), torch.Tensor):
        return value
    raise TypeError(f"a training or validation step must return the loss, or a dict with 'loss'; got {value!r:.80}")


def to_device(batch, device: torch.device):
    """`batch` with every tensor in it (in tuples, named tuples, lists and dicts) moved to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        items = [to_device(item, device) for item in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)
    if isinstance(batch, dict):
        return {key: to_device(item, device) for key, item in batch.items()}
    return batch


def batch_size(batch) -> int:
    """The number of samples in `batch`: the length of the first tensor in it."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    for item in batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else ():
        with contextlib.suppress(TypeError):
            return batch_size(item)
    raise TypeError("cannot tell how many samples a batch holds: it contains no tensor")


def accumulation_groups(batches, size: int):
    """Tuples of `size` consecutive batches (the last may be shorter): one optimizer step each."""
    iterator = iter(batches)
    while group := tuple(itertools.islice(iterator, size)):
        yield group


def progress(loader, desc: str, limit: int | None = None):
    """Iterate `loader` (at most `limit` batches), with a progress bar when stderr is a terminal
    (the console log handler, logger/logger.py, writes its lines around the bar)."""
    batches = loader if limit is None else itertools.islice(loader, limit)
    if not sys.stderr.isatty() or not runtime.is_main():
        return batches
    return tqdm(batches, total=len(loader) if limit is None else min(limit, len(loader)), desc=desc, leave=False)


class SeededSamples(Dataset):
    """`dataset` as worker processes read it: given (index, seed), a sample's random augmentation
    is drawn from its own seed, the same whichever worker loads it, before and after a resume."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        # A worker's random state belongs to the DataLoader, which seeds it too: reseeding is safe.
        torch.default_generator.manual_seed(seed)  # the CPU's: torch.manual_seed costs 100x more
        random.seed(seed)
        np.random.seed(seed % 2**32)
        return self.dataset[index]


def end_workers_at_exit() -> None:
    """Workers that ignore SIGTERM would outlive the process: at exit, multiprocessing ends its
    daemon children with SIGTERM and waits for them. Kill them first (a worker holds no state
    worth saving). Register it after multiprocessing's own exit hook, so that it runs before it."""
    workers = [child for child in multiprocessing.active_children() if child.daemon]
    if workers and hasattr(signal, "SIGCHLD"):
        # A DataLoader still alive (the traceback of an error holds it) watches SIGCHLD and would
        # report these deaths as a second, false error: "worker ... is killed by signal".
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in workers:
        child.kill()
