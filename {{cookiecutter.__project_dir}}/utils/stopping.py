"""Every reason a run stops early, in one place: signals, a loss that is NaN or infinite, and a
failure on another process.

A signal only sets a flag; the trainer saves at the next step boundary and raises `Interrupted`:
exit 130 (SIGINT), 143 (SIGTERM), or 75 for SIGUSR1, the warning a batch scheduler sends before
the time limit (SLURM's `--signal=USR1@90`): 75 asks the batch script to requeue the job (see
slurm/train.sbatch). A bad loss raises `NonFiniteLoss` (exit 3): alone on the CPU before that step
is applied, elsewhere at the next check; either way no checkpoint gets weights from that step on.
Under torchrun every process reaches the same decision at the same step.
"""

import math
import os
import signal
import threading
import time

import torch

from utils import distributed
from utils.errors import UserError

# sysexits.h's EX_TEMPFAIL, "try again later": the batch script requeues the job on this code.
REQUEUE_EXIT_CODE = 75


class TrainingStopped(Exception):
    """Training ended early on purpose; `exit_code` is what train.py exits with."""

    exit_code = 1


class Interrupted(TrainingStopped):
    """A stop signal arrived and a checkpoint was saved. Exit code 130 (SIGINT), 143 (SIGTERM), or
    75 (SIGUSR1: requeue)."""

    def __init__(self, signum: int, checkpoint) -> None:
        requeue = signum == getattr(signal, "SIGUSR1", None)
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name}{' (time limit ahead: requeue)' if requeue else ''}; "
            f"resume with: python train.py -r {checkpoint}"
        )
        self.exit_code = REQUEUE_EXIT_CODE if requeue else 128 + signum


class FailedElsewhere(TrainingStopped):
    """Another process of a torchrun run failed and reported why; this one stops quietly."""

    def __init__(self, exit_code: int) -> None:
        super().__init__("")
        self.exit_code = exit_code


class NonFiniteLoss(TrainingStopped):
    """The loss became NaN or infinite; nothing from that step on was saved. Exit code 3."""

    exit_code = 3


class StopSignal:
    """While active, the first stop signal only sets `received`; the run saves and stops.

    Signals come in bursts: Ctrl-C reaches every process of a terminal, a batch scheduler may
    signal the job step and its whole process group, a user presses Ctrl-C twice. Every signal within `SAME_REQUEST_S`
    of the first is the same request, and so is the next one, so that the checkpoint gets written.
    Only a further one exits at once (checkpoints are atomic: even that leaves no broken file).
    """

    # SIGUSR1 does not exist on Windows; Ctrl-Break (SIGBREAK) exists only there.
    SIGNALS = tuple(
        getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGBREAK") if hasattr(signal, name)
    )
    SAME_REQUEST_S = 2.0

    def __init__(self) -> None:
        self.received: int | None = None
        self._received_at, self._repeats = 0.0, 0
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.received is None:
            self.received, self._received_at = signum, now
        elif now - self._received_at > self.SAME_REQUEST_S:
            self._repeats += 1
            if self._repeats > 1:
                os._exit(128 + signum)
            # os.write, not print: the handler may run in the middle of a print
            os.write(2, b"Stopping: saving a checkpoint first (signal once more to quit without saving)\n")

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():  # handlers only work there
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # After a signal or an error the process is on its way out: the rest of a burst, or
        # torchrun ending the other processes, must not kill it before it has said why.
        stopping = self.received is not None or exc_type is not None
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_IGN if stopping else handler)
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
        self.failure: Exception | None = None

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

    def fail(self, error: Exception) -> None:
        """Record a failure of this process alone (a checkpoint or log write: only the main process
        writes). Alone, raise it at once; under torchrun, every process raises at the next `agree`,
        so that none is left waiting for the others."""
        if not self.distributed:
            raise error
        self.failure = self.failure or error

    def stop_requested(self, step: int | None = None) -> bool:
        """True when a stop signal arrived: checked at every step alone; under torchrun at every
        `POLL_STEPS`-th step and at epoch ends (`step=None`), agreed by all processes."""
        received = self.signal.received is not None
        if not self.distributed:
            return received
        if step is not None and step % self.POLL_STEPS:
            return False
        return self.agree(received)

    def agree(self, stop: bool = False) -> bool:
        """True on every process when `stop` is true on one. A collective (a barrier, too): when a
        process recorded a failure, it raises it and all others raise `FailedElsewhere` with the
        same exit code, so one message is printed and every process ends."""
        failure = self.failure
        code = 0 if failure is None else getattr(failure, "exit_code", 2 if isinstance(failure, UserError) else 1)
        main_code = code if distributed.is_main() else 0
        flags = distributed.all_reduce_max(torch.tensor([float(stop), code, main_code], device=self._device))
        if flags[1] and failure is None:
            raise FailedElsewhere(int(flags[1]))
        if flags[1]:
            failure.only_here = not flags[2]  # the main process has nothing to say: this one says it
            raise failure
        return bool(flags[0])
