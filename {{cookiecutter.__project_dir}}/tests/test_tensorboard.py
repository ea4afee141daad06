"""TensorBoard curves through the public SummaryWriter (projects made with TensorBoard)."""

import contextlib
import os
import signal
import time

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import TEST_CONFIG, build_trainer, finish, only_run_dir, read_until, start_script
from trainer import Trainer
from utils.checkpoint import load_checkpoint

TENSORBOARD = ["trainer.tensorboard=true", "trainer.log_every=5"]


def scalars(run_dir, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir)).Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_epoch_curves_and_per_step_loss(tmp_path):
    """Training and validation values once per epoch, the loss every `log_every` steps, all at the
    global step on the x axis."""
    build_trainer(*TENSORBOARD, "trainer.epochs=2").train(tmp_path)
    tags = set(EventAccumulator(str(tmp_path)).Reload().Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "train/lr", "val/loss", "val/accuracy", "step/loss"} <= tags
    assert [step for step, _ in scalars(tmp_path, "val/loss")] == [21, 42]
    assert [step for step, _ in scalars(tmp_path, "step/loss")] == [5, 10, 15, 20, 25, 30, 35, 40]


class ImageTrainer(Trainer):
    """A user's trainer that adds the first batch's images to TensorBoard at every epoch's start."""

    def training_step(self, batch):
        if self.writer is not None and self.batches_done == 0:
            self.writer.add_images("inputs", batch[0][:4], self.global_step)
        return super().training_step(batch)


def test_a_trainer_subclass_writes_its_own_summaries(tmp_path):
    trainer = build_trainer(*TENSORBOARD, "trainer.epochs=2", "trainer.type=tests.test_tensorboard.ImageTrainer")
    trainer.train(tmp_path)
    images = EventAccumulator(str(tmp_path)).Reload().Images("inputs")
    assert [image.step for image in images] == [0, 21]


def test_a_resumed_run_rewrites_the_points_it_repeats(tmp_path):
    """Resuming in the same run folder from an earlier checkpoint (as `-r auto` does after a kill)
    replaces the points written after it: each step keeps one point."""
    build_trainer(*TENSORBOARD, "trainer.epochs=2").train(tmp_path)
    resumed = build_trainer(*TENSORBOARD, "trainer.epochs=2")
    resumed.load_state_dict(load_checkpoint(tmp_path / "checkpoint-epoch1.pth"))
    resumed.train(tmp_path)
    steps = [step for step, _ in scalars(tmp_path, "step/loss")]
    assert steps == sorted(set(steps)) == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [step for step, _ in scalars(tmp_path, "val/loss")] == [21, 42]


@pytest.mark.parametrize("log_every", [0])
def test_per_step_points_are_optional(tmp_path, log_every):
    build_trainer("trainer.tensorboard=true", f"trainer.log_every={log_every}", "trainer.epochs=1").train(tmp_path)
    assert "step/loss" not in EventAccumulator(str(tmp_path)).Reload().Tags()["scalars"]


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_a_failing_tensorboard_writer_is_switched_off_and_training_goes_on(tmp_path):
    """TensorBoard's writer thread fails (here its event file turns into a folder; a full disk
    fails alike): one warning, no traceback from the thread, and training and checkpoints go on."""
    sets = ["trainer.tensorboard=true", "trainer.epochs=1000", f"trainer.save_dir={tmp_path.as_posix()}"]
    process = start_script("train.py", "-c", TEST_CONFIG, *(arg for s in sets for arg in ("--set", s)))
    read_until(process, "checkpoint-epoch1.pth")
    run_dir = only_run_dir(tmp_path)
    deadline = time.monotonic() + 60  # the writer starts in the trackers' thread, after the first step
    while not (found := list(run_dir.glob("events.out.tfevents.*"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    (events,) = found
    while not events.is_dir():  # (the writer may recreate the file in between: then again)
        events.unlink(missing_ok=True)
        with contextlib.suppress(FileExistsError):
            events.mkdir()
    switched_off = read_until(process, "TensorBoardTracker is switched off")
    epoch = max(int(p.stem.removeprefix("checkpoint-epoch")) for p in run_dir.glob("checkpoint-epoch*.pth"))
    read_until(process, f"checkpoint-epoch{epoch + 2}.pth")  # two more epochs, saved
    process.send_signal(signal.SIGTERM)
    output = "".join(switched_off) + finish(process, timeout=120)
    assert process.returncode == 143, output
    assert "Traceback" not in output and "error: " not in output, output
    assert "Could not write TensorBoard events" in output
