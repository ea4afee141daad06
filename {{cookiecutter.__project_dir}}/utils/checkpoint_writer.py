"""Checkpoints written on a background thread, so that training does not wait for the disk."""

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from utils.checkpoint import prune_checkpoints, save_checkpoint, serialize
from utils.errors import CheckpointError, NonFiniteLoss

logger = logging.getLogger(__name__)


def _copy_tensors(value):
    """A copy of `value` whose tensors are CPU copies: training goes on changing the originals."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone() if value.device.type == "cpu" else value.detach().cpu()
    if isinstance(value, dict):
        return {key: _copy_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_tensors(item) for item in value)
    return value


class CheckpointWriter:
    """Saves snapshots in order, one at a time, off the training thread.

    Each write is atomic (see `save_checkpoint`) and is followed by pruning to `keep_last`, so
    older checkpoints go only once the new one is on disk. Weights holding NaN or infinity are
    never written. A failed write is raised by the next `save` or by `wait`, which must run
    before the process exits. The write overlaps with training until the next save.
    """

    def __init__(self, keep_last: int) -> None:
        self.keep_last = keep_last
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending: Future | None = None

    def save(self, state: dict, paths: list[Path]) -> None:
        """Queue one snapshot of `state` to be written to each of `paths`.

        Waits for the previous write first, so at most one snapshot is held in memory.
        """
        self.wait()
        self._pending = self._executor.submit(self._write, _copy_tensors(state), paths)

    def _write(self, state: dict, paths: list[Path]) -> None:
        weights = [t for t in state["state_dict"].values() if t.is_floating_point()]
        if not all(bool(t.isfinite().all()) for t in weights):  # e.g. an inf gradient with a finite loss
            raise NonFiniteLoss(f"the weights hold NaN or infinite values; {paths[0].name} was not saved")
        data = serialize(state)  # once, however many files get it
        for path in paths:
            try:
                save_checkpoint(data, path)
            except OSError as exc:
                raise CheckpointError(
                    f"could not write checkpoint '{path}': {exc.strerror or exc}; free space or fix permissions, "
                    "then resume with -r auto"
                ) from None
            prune_checkpoints(path.parent, self.keep_last)
            logger.info("Saved %s", path)

    def wait(self) -> None:
        """Block until the queued checkpoint is on disk; raise its failure, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
