"""TensorBoard scalars; the trainer imports this file only when `trainer.tensorboard` is true."""

from pathlib import Path

from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter


class TensorboardWriter:
    """Writes one point per epoch for each logged value: `tensorboard --logdir saved/`.

    `first_step` drops points a previous, interrupted process wrote past its last checkpoint,
    so a resumed run's curves continue without duplicates.
    """

    def __init__(self, log_dir: Path, first_step: int = 1) -> None:
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=first_step)

    def add_scalars(self, values: dict[str, float], step: int) -> None:
        # One event holding every value costs a fraction of one add_scalar call per value.
        points = [
            Summary.Value(tag=f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}", simple_value=float(value))
            for key, value in values.items()
        ]
        self.writer.file_writer.add_summary(Summary(value=points), step)

    def close(self) -> None:
        self.writer.close()
