"""Experiment trackers: one small interface, and a thread that keeps them off the training loop.

A tracker receives the run's config, every `trainer.log_every` steps the step's loss, after each
epoch its losses and metrics, and finally how the run ended. To add one (Weights & Biases, say),
write a `Tracker` subclass in a file of this folder and name it in the config:

    "trackers": [{"type": "MyTracker", "args": {...}}]

Only the main process tracks. The trackers run one after another in a thread of their own, which
begins after the first training step: a slow start (TensorBoard's import, a tracking server far
away) never delays it, and no step waits for a tracker.
"""

import logging
import queue
import threading
from pathlib import Path

from utils.errors import WriteError

logger = logging.getLogger(__name__)
CLOSE_WAIT_S = 30


class Tracker:
    """Override what your tracker records; every method does nothing by default."""

    writes = "tracking data"  # what a failed write of this tracker names

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        """The run begins in `run_dir`; `epoch` and `step` are those already done (a resumed run)."""

    def log_step(self, step: int, values: dict[str, float]) -> None:
        """Values of one optimizer step (its loss), every `trainer.log_every` steps."""

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        """The epoch's averaged losses and metrics (validation ones start with `val_`), and lr."""

    def close(self, status: str) -> None:
        """The run ended: `status` is "finished", "stopped" (a signal; it resumes) or "failed".
        Checkpoints are on disk by now."""


class Trackers:
    """Calls every tracker in a background thread, in order. A tracker's error stops the run at
    the next `check()`: an OSError (full disk, folder removed) as one line, anything else (a bug
    in a tracker) with its traceback."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = list(trackers)
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._failed: Tracker | None = None
        self._run_dir: Path | None = None
        self._launched = False

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def log_steps(self) -> bool:
        """Whether a tracker records steps: reading a step's loss costs a device sync."""
        return self.running and any(type(t).log_step is not Tracker.log_step for t in self.trackers)

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        """Queue the trackers' start; their thread begins at `launch()`."""
        self._run_dir, self._launched = run_dir, False
        self._thread = threading.Thread(target=self._work, name="trackers", daemon=True)
        self._call("start", run_dir, config, epoch, step)

    def launch(self) -> None:
        """Begin the thread, if it has not begun: the trainer calls this after each step (the
        first one's time is what imports and connections in the thread would otherwise delay)."""
        if self._thread is not None and not self._launched:
            self._launched = True
            self._thread.start()

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self._call("log_step", step, values)

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        self._call("log_epoch", epoch, step, values)

    def close(self, status: str) -> None:
        """End every tracker's run and wait for the thread; raise what failed in it. A run that
        stopped or failed waits CLOSE_WAIT_S at most (a tracking server may be out of reach)."""
        if self._thread is None:
            return
        self._call("close", status)
        self._calls.put(None)
        self.launch()
        self._thread.join(None if status == "finished" else CLOSE_WAIT_S)
        if self._thread.is_alive():
            logger.warning(
                "The trackers did not finish within %d s; their record of this run may be incomplete", CLOSE_WAIT_S
            )
        self._thread = None
        self.check()

    def check(self) -> None:
        error, self._error = self._error, None
        if isinstance(error, OSError):
            raise WriteError(
                f"could not write {self._failed.writes} in '{self._run_dir}': {error.strerror or error}; "
                "free space or fix permissions, then resume with -r auto"
            ) from None
        if error is not None:
            raise error

    def _call(self, method: str, *args) -> None:
        if self._thread is not None:
            self._calls.put((method, args))

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            method, args = call
            if method == "close":  # every tracker ends its run, whatever failed before
                for tracker in self.trackers:
                    self._run(tracker, "close", "failed" if self._error is not None else args[0])
            elif self._error is None:  # after a failure the run is stopping: log nothing more
                for tracker in self.trackers:
                    self._run(tracker, method, *args)

    def _run(self, tracker: Tracker, method: str, *args) -> None:
        try:
            getattr(tracker, method)(*args)
        except BaseException as exc:  # raised in the main thread by check()
            if self._error is None:
                self._failed = tracker  # first: check() may read _error at any moment
                self._error = exc
