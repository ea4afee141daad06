"""TensorBoard event files in the run folder (`trainer.tensorboard: true`):
`tensorboard --logdir saved/`."""

import threading
from pathlib import Path

from logger.tracker import Tracker


class TensorBoardTracker(Tracker):
    """Per-step losses under step/, epoch values under train/ and val/, at the global step."""

    writes = "TensorBoard events"

    def __init__(self) -> None:
        self.writer = None
        self.started = threading.Event()

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # slow to import: in the trackers' thread

            # purge_step drops the points an interrupted process wrote after its last checkpoint
            self.writer = SummaryWriter(str(run_dir), purge_step=step + 1)
        finally:
            self.started.set()  # (on failure the writer stays None)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"step/{key}", value, step)

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}", value, step)

    def close(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
