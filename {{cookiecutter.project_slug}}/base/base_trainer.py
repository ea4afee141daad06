"""The epoch loop shared by all trainers: monitoring, early stopping, checkpoints and resume."""

import logging
import math
from pathlib import Path

import torch

from logger import TensorboardWriter
from utils import MetricTracker
from utils.checkpoint import checkpoint_name, load_model_state, prune_checkpoints, save_checkpoint, sweep_temp_files
from utils.errors import Interrupted, NonFiniteLoss
from utils.stop_signal import StopSignal

logger = logging.getLogger(__name__)


class BaseTrainer:
    """Runs `_train_epoch` for each epoch and decides what to keep; subclasses do the steps.

    A subclass calls `self._after_step(loss)` after each optimizer step, so that a stop request
    (SIGINT/SIGTERM) is honoured at the next step boundary with a checkpoint that resumes exactly.
    """

    def __init__(self, model, criterion, metric_fns, optimizer, config: dict, device, lr_scheduler=None) -> None:
        self.model = model
        self.criterion = criterion
        self.metric_fns = metric_fns
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.config = config
        self.device = device
        settings = config["trainer"]
        self.epochs = settings["epochs"]
        self.save_period = settings.get("save_period", 1)
        self.keep_last = settings.get("keep_last", 3)
        self.early_stop = settings.get("early_stop", 0)
        self.tensorboard = settings.get("tensorboard", False)
        self.monitor = settings.get("monitor", "off")
        self.mnt_mode, _, self.mnt_metric = self.monitor.partition(" ")
        self.mnt_best = {"min": math.inf, "max": -math.inf}.get(self.mnt_mode, math.nan)
        self.not_improved_count = 0
        self.start_epoch = 1
        self.global_step = 0
        self.batches_done = 0  # in the current epoch; non-zero at start only after a mid-epoch resume
        self.train_metrics = MetricTracker("loss", *(fn.__name__ for fn in metric_fns))
        self.stop = StopSignal()

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (and validate); return the epoch's averaged losses and metrics."""
        raise NotImplementedError

    def train(self, run_dir: Path) -> dict[str, float]:
        """Train from `start_epoch` to the last epoch, or until early stopping; return the last log.

        Raises `Interrupted` after saving when a stop signal arrives, and `NonFiniteLoss` (saving
        nothing) when the loss is NaN or infinite.
        """
        self.run_dir = Path(run_dir)
        for path in sweep_temp_files(self.run_dir):
            logger.warning("Removed %s, left by a run killed while saving", path.name)
        self.log_steps = logger.isEnabledFor(logging.DEBUG)  # per-step losses cost a device sync
        writer = TensorboardWriter(self.run_dir, self.tensorboard, first_step=self.start_epoch)
        log: dict[str, float] = {}
        try:
            with self.stop:
                for epoch in range(self.start_epoch, self.epochs + 1):
                    log = {**self._train_epoch(epoch), "lr": self.optimizer.param_groups[0]["lr"]}
                    self._step_scheduler(log)
                    writer.add_scalars(log, epoch)
                    logger.info(
                        "epoch %d/%d  %s", epoch, self.epochs, "  ".join(f"{k} {v:.6g}" for k, v in log.items())
                    )
                    if self._end_of_epoch(epoch, log):
                        break
        finally:
            writer.close()
        return log

    def _end_of_epoch(self, epoch: int, log: dict[str, float]) -> bool:
        """Save what the policy asks for; return True when training should stop early."""
        improved = self._update_monitor(log)
        stop = self.early_stop > 0 and self.not_improved_count >= self.early_stop
        if epoch % self.save_period == 0 or epoch == self.epochs or stop or self.stop.received:
            self._save_checkpoint(epoch, checkpoint_name(epoch))
            prune_checkpoints(self.run_dir, self.keep_last)
        if improved:
            self._save_checkpoint(epoch, "model_best.pth")
        if self.stop.received:
            raise Interrupted(self.stop.received, self.run_dir / checkpoint_name(epoch))
        if stop:
            logger.info("%s has not improved for %d epochs: stopping early", self.mnt_metric, self.early_stop)
        return stop

    def _after_step(self, epoch: int, loss: torch.Tensor) -> None:
        self.global_step += 1
        self.batches_done += 1
        if self.log_steps:
            logger.debug("step %d loss %.8g", self.global_step, loss.item())
        if self.stop.received:
            name = checkpoint_name(epoch, self.batches_done)
            self._save_checkpoint(epoch - 1, name)
            prune_checkpoints(self.run_dir, self.keep_last)
            raise Interrupted(self.stop.received, self.run_dir / name)

    def _check_loss(self, loss: torch.Tensor) -> None:
        """Stop before a NaN or infinite loss can reach the weights (or any checkpoint)."""
        if not torch.isfinite(loss):
            raise NonFiniteLoss(
                f"loss is {loss.item()} at step {self.global_step + 1}; the step was not applied and no "
                "checkpoint holds its result - lower optimizer.args.lr or check the data"
            )

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
            self.mnt_best = value
            self.not_improved_count = 0
            return True
        self.not_improved_count += 1
        return False

    def _save_checkpoint(self, epochs_done: int, name: str) -> None:
        """Save everything that shapes the rest of the run (`epochs_done` complete epochs)."""
        state_dict = self.model.state_dict()
        if not all(t.isfinite().all() for t in state_dict.values() if t.is_floating_point()):
            raise NonFiniteLoss(f"the weights hold NaN or infinite values; {name} was not saved")
        cuda = self.device.type == "cuda"
        state = {
            "arch": type(self.model).__name__,
            "epoch": epochs_done,
            "batches_done": self.batches_done,
            "global_step": self.global_step,
            "state_dict": state_dict,
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "monitor": self.monitor,
            "monitor_best": self.mnt_best,
            "not_improved_count": self.not_improved_count,
            "train_metrics": self.train_metrics.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else []},
            "config": self.config,
        }
        save_checkpoint(state, self.run_dir / name)
        logger.info("Saved %s", self.run_dir / name)

    def resume(self, checkpoint: dict) -> None:
        """Restore everything that shapes the rest of the run, so it continues where it stopped."""
        load_model_state(self.model, checkpoint["state_dict"])
        for key, target in (("optimizer", self.optimizer), ("lr_scheduler", self.lr_scheduler)):
            saved_type = (checkpoint["config"].get(key) or {}).get("type")
            if target is None or checkpoint[key] is None or saved_type != self.config[key]["type"]:
                logger.warning("Not restoring '%s': the checkpoint used %s", key, saved_type)
            else:
                target.load_state_dict(checkpoint[key])
        self.start_epoch = checkpoint["epoch"] + 1
        self.batches_done = checkpoint["batches_done"]
        self.global_step = checkpoint["global_step"]
        if self.batches_done and checkpoint["config"]["metrics"] == self.config["metrics"]:
            self.train_metrics.load_state_dict(checkpoint["train_metrics"], self.device)
        if checkpoint["monitor"] == self.monitor:  # a changed monitor starts its tracking afresh
            self.mnt_best = checkpoint["monitor_best"]
            self.not_improved_count = checkpoint["not_improved_count"]
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and len(checkpoint["rng"]["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        if self.batches_done:
            where = f"{self.batches_done} batches into epoch {self.start_epoch}"
        else:
            where = f"after epoch {checkpoint['epoch']}"
        logger.info("Resumed %s (step %d)", where, self.global_step)
