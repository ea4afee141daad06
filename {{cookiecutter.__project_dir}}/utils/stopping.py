"""Every reason a run stops early, in one place: SIGINT/SIGTERM, and a loss that is NaN or infinite.

A signal only sets a flag; the trainer saves at the next step boundary and raises `Interrupted`
(exit 130/143). A bad loss raises `NonFiniteLoss` (exit 3): alone on the CPU before that step is
applied, elsewhere at the next check; either way no checkpoint gets weights from that step on.
Under torchrun every process reaches the same decision at the same step.
"""

import math
import os
import signal
import threading
import time

import torch

from utils import distributed


class TrainingStopped(Exception):
    """Training ended early on purpose; `exit_code` is what train.py exits with."""

    exit_code = 1


class Interrupted(TrainingStopped):
    """SIGINT or SIGTERM arrived and a checkpoint was saved. Exit code 128 + signal (130, 143)."""

    def __init__(self, signum: int, checkpoint) -> None:
        super().__init__(f"stopped by signal {signum}; resume with: python train.py -r {checkpoint}")
        self.exit_code = 128 + signum


class NonFiniteLoss(TrainingStopped):
    """The loss became NaN or infinite; nothing from that step on was saved. Exit code 3."""

    exit_code = 3


class StopSignal:
    """While active, the first SIGINT/SIGTERM only sets `received`. A later one exits at once
    (checkpoints are atomic, so even that leaves no broken file), unless it comes within
    `SAME_REQUEST_S`: Ctrl-C reaches every process of a terminal, and torchrun forwards its own."""

    SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)
    SAME_REQUEST_S = 2.0

    def __init__(self) -> None:
        self.received: int | None = None
        self._received_at = 0.0
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.received is None:
            self.received, self._received_at = signum, now
        elif now - self._received_at > self.SAME_REQUEST_S:
            os._exit(128 + signum)

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():  # handlers only work there
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class RunGuard:
    """Decides when a run must stop, the same way on every process.

    Alone on the CPU a bad loss is seen at once (reading a CPU number costs nothing). On a GPU,
    reading every loss would stall it, so the first bad step is recorded on the device and read
    at the end of the epoch and before each save. Under torchrun, processes agree on stopping
    every `POLL_STEPS` steps, since each agreement is a collective.
    """

    POLL_STEPS = 10

    def __init__(self, device: torch.device) -> None:
        self.signal = StopSignal()
        self.distributed = distributed.world_size() > 1
        self._device = device
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
        """True when a stop signal arrived: checked at every step alone; under torchrun at every
        `POLL_STEPS`-th step and at epoch ends (`step=None`), agreed by all processes."""
        received = self.signal.received is not None
        if not self.distributed:
            return received
        if step is not None and step % self.POLL_STEPS:
            return False
        return distributed.any_process(received, self._device)
