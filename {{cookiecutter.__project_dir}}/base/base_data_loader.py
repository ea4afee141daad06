"""Base class for all data loaders: a torch DataLoader driven by a batch sampler that resumes.

The batch order depends only on the seed and the epoch (like `DistributedSampler.set_epoch`), and
the sampler can start an epoch part-way, so a resumed run sees exactly the batches the interrupted
one would have seen.
"""

import atexit
import math

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from utils.batches import SeededSamples, end_workers_at_exit
from utils.errors import ConfigError
from utils.runtime import ignore_stop_signals


class ResumableBatchSampler(Sampler[list[int]]):
    """Batches of `indices`, shuffled by `(seed, epoch)`, starting `skip_samples` into the epoch.

    Under torchrun, `shard` gives each process its part of every global batch of
    `batch_size * world_size` samples; positions count samples of the whole epoch, so they stay
    valid when the number of processes changes.
    """

    def __init__(self, indices: torch.Tensor, batch_size: int, shuffle: bool, seed: int) -> None:
        self.indices, self.batch_size, self.shuffle, self.seed = indices, batch_size, shuffle, seed
        self.epoch, self.skip_samples = 1, 0
        self.rank, self.world_size, self.pad = 0, 1, True
        self.with_seeds = False  # yield (index, seed) pairs, for `SeededSamples`

    def set_epoch(self, epoch: int, skip_samples: int = 0) -> None:
        """Select the order of `epoch`, leaving out its first `skip_samples` samples (resume)."""
        self.epoch, self.skip_samples = epoch, skip_samples

    def shard(self, rank: int, world_size: int, pad: bool = True) -> None:
        """Yield only process `rank`'s share; `pad` repeats a few samples so that every process
        gets the same number of batches, as DDP training requires."""
        self.rank, self.world_size, self.pad = rank, world_size, pad

    def _order(self) -> torch.Tensor:
        order = self.indices
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = order[torch.randperm(len(order), generator=generator)]
        return _padded(order, self.world_size) if self.pad else order

    def position(self, batches: int) -> int:
        """Samples of the epoch's order consumed, over all processes, after `batches` batches."""
        total = len(self._order())
        start = min(self.skip_samples, total)
        return start + min(batches * self.batch_size * self.world_size, total - start)

    def batches(self) -> list[torch.Tensor]:
        """This process's batches of the current epoch, as index tensors."""
        return self._share(self._order())

    def _share(self, order: torch.Tensor) -> list[torch.Tensor]:
        """This process's batches of `order` (or of anything aligned with it), after the skip."""
        rest = order[self.skip_samples :]
        if self.world_size > 1 and self.pad:  # after a change of process count it may not divide evenly
            rest = _padded(rest, self.world_size)
        chunks = rest.split(self.batch_size * self.world_size)  # (an empty tensor still gives one chunk)
        shares = (chunk.tensor_split(self.world_size)[self.rank] for chunk in chunks)
        return [share for share in shares if len(share)]

    def __iter__(self):
        if not self.with_seeds:
            return (batch.tolist() for batch in self.batches())
        # A sample's seed follows from its place in the epoch's order, over all processes: epoch
        # seeds 1_000_003 apart (a prime) give distinct seeds to epochs of up to a million samples.
        first, order = epoch_seed(self.seed, self.epoch) * 1_000_003, self._order()
        places = self._share(torch.arange(len(order)))
        return (
            [(i, (first + place) % 2**63) for i, place in zip(batch.tolist(), where.tolist(), strict=True)]
            for batch, where in zip(self._share(order), places, strict=True)
        )

    def __len__(self) -> int:
        rest = max(len(self._order()) - self.skip_samples, 0)
        return math.ceil(rest / (self.batch_size * self.world_size))


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's batch order and worker seeds: nothing else draws from it. Seeds
    100_003 apart (a prime) keep every (seed, epoch) of runs under 100,003 epochs distinct."""
    return (seed * 100_003 + epoch) % 2**63


def _padded(order: torch.Tensor, multiple: int) -> torch.Tensor:
    """`order` with its first samples repeated at the end until its length divides by `multiple`."""
    missing = -len(order) % multiple
    if missing == 0 or len(order) == 0:
        return order
    return torch.cat([order, order.repeat(missing // len(order) + 1)[:missing]])


class BaseDataLoader:
    """Batches of `dataset`, in an order fixed by the seed and the epoch, less a validation split.

    The arguments are pytorch-template's, in its order. `validation_split` holds out a fraction
    (0.1) or a number of samples (500), chosen by the seed alone; `split_validation()` serves them.
    `seed` defaults to the seed train.py set from the config. A `TensorDataset` is batched by
    slicing its tensors (no per-sample Python work); any other dataset goes through
    `torch.utils.data.DataLoader` with the same batches, `num_workers` and `collate_fn`.
    `valid_dataset` holds the same samples seen without training augmentation. The trainer
    drives `batch_sampler`: `set_epoch`, and `shard` under torchrun. A subclass with a static
    method `read_input(path)`, one file as one test sample, lets predict.py read files for it.
    """

    # Class names, where the data defines them: train.py then checks the model's `num_classes`.
    classes: list[str] | None = None

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = True,
        validation_split: float | int = 0.0,
        num_workers: int = 0,
        collate_fn=None,
        *,
        seed: int | None = None,
        indices: torch.Tensor | None = None,
        valid_dataset: Dataset | None = None,
    ) -> None:
        self.dataset, self.batch_size, self.num_workers, self.collate_fn = dataset, batch_size, num_workers, collate_fn
        self.valid_dataset = dataset if valid_dataset is None else valid_dataset
        self.seed = torch.initial_seed() if seed is None else seed
        indices = torch.arange(len(dataset)) if indices is None else indices
        order = indices[torch.randperm(len(indices), generator=torch.Generator().manual_seed(self.seed))]
        n_valid = _validation_size(validation_split, len(indices))
        self.valid_indices = order[:n_valid].sort().values
        self.batch_sampler = ResumableBatchSampler(order[n_valid:].sort().values, batch_size, shuffle, self.seed)
        self._loader: DataLoader | None = None

    @property
    def n_samples(self) -> int:
        """Training samples per epoch (the validation split left out)."""
        return len(self.batch_sampler.indices)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        if isinstance(self.dataset, TensorDataset) and self.num_workers == 0 and self.collate_fn is None:
            for batch in self.batch_sampler.batches():
                yield tuple(tensor[batch] for tensor in self.dataset.tensors)
            return
        if self._loader is None:  # created once, so that worker processes persist across epochs
            workers = self.num_workers > 0
            # In this process augmentations draw from the global random state, which checkpoints
            # keep; in workers each sample gets its own seed.
            self.batch_sampler.with_seeds = workers
            if workers:
                atexit.unregister(end_workers_at_exit)  # once, and after multiprocessing's hook
                atexit.register(end_workers_at_exit)
            self._loader = DataLoader(
                SeededSamples(self.dataset) if workers else self.dataset,
                batch_sampler=self.batch_sampler,
                num_workers=self.num_workers,
                collate_fn=self.collate_fn,
                pin_memory=torch.cuda.is_available(),
                worker_init_fn=ignore_stop_signals if workers else None,
                persistent_workers=workers,
                generator=torch.Generator(),  # its draws would otherwise come from the global random state
            )
        yield from self._loader

    def split_validation(self) -> "BaseDataLoader | None":
        """The held-out samples, in a fixed order; None without a validation split."""
        if len(self.valid_indices) == 0:
            return None
        return self._subset(self.valid_dataset, self.valid_indices)

    def all_samples(self) -> "BaseDataLoader":
        """Every sample of the dataset in a fixed order, whatever the validation split: test.py
        evaluates this, so that no test sample is ever left out."""
        return self._subset(self.dataset, None)

    def _subset(self, dataset: Dataset, indices: torch.Tensor | None) -> "BaseDataLoader":
        loader = BaseDataLoader(
            dataset, self.batch_size, False, 0, self.num_workers, self.collate_fn, seed=self.seed, indices=indices
        )
        loader.classes = self.classes
        return loader


def _validation_size(split: float | int, total: int) -> int:
    """How many of `total` samples `validation_split` holds out: a fraction, or a count."""
    count = round(split) if split >= 1 else round(total * split)  # 500 (or 500.0): a count
    if split and not 0 < count < total:
        raise ConfigError(
            f"config key 'data_loader.args.validation_split': {split!r} holds out {count} of {total} samples; "
            "use a fraction in (0, 1) or a count that leaves samples for both training and validation"
        )
    return count
