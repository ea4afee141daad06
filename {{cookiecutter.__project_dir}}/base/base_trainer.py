"""The epoch loop shared by all trainers: monitoring, early stopping, checkpoints and resume."""

import contextlib
import importlib.util
import logging
import math
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from utils import MetricTracker, distributed
from utils.checkpoint import checkpoint_name, load_model_state, sweep_temp_files
from utils.checkpoint_writer import CheckpointWriter
from utils.errors import ConfigError, Interrupted
from utils.run_guard import RunGuard

logger = logging.getLogger(__name__)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NO_CONTEXT = contextlib.nullcontext()  # reusable: it holds no state


class BaseTrainer:
    """Runs `_train_epoch` for each epoch and decides what to keep; subclasses do the steps.

    `self.model` is the plain model (saved and evaluated); `self.train_model` is what the
    training step calls: the same model, wrapped for DDP and/or compiled when configured.
    A subclass calls `self.guard.check_loss` before each backward pass and `self._after_step`
    after each optimizer step, so that a stop request is honoured at a step boundary.
    """

    def __init__(self, model, criterion, metric_fns, optimizer, config: dict, device, lr_scheduler=None) -> None:
        self.model, self.criterion, self.metric_fns = model, criterion, metric_fns
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.config, self.device = config, device
        settings = config["trainer"]
        self.epochs = settings["epochs"]
        self.save_period = settings.get("save_period", 1)
        self.checkpoints = CheckpointWriter(keep_last=settings.get("keep_last", 3))
        self.early_stop = settings.get("early_stop", 0)
        self.tensorboard = settings.get("tensorboard", False)
        if self.tensorboard and importlib.util.find_spec("logger.visualization") is None:
            raise ConfigError(
                "config key 'trainer.tensorboard' is true, but logger/visualization.py is not in this project "
                "(made without TensorBoard); set it to false"
            )
        self.accumulate = settings.get("accumulate", 1)
        self.clip_grad_norm = settings.get("clip_grad_norm")
        self.amp_dtype = AMP_DTYPES.get(settings.get("amp", "off"))
        if self.amp_dtype is torch.float16 and device.type != "cuda":
            raise ConfigError(f"config key 'trainer.amp': fp16 needs a CUDA device, this run uses {device}; use bf16")
        # fp16 needs loss scaling against underflow; disabled, the scaler passes everything through.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype is torch.float16)
        self.monitor = settings.get("monitor", "off")
        self.mnt_mode, _, self.mnt_metric = self.monitor.partition(" ")
        self.mnt_best = {"min": math.inf, "max": -math.inf}.get(self.mnt_mode, math.nan)
        self.not_improved_count = 0
        self.start_epoch, self.global_step = 1, 0
        self.classes: list[str] | None = None  # the data's class names, kept in checkpoints for test.py
        self.samples_done = 0  # in the current epoch, over all processes; non-zero after a mid-epoch resume
        self.train_metrics = MetricTracker("loss", *(fn.__name__ for fn in metric_fns), "grad_norm")
        self.guard = RunGuard(device)
        self.distributed = self.guard.distributed
        self.train_model = model
        if self.distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            self.train_model = DistributedDataParallel(model, device_ids=device_ids)
        if settings.get("compile", False):
            self.train_model = torch.compile(self.train_model)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (and validate); return the epoch's averaged losses and metrics."""
        raise NotImplementedError

    def train(self, run_dir: Path | None) -> dict[str, float]:
        """Train from `start_epoch` to the last epoch, or until early stopping; return the last log.

        `run_dir` is None in all processes but the main one, which alone writes files. Raises
        `Interrupted` after saving when a stop signal arrives, and `NonFiniteLoss` (saving
        nothing) when the loss is NaN or infinite.
        """
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None:
            for path in sweep_temp_files(self.run_dir):
                logger.warning("Removed %s, left by a run killed while saving", path.name)
        self.log_steps = logger.isEnabledFor(logging.DEBUG)  # per-step losses cost a device sync
        writer = None
        if self.tensorboard and self.run_dir is not None:
            from logger.visualization import TensorboardWriter  # optional file; tensorboard imports slowly

            writer = TensorboardWriter(self.run_dir, self.start_epoch)
        log: dict[str, float] = {}
        try:
            with self.guard.signal:
                for epoch in range(self.start_epoch, self.epochs + 1):
                    log = {**self._train_epoch(epoch), "lr": self.optimizer.param_groups[0]["lr"]}
                    self.guard.raise_if_loss_was_bad()
                    self._step_scheduler(log)
                    if writer is not None:
                        writer.add_scalars(log, epoch)
                    logger.info(
                        "epoch %d/%d  %s", epoch, self.epochs, "  ".join(f"{k} {v:.6g}" for k, v in log.items())
                    )
                    if self._end_of_epoch(epoch, log):
                        break
                self.checkpoints.wait()  # still under the signal handler: a SIGTERM now is handled
            distributed.barrier()  # the others wait for the main process to finish saving
        finally:
            if writer is not None:
                writer.close()
            self.checkpoints.wait()
        return log

    def _end_of_epoch(self, epoch: int, log: dict[str, float]) -> bool:
        """Save what the policy asks for; return True when training should stop early."""
        improved = self._update_monitor(log)
        stop = self.early_stop > 0 and self.not_improved_count >= self.early_stop
        interrupted = self.guard.stop_requested()
        periodic = epoch % self.save_period == 0 or epoch == self.epochs or stop or interrupted
        names = [checkpoint_name(epoch)] * periodic + ["model_best.pth"] * improved
        if names:
            self._save_checkpoint(epoch, *names)
        if interrupted:
            self._interrupt(checkpoint_name(epoch))
        if stop:
            logger.info("%s has not improved for %d epochs: stopping early", self.mnt_metric, self.early_stop)
        return stop

    def autocast(self):
        """Mixed precision for the forward pass and loss, when `trainer.amp` asks for it."""
        if self.amp_dtype is None:
            return NO_CONTEXT
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def no_sync(self, last_micro_batch: bool):
        """Skip DDP's gradient all-reduce on all but the last micro-batch of an accumulation."""
        if last_micro_batch or not self.distributed:
            return NO_CONTEXT
        return self.train_model.no_sync()

    def clip_gradients(self) -> None:
        if self.clip_grad_norm is None:
            return
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the fp16-scaled ones
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.train_metrics.update("grad_norm", norm)

    def _after_step(self, epoch: int, samples: int, loss: torch.Tensor) -> None:
        self.global_step += 1
        self.samples_done += samples
        if self.log_steps:
            logger.debug("step %d loss %.8g", self.global_step, loss.item())
        if self.guard.stop_requested(self.global_step):
            self.guard.raise_if_loss_was_bad()  # never save weights that a bad loss reached
            name = checkpoint_name(epoch, self.global_step)
            self._save_checkpoint(epoch - 1, name)
            self._interrupt(name)

    def _interrupt(self, name: str):
        self.checkpoints.wait()
        distributed.barrier()  # no process may exit while the main one is still saving
        raise Interrupted(self.guard.signal.received or 15, self.run_dir / name if self.run_dir else name)

    def _step_scheduler(self, log: dict[str, float]) -> None:
        if self.lr_scheduler is None:
            return
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # A plateau is judged on the monitored metric, else on the validation (or training) loss.
            self.lr_scheduler.step(log.get(self.mnt_metric, log.get("val_loss", log["loss"])))
        else:
            self.lr_scheduler.step()

    def _update_monitor(self, log: dict[str, float]) -> bool:
        """Track the best value of the monitored metric; a non-finite value is never the best."""
        if self.mnt_mode == "off":
            return False
        value = log[self.mnt_metric]
        better = value < self.mnt_best if self.mnt_mode == "min" else value > self.mnt_best
        if math.isfinite(value) and better:
            self.mnt_best, self.not_improved_count = value, 0
            return True
        self.not_improved_count += 1
        return False

    def _save_checkpoint(self, epochs_done: int, *names: str) -> None:
        """Save everything that shapes the rest of the run as each of `names` (call on every process:
        the metric sums are agreed by all, the main process alone writes)."""
        # Only a mid-epoch checkpoint needs the epoch's running sums; all processes agree on that.
        train_metrics = self.train_metrics.state_dict() if self.samples_done else None
        if self.run_dir is None:
            return
        cuda = self.device.type == "cuda"
        state = {
            "arch": type(self.model).__name__,
            "epoch": epochs_done,
            "samples_done": self.samples_done,
            "global_step": self.global_step,
            "world_size": distributed.world_size(),
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "grad_scaler": self.scaler.state_dict(),
            "monitor": self.monitor,
            "monitor_best": self.mnt_best,
            "not_improved_count": self.not_improved_count,
            "train_metrics": train_metrics,
            "classes": self.classes,
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else []},
            "config": self.config,
        }
        self.checkpoints.save(state, [self.run_dir / name for name in names])

    def resume(self, checkpoint: dict) -> None:
        """Restore everything that shapes the rest of the run, so it continues where it stopped."""
        load_model_state(self.model, checkpoint["state_dict"])
        for key, target in (("optimizer", self.optimizer), ("lr_scheduler", self.lr_scheduler)):
            saved = checkpoint["config"].get(key) or {}
            if target is None or checkpoint[key] is None or saved.get("type") != self.config[key]["type"]:
                logger.warning("Not restoring '%s': the checkpoint used %s", key, saved.get("type"))
                continue
            target.load_state_dict(checkpoint[key])
            changed = {k: v for k, v in self.config[key].get("args", {}).items() if saved.get("args", {}).get(k) != v}
            if changed:  # e.g. --lr on resume: the new values win over the restored ones
                logger.warning("Applying changed %s args %s on top of the restored state", key, changed)
                for name, value in changed.items():
                    for group in getattr(target, "param_groups", []):
                        if name in group:
                            group[name] = value
                    if hasattr(target, name):
                        setattr(target, name, value)
        if self.scaler.is_enabled() and checkpoint["grad_scaler"]:
            self.scaler.load_state_dict(checkpoint["grad_scaler"])
        self.start_epoch, self.global_step = checkpoint["epoch"] + 1, checkpoint["global_step"]
        self.samples_done = checkpoint["samples_done"]
        same_metrics = checkpoint["config"]["metrics"] == self.config["metrics"]
        if self.samples_done and same_metrics and distributed.is_main():  # the saved sums are global
            self.train_metrics.load_state_dict(checkpoint["train_metrics"])
        if checkpoint["monitor"] == self.monitor:  # a changed monitor starts its tracking afresh
            self.mnt_best, self.not_improved_count = checkpoint["monitor_best"], checkpoint["not_improved_count"]
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and len(checkpoint["rng"]["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        where = f"{self.samples_done} samples into epoch {self.start_epoch}" if self.samples_done else ""
        logger.info("Resumed %s (step %d)", where or f"after epoch {checkpoint['epoch']}", self.global_step)
