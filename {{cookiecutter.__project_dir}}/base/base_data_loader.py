"""Base class for all data loaders: reproducible batch order and a fixed validation split."""

import math

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


class BaseDataLoader:
    """Yields `(input, target)` batches of `dataset` in an order fixed by `(seed, epoch)`.

    Because the order depends only on the seed and the epoch number, a resumed run sees exactly
    the batches the interrupted one would have seen. A `TensorDataset` is batched by indexing
    its tensors directly (no per-sample Python work); any other dataset goes through
    `torch.utils.data.DataLoader` with the same batches, so `num_workers` applies to it.

    Under torchrun, `shard` gives each process its part of every global batch of
    `batch_size * world_size` samples, like `DistributedSampler` with `set_epoch`: the epoch's
    data position is then a sample count that stays valid if the number of processes changes.

    `valid_dataset` holds the same samples as `dataset` seen without training augmentation; the
    validation split reads from it.
    """

    # Class names, where the data defines them (one folder per class); train.py then checks that
    # the model has as many outputs.
    classes: list[str] | None = None

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = True,
        validation_split: float = 0.0,
        num_workers: int = 0,
        seed: int = 0,
        indices: torch.Tensor | None = None,
        valid_dataset: Dataset | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        self.dataset = dataset
        self.valid_dataset = dataset if valid_dataset is None else valid_dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.num_workers = num_workers
        self.seed = seed
        self.epoch = 1
        self.skip_samples = 0
        self.rank, self.world_size, self.pad = 0, 1, True
        self._loader = None  # torch DataLoader for datasets that are not in-memory tensors
        self._current: list[torch.Tensor] = []
        indices = torch.arange(len(dataset)) if indices is None else indices
        self.indices, self.valid_indices = self._split(indices, validation_split)

    def _split(self, indices: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Hold out `fraction` of the samples, chosen by the seed alone (the same on resume)."""
        n_valid = round(len(indices) * fraction)
        if fraction > 0 and not 0 < n_valid < len(indices):
            raise ValueError(f"validation_split {fraction} leaves no samples for training or validation")
        order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(self.seed))
        shuffled = indices[order]
        return shuffled[n_valid:].sort().values, shuffled[:n_valid].sort().values

    def split_validation(self) -> "BaseDataLoader | None":
        """A loader over the held-out samples, in a fixed order; None without a validation split."""
        if len(self.valid_indices) == 0:
            return None
        return BaseDataLoader(
            self.valid_dataset, self.batch_size, False, 0.0, self.num_workers, self.seed, self.valid_indices
        )

    def set_epoch(self, epoch: int, skip_samples: int = 0) -> None:
        """Select the batch order of `epoch`, leaving out its first `skip_samples` (resume)."""
        self.epoch = epoch
        self.skip_samples = skip_samples

    def shard(self, rank: int, world_size: int, pad: bool = True) -> None:
        """Yield only process `rank`'s share; `pad` repeats a few samples so that every process
        gets the same number of batches (as DDP training requires)."""
        self.rank, self.world_size, self.pad = rank, world_size, pad

    @property
    def num_samples(self) -> int:
        return len(self.indices)

    def __len__(self) -> int:
        return math.ceil(max(len(self.indices) - self.skip_samples, 0) / (self.batch_size * self.world_size))

    def _batches(self) -> list[torch.Tensor]:
        order = self.indices
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=torch.Generator().manual_seed(self._epoch_seed()))]
        if self.pad and len(order) % self.world_size:  # before skipping, so resumed epochs match
            order = torch.cat([order, order[: self.world_size - len(order) % self.world_size]])
        order = order[self.skip_samples :]
        if self.world_size == 1:
            return list(order.split(self.batch_size))
        chunks = order.split(self.batch_size * self.world_size)
        shares = (chunk.tensor_split(self.world_size)[self.rank] for chunk in chunks)
        return [share for share in shares if len(share)]

    def _epoch_seed(self) -> int:
        """Seeds this epoch's order (and worker seeds): nothing else draws from it."""
        return self.seed * 100_003 + self.epoch

    def __iter__(self):
        batches = self._batches()
        if isinstance(self.dataset, TensorDataset):
            for batch in batches:
                yield tuple(tensor[batch] for tensor in self.dataset.tensors)
            return
        if self._loader is None:  # created once, so that worker processes persist across epochs
            self._generator = torch.Generator()
            self._loader = DataLoader(
                self.dataset,
                batch_sampler=_CurrentBatches(self),
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                pin_memory=torch.cuda.is_available(),
                generator=self._generator,
            )
        # Worker seeds come from this generator, not the global RNG: a resumed run stays exact.
        self._generator.manual_seed(self._epoch_seed())
        self._current = batches
        yield from self._loader


class _CurrentBatches:
    """The batch sampler of the wrapped DataLoader: the owning loader's batches for this epoch."""

    def __init__(self, owner: BaseDataLoader) -> None:
        self.owner = owner

    def __iter__(self):
        return (batch.tolist() for batch in self.owner._current)

    def __len__(self) -> int:
        return len(self.owner._current)
