"""The training loop and every guarantee it keeps; a subclass decides what one step computes.

A trainer overrides `training_step(batch)`, and `validation_step(batch)` if validation differs
(see trainer/trainer.py). All else happens here, so that it holds for every trainer: mixed
precision, accumulation, DDP, clipping, the gradient scaler, the NaN guard, stop signals, exact
resume, checkpoints, metrics and the trackers (metrics.csv, TensorBoard, those of the config).
"""

import contextlib
import logging
import math
import warnings
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from logger.run_record import Curves, EnvironmentRecord
from logger.trackers import CSVTracker, TensorBoardTracker, Trackers
from utils import runtime
from utils.batches import MetricTracker, accumulation_groups, as_step_result, batch_size, progress, to_device
from utils.checkpoint import CheckpointWriter, check_resumable, checkpoint_name, load_model_state, sweep_temp_files
from utils.errors import ConfigError, UserError
from utils.param_groups import changed_settings, learning_rates
from utils.runtime import Interrupted, RunGuard, TrainingStopped

logger = logging.getLogger(__name__)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NO_CONTEXT = contextlib.nullcontext()  # reusable: it holds no state


class BaseTrainer:
    """Trains `model` on `data_loader` for the configured epochs, validating after each one.

    `self.model` is what a step calls: the model, wrapped for DDP and compiled when configured.
    `self.raw_model` is the plain model: its weights are saved, and its attributes are reached
    through it (never call it in a step: under DDP its gradients would not be synced).
    `self.writer` is TensorBoard's `SummaryWriter` while training (None when TensorBoard is
    off, and on all processes but the main one): add images or histograms to it.
    `state_dict()` is everything a checkpoint holds; `load_state_dict()` restores it.
    `self.epoch_end_callbacks` are called as `callback(epoch, log)` on every process after each
    epoch; one that returns True ends the run there, saved as an early stop (sweep.py's pruner).
    """

    # Further scalars your steps return (besides loss and metrics), for `trainer.monitor` to name.
    extra_metrics: tuple[str, ...] = ()

    def __init__(self, model, criterion, metric_ftns, optimizer, config: dict, device: torch.device,
                 data_loader, valid_data_loader=None, lr_scheduler=None) -> None:  # fmt: skip
        self.raw_model, self.criterion, self.metric_ftns = model, criterion, metric_ftns
        self.optimizer, self.lr_scheduler, self.config, self.device = optimizer, lr_scheduler, config, device
        self.data_loader, self.valid_data_loader = data_loader, valid_data_loader
        self.settings = settings = config["trainer"]
        self.epochs, self.amp_dtype = settings["epochs"], AMP_DTYPES.get(settings["amp"])
        if self.amp_dtype is torch.float16 and device.type != "cuda":
            raise ConfigError(f"config key 'trainer.amp': fp16 needs a CUDA device, this run uses {device}; use bf16")
        # fp16 needs loss scaling against underflow; disabled, the scaler passes everything through.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype is torch.float16)
        self.monitor_mode, _, self.monitor_metric = settings["monitor"].partition(" ")
        self.monitor_best = {"min": math.inf, "max": -math.inf}.get(self.monitor_mode, math.nan)
        self.not_improved_count, self.epochs_done, self.global_step = 0, 0, 0
        self.samples_done = 0  # into the current epoch, over all processes: non-zero after a mid-epoch resume
        self.limit_batches: int | None = None  # the smoke run trains and validates only this many batches
        self.train_metrics, self.guard = MetricTracker(metric_ftns), RunGuard(device)
        self.checkpoints = CheckpointWriter(keep_last=settings["keep_last"])
        self.run_dir: Path | None = None
        recorded = [CSVTracker(), EnvironmentRecord(), Curves()]  # metrics.csv, environment.json, curves.png
        self.trackers = Trackers([*recorded, *([TensorBoardTracker()] if settings["tensorboard"] else [])])
        self.epoch_end_callbacks: list = []
        self.model = self._wrap(model)

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as steps call it: under torchrun in DDP, with each process's share of the data."""
        if self.guard.distributed:  # buffers are synced before validation instead of at every forward
            cuda = self.device.type == "cuda"
            model = DistributedDataParallel(
                model, device_ids=[self.device.index] if cuda else None, broadcast_buffers=False
            )
            for loader, pad in ((self.data_loader, True), (self.valid_data_loader, False)):
                if loader is not None:
                    loader.batch_sampler.shard(runtime.rank(), runtime.world_size(), pad)
        return torch.compile(model) if self.settings["compile"] else model

    def training_step(self, batch) -> "torch.Tensor | dict":
        """Forward pass and loss of one batch (already on the device). Return the loss, or a dict
        with "loss", optionally "output" and "target" (metrics are computed from them), and other
        scalars to average and log under their keys."""
        raise NotImplementedError("a trainer defines training_step(batch); see trainer/trainer.py")

    def validation_step(self, batch) -> "torch.Tensor | dict":
        """Like `training_step`, run without gradients on validation and test batches."""
        return self.training_step(batch)

    def train(self, run_dir: Path | None) -> dict[str, float]:
        """Train from the epoch after `epochs_done` to the last epoch, or until early stopping; return the last log.

        `run_dir` is None in all processes but the main one, which alone writes files. Raises
        `Interrupted` after saving when a stop signal arrives, and `NonFiniteLoss` (saving
        nothing) when the loss is NaN or infinite.
        """
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for path in sweep_temp_files(self.run_dir):
                logger.warning("Removed %s, left by a run killed while saving", path.name)
            self.trackers.start(self.run_dir, dict(self.config), self.epochs_done, self.global_step)
        self.log_steps = logger.isEnabledFor(logging.DEBUG)  # per-step losses cost a device sync
        log: dict[str, float] = {}
        status = "failed"
        try:
            with self.guard.signal:
                for epoch in range(self.epochs_done + 1, self.epochs + 1):
                    log = self._train_epoch(epoch)
                    if self._end_of_epoch(epoch, log):
                        break
                self._sync_saves()  # still under the signal handler: a SIGTERM now is handled
            status = "finished"
        except Interrupted:
            status = "stopped"
            raise
        finally:
            with contextlib.suppress(UserError, TrainingStopped):
                self.checkpoints.wait()
            self.trackers.close(status)
        return log

    @property
    def writer(self):
        """TensorBoard's SummaryWriter while training; None when it is off or on another process."""
        for tracker in self.trackers.trackers if self.trackers.running else ():
            if isinstance(tracker, TensorBoardTracker):
                tracker.started.wait()  # (it starts in the trackers' thread)
                return tracker.writer
        return None

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch, then validate; return the epoch's averaged losses and metrics."""
        self.model.train()
        if self.samples_done == 0:  # else resuming mid-epoch: keep the restored sums
            self.train_metrics.reset()
        self.data_loader.batch_sampler.set_epoch(epoch, skip_samples=self.samples_done)
        self.batches_done = 0  # since set_epoch: the loader turns it into a position in samples
        batches = progress(self.data_loader, f"epoch {epoch}", self.limit_batches)
        for group in accumulation_groups(batches, self.settings["accumulate"]):
            loss = self._optimizer_step(group)
            self._after_step(epoch, len(group), loss)
        self.samples_done = 0
        log = {**self.train_metrics.result(), **learning_rates(self.optimizer)}
        if self.valid_data_loader is not None:
            valid = self.evaluate(self.valid_data_loader, self.limit_batches)
            log.update({f"val_{key}": value for key, value in valid.items()})
        return log

    def _optimizer_step(self, group: tuple) -> torch.Tensor:
        """One optimizer step over the batches of `group` (several with accumulation): zero_grad,
        forward and loss (in `training_step`), backward, step, with the guarantees around them."""
        sizes = [batch_size(batch) for batch in group]
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(group):
            last = i == len(group) - 1  # DDP syncs gradients on the last micro-batch only
            with NO_CONTEXT if last or not self.guard.distributed else self.model.no_sync():
                with self.autocast():
                    result = as_step_result(self.training_step(to_device(batch, self.device)))
                loss = result["loss"]
                self.guard.check_loss(loss, self.global_step + 1)
                # micro-batches weigh their share of the samples: together, one batch of their union
                self.scaler.scale(loss if len(group) == 1 else loss * (sizes[i] / sum(sizes))).backward()
            self._update_metrics(self.train_metrics, result, sizes[i])
        if self.settings["clip_grad_norm"] is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the fp16-scaled ones
            norm = torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.settings["clip_grad_norm"])
            self.train_metrics.update("grad_norm", norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss

    def _after_step(self, epoch: int, batches: int, loss: torch.Tensor) -> None:
        """Count the step, log it, and on a stop request save where the run stands and stop."""
        self.global_step += 1
        self.batches_done += batches
        if self.log_steps:
            logger.debug("step %d loss %.8g", self.global_step, loss.item())
        every = self.settings["log_every"]
        if every and self.global_step % every == 0 and self.trackers.log_steps:
            self.trackers.log_step(self.global_step, {"loss": loss.item()})
        self._check_saves(block=False)
        if self.guard.stop_requested(self.global_step):
            self.guard.raise_if_loss_was_bad()  # never save weights that a bad loss reached
            self.samples_done = self.data_loader.batch_sampler.position(self.batches_done)
            name = checkpoint_name(epoch, self.global_step)
            self._save_checkpoint(name)
            self._interrupt(name)

    @torch.no_grad()
    def evaluate(self, loader, limit_batches: int | None = None) -> dict[str, float]:
        """Average loss and metrics of `validation_step` over `loader`, over all processes."""
        runtime.broadcast_buffers(self.raw_model)  # every process validates the weights that get saved
        self.model.eval()
        metrics = MetricTracker(self.metric_ftns)
        for batch in progress(loader, "evaluate", limit_batches):
            with self.autocast():
                result = as_step_result(self.validation_step(to_device(batch, self.device)))
            self._update_metrics(metrics, result, batch_size(batch))
        return metrics.result()

    def _update_metrics(self, tracker: "MetricTracker", result: dict, n: int) -> None:
        """Add one batch's loss, metrics and other returned scalars, on the device (no sync)."""
        for key, value in result.items():
            if key not in ("output", "target"):
                tracker.update(key, value, n)
        if "output" in result and "target" in result:
            tracker.update_metrics(result["output"].detach(), result["target"], n)

    def autocast(self):
        """Mixed precision for the forward pass and loss, when `trainer.amp` asks for it."""
        return NO_CONTEXT if self.amp_dtype is None else torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _end_of_epoch(self, epoch: int, log: dict[str, float]) -> bool:
        """Log the epoch and save what the policy asks for; return True to stop early."""
        self.guard.raise_if_loss_was_bad()
        self.epochs_done = epoch
        self._step_scheduler(log)
        logger.info("epoch %d/%d  %s", epoch, self.epochs, "  ".join(f"{k} {v:.6g}" for k, v in log.items()))
        self.trackers.log_epoch(epoch, self.global_step, dict(log))  # (read in another thread)
        improved = self._update_monitor(log)
        stop = 0 < self.settings["early_stop"] <= self.not_improved_count
        if stop:
            logger.info(
                "%s has not improved for %d epochs: stopping early", self.monitor_metric, self.not_improved_count
            )
        asked = [callback(epoch, log) for callback in self.epoch_end_callbacks]  # every one, on every process
        stop = stop or any(asked)
        interrupted = not stop and epoch < self.epochs and self.guard.stop_requested()  # else the run is over
        periodic = epoch % self.settings["save_period"] == 0 or epoch == self.epochs or stop or interrupted
        names = [checkpoint_name(epoch)] * periodic + ["model_best.pth"] * improved
        if names:
            self._save_checkpoint(*names)
        if interrupted:
            self._interrupt(checkpoint_name(epoch))
        return stop

    def _step_scheduler(self, log: dict[str, float]) -> None:
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # A plateau is judged on the monitored metric, else on the validation (or training) loss.
            self.lr_scheduler.step(log.get(self.monitor_metric) or log.get("val_loss") or log.get("loss"))
        elif self.lr_scheduler is not None:
            with warnings.catch_warnings():  # an epoch resumed at its very end has no optimizer step
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step\\(\\)` before")
                self.lr_scheduler.step()

    def _update_monitor(self, log: dict[str, float]) -> bool:
        """Track the best value of the monitored metric; a non-finite value is never the best."""
        if self.monitor_mode == "off":
            return False
        if self.monitor_metric not in log:  # a trainer's steps may return other values than the config expects
            raise ConfigError(
                f"config key 'trainer.monitor': this run logs no {self.monitor_metric}; it logs {', '.join(log)}"
            )
        value, best = log[self.monitor_metric], self.monitor_best
        if math.isfinite(value) and (value < best if self.monitor_mode == "min" else value > best):
            self.monitor_best, self.not_improved_count = value, 0
            return True
        self.not_improved_count += 1
        return False

    def _check_saves(self, block: bool) -> None:
        """Raise a failed checkpoint write (`block`: wait for the pending one first); under
        torchrun every process learns of it at the next agreement."""
        if block or self.checkpoints.done():
            try:
                self.checkpoints.wait()
            except (UserError, TrainingStopped) as exc:
                self.guard.fail(exc)

    def _sync_saves(self) -> None:
        """Wait until the main process's checkpoint is on disk: no process may exit before that,
        and if the write failed, every process stops."""
        self._check_saves(block=True)
        self.guard.agree()

    def _interrupt(self, name: str):
        self._sync_saves()
        raise Interrupted(self.guard.signal.received or 15, self.run_dir / name if self.run_dir else name)

    def state_dict(self) -> dict:
        """Everything that shapes the rest of the run: what a checkpoint holds, `load_state_dict`
        restores, and resuming checks a checkpoint against. Call it on every process: all agree on
        the metric sums and gather their random states (each draws its own dropout masks)."""
        states = runtime.all_gather(runtime.random_states(self.device))
        return {
            "epoch": self.epochs_done,
            "samples_done": self.samples_done,
            "global_step": self.global_step,
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else {},
            "grad_scaler": self.scaler.state_dict(),
            "rng": {kind: [state[kind] for state in states] for kind in states[0]},
            "monitor": self.settings["monitor"],
            "monitor_best": self.monitor_best,
            "not_improved_count": self.not_improved_count,
            "train_metrics": self.train_metrics.state_dict() if self.samples_done else {},  # mid-epoch only
            "state_dict": self.raw_model.state_dict(),
            "config": dict(self.config),
        }

    def load_state_dict(self, checkpoint: dict, source="") -> None:
        """Restore everything that shapes the rest of the run, so that it continues where it
        stopped; an entry that cannot be restored is one line naming it and `source`."""
        shapes = [param.shape for group in self.optimizer.param_groups for param in group["params"]]
        check_resumable(source, checkpoint, self.state_dict(), shapes)
        load_model_state(self.raw_model, checkpoint["state_dict"])
        for key, target in (("optimizer", self.optimizer), ("lr_scheduler", self.lr_scheduler)):
            _restore(key, target, checkpoint, self.config)
        if self.scaler.is_enabled() and checkpoint["grad_scaler"]:
            self.scaler.load_state_dict(checkpoint["grad_scaler"])
        self.epochs_done, self.global_step = checkpoint["epoch"], checkpoint["global_step"]
        self.samples_done = checkpoint["samples_done"]
        if self.samples_done and checkpoint["config"]["metrics"] == self.config["metrics"]:
            self.train_metrics.load_state_dict(checkpoint["train_metrics"], source)
        if checkpoint["monitor"] == self.settings["monitor"]:  # a changed monitor starts afresh
            self.monitor_best, self.not_improved_count = checkpoint["monitor_best"], checkpoint["not_improved_count"]
        runtime.restore_random_states(checkpoint["rng"], self.device, self.config["seed"] + self.global_step)
        done = f"{self.samples_done} samples into epoch {self.epochs_done + 1}" if self.samples_done else ""
        logger.info("Resumed %s (step %d)", done or f"after epoch {self.epochs_done}", self.global_step)

    def _save_checkpoint(self, *names: str) -> None:
        """Save the run's state as each of `names`. Call it on every process: the main one writes."""
        state = self.state_dict()  # and a record of the run, for test.py and for readers:
        state.update(
            arch=type(self.raw_model).__name__, world_size=runtime.world_size(), classes=self.data_loader.classes
        )
        if self.run_dir is not None:
            self._check_saves(block=True)  # the previous write first: its failure stops the run
            self.checkpoints.save(state, [self.run_dir / name for name in names])


def _restore(key: str, target, checkpoint: dict, config: dict) -> None:
    """Load the optimizer's or scheduler's state, then apply the args the config changed since."""
    saved = checkpoint["config"].get(key) or {}
    if target is None or not checkpoint[key] or saved.get("type") != config[key]["type"]:
        if target is not None or checkpoint[key]:
            logger.warning("Not restoring '%s': the checkpoint used %s", key, saved.get("type"))
        return
    target.load_state_dict(checkpoint[key])
    for where, name, value, groups in changed_settings(target, key, saved, config[key]):
        for group in groups:  # e.g. --lr on resume: the new value wins over the restored one
            group[name] = value
        if not groups and name in vars(target):
            setattr(target, name, value)
        applied = groups or name in vars(target)
        logger.warning("%s changed %s to %r on resume", "Applied the" if applied else "Could not apply the",
                       where, value)  # fmt: skip
