"""The epoch loop shared by all trainers: monitoring, early stopping, checkpoints and resume."""

import logging
import math
from pathlib import Path

import torch

from logger import TensorboardWriter
from utils.checkpoint import load_model_state, prune_checkpoints, save_checkpoint, sweep_temp_files

logger = logging.getLogger(__name__)


class BaseTrainer:
    """Runs `_train_epoch` for each epoch and decides what to keep; subclasses do the steps."""

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

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (and validate); return the epoch's averaged losses and metrics."""
        raise NotImplementedError

    def train(self, run_dir: Path) -> dict[str, float]:
        """Train from `start_epoch` to the last epoch, or until early stopping; return the last log."""
        self.run_dir = Path(run_dir)
        for path in sweep_temp_files(self.run_dir):
            logger.warning("Removed %s, left by a run killed while saving", path.name)
        writer = TensorboardWriter(self.run_dir, self.tensorboard, first_step=self.start_epoch)
        log: dict[str, float] = {}
        try:
            for epoch in range(self.start_epoch, self.epochs + 1):
                log = {**self._train_epoch(epoch), "lr": self.optimizer.param_groups[0]["lr"]}
                self._step_scheduler(log)
                writer.add_scalars(log, epoch)
                logger.info("epoch %d/%d  %s", epoch, self.epochs, "  ".join(f"{k} {v:.6g}" for k, v in log.items()))
                improved = self._update_monitor(log)
                stop = self.early_stop > 0 and self.not_improved_count >= self.early_stop
                if epoch % self.save_period == 0 or epoch == self.epochs or stop:
                    self._save_checkpoint(epoch, f"checkpoint-epoch{epoch}.pth")
                    prune_checkpoints(self.run_dir, self.keep_last)
                if improved:
                    self._save_checkpoint(epoch, "model_best.pth")
                if stop:
                    logger.info("%s has not improved for %d epochs: stopping early", self.mnt_metric, self.early_stop)
                    break
        finally:
            writer.close()
        return log

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

    def _save_checkpoint(self, epoch: int, name: str) -> None:
        cuda = self.device.type == "cuda"
        state = {
            "arch": type(self.model).__name__,
            "epoch": epoch,
            "global_step": self.global_step,
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "monitor": self.monitor,
            "monitor_best": self.mnt_best,
            "not_improved_count": self.not_improved_count,
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
        self.global_step = checkpoint["global_step"]
        if checkpoint["monitor"] == self.monitor:  # a changed monitor starts its tracking afresh
            self.mnt_best = checkpoint["monitor_best"]
            self.not_improved_count = checkpoint["not_improved_count"]
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if self.device.type == "cuda" and len(checkpoint["rng"]["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        logger.info("Resumed after epoch %d (step %d)", checkpoint["epoch"], self.global_step)
