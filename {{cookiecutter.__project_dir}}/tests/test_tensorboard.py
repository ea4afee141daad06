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
