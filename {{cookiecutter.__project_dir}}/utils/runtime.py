"""Where this process runs and when its run must stop: the device, torchrun's process group,
random states, stop signals, a loss that is NaN or infinite, a failure on another process, and
the exit code every entry script ends with.

Single-process runs never call into torch.distributed; the helpers below are then cheap no-ops.
A signal only sets a flag; the trainer saves at the next step boundary and raises `Interrupted`:
exit 130 (SIGINT), 143 (SIGTERM), or 75 for SIGUSR1, the warning a batch scheduler sends before
the time limit (SLURM's `--signal=USR1@90`): 75 asks the batch script to requeue the job (see
slurm/train.sbatch). A bad loss raises `NonFiniteLoss` (exit 3): alone on the CPU before that step
is applied, elsewhere at the next check; either way no checkpoint gets weights from that step on.
Under torchrun every process reaches the same decision at the same step.
"""

import gc
import math
import os
import random
import signal
import sys
import threading
import time

import numpy as np
import torch
import torch.distributed as dist

from utils.errors import ConfigError, UserError, quiet_thread_os_errors, report

# sysexits.h's EX_TEMPFAIL, "try again later": the batch script requeues the job on this code.
REQUEUE_EXIT_CODE = 75
QUIET_EXIT_WAIT_S = 10  # at most; see exit_code
# Seeds derived from a seed and a number (an epoch, a rank) multiply by a prime first, so that
# (seed, n) and (seed + 1, n - 1) give different streams.
SEED_PRIME = 1_000_003


# ---- the device and the process group ----------------------------------------------------------


def setup(device_name: str) -> torch.device:
    """This process's device. Under torchrun, also join the process group: each process drives
    the GPU of its LOCAL_RANK (NCCL), or all share the CPU (gloo) without CUDA or with `cpu`."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return single_device(device_name)
    if device_name not in ("auto", "cuda", "cpu"):
        raise ConfigError(f"--device {device_name!r}: under torchrun use auto, cuda or cpu (one GPU per process)")
    device = single_device(device_name)  # (auto: CUDA when available)
    if device.type == "cuda":
        local_rank = int(os.environ["LOCAL_RANK"])
        # checked by every process (not only those without a GPU), so that the main one says it
        if int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1)) > torch.cuda.device_count():
            raise ConfigError(
                f"torchrun started more processes per node than the {torch.cuda.device_count()} GPU(s) here; "
                "lower --nproc_per_node"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def single_device(name: str) -> torch.device:
    """`auto` picks CUDA when available; `cpu`, `cuda`, `cuda:N` and `mps` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.isdigit():  # pytorch-template's `-d 0` named GPUs by index
        raise ConfigError(f"--device {name!r}: name a GPU as cuda:{name}; for several GPUs use torchrun")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):  # meta, xla, ...: none trains here
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name!r}: MPS is not available on this machine; use --device cpu")
    return device


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def cleanup() -> None:
    """Leave the process group; objects holding its pending work (DDP) must be freed first."""
    if _active():
        gc.collect()
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if _active() else 1


def rank() -> int:
    if _active():
        return dist.get_rank()
    # Before the group is joined, torchrun's RANK tells which process this is (alone, it is 0).
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def is_main() -> bool:
    """Only the main process writes logs, TensorBoard files and checkpoints, and prints errors."""
    return rank() == 0


def all_reduce(tensor: torch.Tensor, op: str = "SUM") -> torch.Tensor:
    """Reduce `tensor` over all processes in place (op SUM or MAX); returns it."""
    if not _active():
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":  # NCCL reduces CUDA tensors only
        tensor.copy_(all_reduce(tensor.cuda(), op))
    else:
        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op))
    return tensor


def all_gather(value) -> list:
    """`value` (tensors, numbers, lists, dicts) of every process, in rank order."""
    if not _active():
        return [value]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process the main process's buffers (BatchNorm's running statistics, say)."""
    if world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


# ---- random states ----------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed torch, Python and numpy (numpy takes 32 bits)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def random_states(device: torch.device) -> dict:
    """This process's random states (torch's, the GPU's, Python's, numpy's) as plain data."""
    version, keys, gauss = random.getstate()
    name, mt, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "python": [version, list(keys), gauss],
        "numpy": [name, mt.tolist(), position, has_gauss, cached],
    }


def restore_random_states(rng: dict, device: torch.device, new_seed: int) -> None:
    """Give this process its saved random states (`rng` holds one per process); a process beyond
    the saved ones (more of them than before) starts streams of its own from `new_seed`."""
    states = {kind: [value] if isinstance(value, torch.Tensor) else value or [] for kind, value in rng.items()}
    here = rank()
    if here >= len(states["torch"]):
        seed_everything(new_seed * SEED_PRIME + here)
        return
    torch.set_rng_state(states["torch"][here])
    cuda = states.get("cuda", [])
    if device.type == "cuda" and here < len(cuda) and isinstance(cuda[here], torch.Tensor):
        torch.cuda.set_rng_state(cuda[here], device)
    if here < len(states.get("python", [])):  # (checkpoints of earlier versions lack these two)
        version, keys, gauss = states["python"][here]
        random.setstate((version, tuple(keys), gauss))
    if here < len(states.get("numpy", [])):
        name, keys, position, has_gauss, cached = states["numpy"][here]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


# ---- why a run stops --------------------------------------------------------------------------


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
    signal the job step and its whole process group, a user presses Ctrl-C twice. Every signal
    within `SAME_REQUEST_S` of the first is the same request, and so is the next one, so that the
    checkpoint gets written. Only a further one exits at once (checkpoints are atomic: even that
    leaves no broken file).
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


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave stop signals to the main process, which saves and ends the run: a
    batch scheduler signals the whole process group, and a terminal's Ctrl-C reaches every process."""
    for signum in StopSignal.SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


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
        self.distributed = world_size() > 1
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
        step = int(all_reduce(self._first_bad_step.clone(), "MAX"))
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
        main_code = code if is_main() else 0
        flags = all_reduce(torch.tensor([float(stop), code, main_code], device=self._device), "MAX")
        if flags[1] and failure is None:
            raise FailedElsewhere(int(flags[1]))
        if flags[1]:
            failure.only_here = not flags[2]  # the main process has nothing to say: this one says it
            raise failure
        return bool(flags[0])


def exit_code(body, args, interrupted: str, stopped_note: str = "") -> int:
    """Run an entry script's `body(args)` and turn every way it can end into its exit code: 0,
    2 and one line for a user error, 130 for Ctrl-C before training (`interrupted` says what
    happened), the code of a deliberate stop (`stopped_note` follows its message). Under
    torchrun the main process alone speaks, unless the mistake was this process's alone."""
    hook, threading.excepthook = threading.excepthook, quiet_thread_os_errors
    try:
        return body(args)
    except UserError as exc:
        if is_main() or getattr(exc, "only_here", False):
            return report(exc, "" if is_main() else f"[rank {rank()}] ")
        # The main process finds the same mistake and says it; torchrun ends every process as
        # soon as one exits, so this one leaves it time to (and is ended by torchrun meanwhile).
        time.sleep(QUIET_EXIT_WAIT_S)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except TrainingStopped as exc:
        if is_main() and (str(exc) or stopped_note):  # (empty when another process failed and said why)
            message = f"error: {exc}" if exc.exit_code == 3 else str(exc)
            print(f"{message}{stopped_note}", file=sys.stderr)
        return exc.exit_code
    finally:
        threading.excepthook = hook
        cleanup()  # only once the body's objects, the DDP model among them, are gone
