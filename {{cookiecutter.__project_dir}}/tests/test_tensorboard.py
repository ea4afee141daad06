"""TensorBoard curves (projects made with TensorBoard)."""

from tests.helpers import run_script
from tests.test_training import only_run_dir


def test_tensorboard_gets_one_point_per_epoch(tmp_path, quick_run):
    """With trainer.tensorboard on, the run folder holds train and validation curves."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trained = run_script("train.py", *quick_run, "--set", "trainer.epochs=2")
    assert trained.returncode == 0, trained.stderr
    events = EventAccumulator(str(only_run_dir(tmp_path))).Reload()
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "train/lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val/loss")] == [1, 2]


def test_resumed_run_rewrites_the_points_it_repeats(tmp_path):
    """A process that resumes at epoch `first_step` replaces the points an interrupted process
    wrote from that epoch on, also when it resumes inside epoch 1: each epoch keeps one point."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from logger.visualization import TensorboardWriter

    first = TensorboardWriter(tmp_path)
    first.add_scalars({"loss": 1.0, "val_loss": 1.5}, 1)
    first.add_scalars({"loss": 0.8, "val_loss": 1.2}, 2)
    first.close()
    resumed = TensorboardWriter(tmp_path, first_step=1)  # its newest checkpoint was inside epoch 1
    resumed.add_scalars({"loss": 0.9, "val_loss": 1.4}, 1)
    resumed.close()
    events = EventAccumulator(str(tmp_path)).Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("train/loss")] == [(1, 0.9)]
    assert [e.step for e in events.Scalars("val/loss")] == [1]
