"""Experiment trackers: one small interface, the two that ship (metrics.csv and TensorBoard), and
`Trackers`, the one object through which the trainer starts, feeds and closes them.

A tracker receives the run's config, every `trainer.log_every` steps the step's loss, after each
epoch its losses and metrics, and finally how the run ended. To add one (Weights & Biases, say),
write a `Tracker` subclass in a file of this folder and name it in the config:

    "trackers": [{"type": "MyTracker", "args": {...}}]

Only the main process tracks. Every call to the trackers runs, in order, in a thread of their
own, so that no step waits for a tracker (a tracking server far away, say); what would compete
with the steps for the interpreter, such as importing TensorBoard, happens before training starts.
"""

import csv
import logging
import os
import queue
import threading
from pathlib import Path

from utils.errors import ConfigError, UserError, first_line

logger = logging.getLogger(__name__)
CLOSE_WAIT_S = 60  # after training: uploads (a checkpoint to MLflow) may take a while


class Tracker:
    """Override what your tracker records; every method does nothing by default."""

    writes = "tracking data"  # what a failed write of this tracker names

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        """The run begins in `run_dir`; `epoch` and `step` are those already done (a resumed run)."""

    def log_step(self, step: int, values: dict[str, float]) -> None:
        """Values of one optimizer step (its loss), every `trainer.log_every` steps."""

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        """The epoch's averaged losses and metrics (validation ones start with `val_`), and the
        learning rates: `lr`, and `lr/NAME` for each group of `optimizer.param_groups`."""

    def close(self, status: str) -> None:
        """The run ended: `status` is "finished", "stopped" (a signal; it resumes) or "failed".
        Checkpoints are on disk by now."""


class CSVTracker(Tracker):
    """metrics.csv in the run folder, one row per epoch; always on. A resumed run keeps the rows
    of the epochs its checkpoint holds and replaces the rest, so no epoch is listed twice."""

    writes = "metrics.csv"

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict] = []
        self.columns: list[str] = []
        if self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as file:
                reader = csv.DictReader(file)
                self.rows = [row for row in reader if row.get("epoch", "").isdigit() and int(row["epoch"]) <= epoch]
                self.columns = list(reader.fieldnames or [])
            self._write_all()

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        row = {"epoch": epoch, "step": step, **values}
        self.rows.append(row)
        if not set(row) <= set(self.columns):  # new columns: write the file afresh with them
            self.columns = list(dict.fromkeys([*self.columns, *row]))
            self._write_all()
            return
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, fieldnames=self.columns).writerow(row)

    def _write_all(self) -> None:
        """Write the whole file anew: through a temporary file, so that a kill leaves the old one."""
        temporary = self.path.with_name(".tmp-metrics.csv")
        with open(temporary, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(temporary, self.path)


class TensorBoardTracker(Tracker):
    """Event files in the run folder (`trainer.tensorboard: true`; `tensorboard --logdir saved/`):
    per-step losses under step/, epoch values under train/ and val/, at the global step."""

    writes = "TensorBoard events"

    def __init__(self) -> None:
        try:  # a slow import: here, when the trainer is built, not beside the training steps
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "config key 'trainer.tensorboard': TensorBoard is not installed; pip install it, or set false"
            ) from None
        self.summary_writer, self.writer, self.started = SummaryWriter, None, threading.Event()

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        try:  # purge_step drops the points an interrupted process wrote after its last checkpoint
            self.writer = self.summary_writer(str(run_dir), purge_step=step + 1)
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


class Trackers:
    """Every tracker of a run, called in order in a thread of their own. A tracker that fails (a
    full disk, a tracking server gone) is switched off with one warning, a bug in it with its
    traceback: the run trains on, and metrics.csv and train.log keep every epoch's values."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = list(trackers)
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._off: list[Tracker] = []

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def log_steps(self) -> bool:
        """Whether a tracker records steps: reading a step's loss costs a device sync."""
        return self.running and any(type(t).log_step is not Tracker.log_step for t in self.trackers)

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        """Start the trackers' thread, and every tracker in it. A daemon: a tracker that hangs (a
        server out of reach) never keeps the process from exiting."""
        self._thread = threading.Thread(target=self._work, name="trackers", daemon=True)
        self._thread.start()
        self._call("start", run_dir, config, epoch, step)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self._call("log_step", step, values)

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        self._call("log_epoch", epoch, step, values)

    def close(self, status: str) -> None:
        """End every tracker's run; wait CLOSE_WAIT_S at most (a tracking server may be out of reach)."""
        if self._thread is None:
            return
        self._call("close", status)
        self._calls.put(None)
        self._thread.join(CLOSE_WAIT_S)
        if self._thread.is_alive():
            logger.warning(
                "The trackers did not finish within %d s; their record of this run may be incomplete", CLOSE_WAIT_S
            )
        self._thread = None

    def _call(self, method: str, *args) -> None:
        if self._thread is not None:
            self._calls.put((method, args))

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            for tracker in [t for t in self.trackers if t not in self._off]:
                try:
                    getattr(tracker, call[0])(*call[1])
                except Exception as exc:
                    self._switch_off(tracker, exc)

    def _switch_off(self, tracker: Tracker, exc: Exception) -> None:
        self._off.append(tracker)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        kept = "train.log" if isinstance(tracker, CSVTracker) else "metrics.csv and train.log"
        logger.warning(
            "Could not write %s (%s): %s is switched off, and the rest of this run is missing from it; "
            "training goes on, and %s keep every epoch's values",
            tracker.writes, why, type(tracker).__name__, kept,
            exc_info=None if isinstance(exc, (OSError, UserError)) else exc,  # a bug: its traceback
        )  # fmt: skip
