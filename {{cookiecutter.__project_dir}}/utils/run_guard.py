"""Reasons to end a run early: a stop signal (SIGINT/SIGTERM), or a loss that is NaN or infinite."""

import math

import torch

from utils import distributed
from utils.errors import NonFiniteLoss
from utils.stop_signal import StopSignal


class RunGuard:
    """Decides when a run must stop, in the same way on every process.

    Alone on the CPU, a bad loss is seen at once (reading a CPU number costs nothing) and the
    step is not applied. On a GPU, waiting for every loss would stall the GPU, so the first bad
    step is recorded on the device and read at the end of the epoch and before each save. Under
    torchrun, processes agree on stopping every `POLL_STEPS` steps: each agreement is a collective.
    """

    POLL_STEPS = 10

    def __init__(self, device: torch.device) -> None:
        self.signal = StopSignal()
        self.device = device
        self.distributed = distributed.world_size() > 1
        self._immediate = device.type == "cpu" and not self.distributed
        self._first_bad_step = torch.zeros((), dtype=torch.long, device=device)

    def check_loss(self, loss: torch.Tensor, step: int) -> None:
        if self._immediate:
            if not math.isfinite(loss.item()):
                self._first_bad_step.fill_(step)
                self.raise_if_loss_was_bad()
            return
        bad = ~torch.isfinite(loss.detach()) & (self._first_bad_step == 0)
        self._first_bad_step = torch.where(bad, torch.full_like(self._first_bad_step, step), self._first_bad_step)

    def raise_if_loss_was_bad(self) -> None:
        """Raise `NonFiniteLoss` naming the first bad step (on every process, under torchrun)."""
        step = int(distributed.all_reduce_max(self._first_bad_step.clone()))
        if step:
            raise NonFiniteLoss(
                f"loss became NaN or infinite at step {step}; no checkpoint holds weights from that step "
                "on - lower optimizer.args.lr, set trainer.clip_grad_norm, or check the data"
            )

    def stop_requested(self, step: int | None = None) -> bool:
        """True when a stop signal arrived: checked at every step alone, and under torchrun at
        every `POLL_STEPS`-th step and at epoch ends (`step=None`), agreed by all processes."""
        received = self.signal.received is not None
        if not self.distributed:
            return received
        if step is not None and step % self.POLL_STEPS:
            return False
        return distributed.any_process(received, self.device)
