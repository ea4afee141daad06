"""Experiment trackers: metrics.csv in every run, trackers of your own named in the config, and
their failures handled like a failed checkpoint write. The trackers here are written in
tests/parts.py the way README.md tells you to write yours."""

import json

import pytest

import train
from tests.helpers import build_trainer, metrics_rows, only_run_dir, signal_at_loss_call
from tests.parts import FIRST_STEP_TAKEN
from utils.checkpoint import load_checkpoint, run_checkpoints
from utils.runtime import Interrupted


def tracking(*types: str) -> str:
    return "trackers=" + json.dumps([{"type": f"tests.parts.{name}"} for name in types])


def calls(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "calls.jsonl").read_text(encoding="utf-8").splitlines()]


def test_every_run_writes_metrics_csv_with_one_row_per_epoch(quick_run, tmp_path):
    assert train.main([*quick_run, "--set", "trainer.epochs=2"]) == 0
    rows = metrics_rows(only_run_dir(tmp_path))
    assert [(row["epoch"], row["step"]) for row in rows] == [("1", "21"), ("2", "42")]
    assert list(rows[0]) == ["epoch", "step", "loss", "accuracy", "lr", "val_loss", "val_accuracy"]
    assert all(0.0 <= float(row["val_accuracy"]) <= 1.0 and float(row["loss"]) > 0 for row in rows)


def test_a_resumed_run_lists_each_epoch_once(tmp_path):
    """Resumed in its folder from an earlier checkpoint (as `-r auto` after a kill), the run keeps
    the rows its checkpoint holds and replaces the later ones."""
    build_trainer("trainer.epochs=3").train(tmp_path)
    resumed = build_trainer("trainer.epochs=3")
    resumed.load_state_dict(load_checkpoint(tmp_path / "checkpoint-epoch1.pth"))
    resumed.train(tmp_path)
    assert [row["epoch"] for row in metrics_rows(tmp_path)] == ["1", "2", "3"]


def test_a_tracker_named_in_the_config_receives_the_whole_run(quick_run, tmp_path):
    settings = ["trainer.epochs=2", "trainer.log_every=10", tracking("RecordingTracker")]
    assert train.main([*quick_run, *(arg for s in settings for arg in ("--set", s))]) == 0
    got = calls(only_run_dir(tmp_path))
    assert got[0] == {"call": "start", "epoch": 0, "step": 0, "name": "Tests"}
    assert [(c["call"], c["step"]) for c in got[1:-1]] == [
        ("log_step", 10), ("log_step", 20), ("log_epoch", 21), ("log_step", 30), ("log_step", 40), ("log_epoch", 42)
    ]  # fmt: skip
    assert got[2]["keys"] == ["loss"] and "val_accuracy" in got[3]["keys"]
    assert got[-1] == {"call": "close", "status": "finished"}


def test_a_stopped_run_tells_its_trackers_and_the_resumed_one_starts_where_it_stopped(tmp_path):
    trainer = build_trainer("trainer.epochs=2", tracking("RecordingTracker"))
    signal_at_loss_call(trainer, 30)
    with pytest.raises(Interrupted):
        trainer.train(tmp_path)
    assert calls(tmp_path)[-1] == {"call": "close", "status": "stopped"}
    resumed = build_trainer("trainer.epochs=2", tracking("RecordingTracker"))
    resumed.load_state_dict(load_checkpoint(run_checkpoints(tmp_path)[-1]))
    resumed.train(tmp_path)
    starts = [c for c in calls(tmp_path) if c["call"] == "start"]
    assert starts[-1] == {"call": "start", "epoch": 1, "step": 30, "name": "Tests"}
    assert calls(tmp_path)[-1] == {"call": "close", "status": "finished"}


def test_the_first_step_does_not_wait_for_a_slow_tracker(tmp_path):
    """Trackers start in a thread of their own: a tracker still starting (a slow import, a
    server far away) does not hold up training."""
    FIRST_STEP_TAKEN.clear()
    trainer = build_trainer(
        "trainer.epochs=1", "loss=tests.parts.loss_marking_the_first_step", tracking("SlowStartTracker")
    )
    trainer.train(tmp_path)
    assert trainer.trackers.trackers[-1].step_came_first


def test_a_tracker_that_cannot_write_is_switched_off_and_training_goes_on(quick_run, tmp_path, capsys):
    """A full disk under a tracker: one warning naming what is lost and where the values still
    are; every epoch is trained and saved, and the run ends with exit code 0."""
    assert train.main([*quick_run, "--set", "trainer.epochs=3", "--set", tracking("FullDiskTracker")]) == 0
    out = capsys.readouterr().out
    warning = "Could not write tracking data (No space left on device): FullDiskTracker is switched off, "
    assert out.count(warning) == 1 and "metrics.csv and train.log keep every epoch's values" in out
    run_dir = only_run_dir(tmp_path)
    assert load_checkpoint(run_dir / "checkpoint-epoch3.pth")["epoch"] == 3
    assert [row["epoch"] for row in metrics_rows(run_dir)] == ["1", "2", "3"]


def test_a_bug_in_a_tracker_keeps_its_traceback_and_training_goes_on(quick_run, tmp_path, capsys):
    assert train.main([*quick_run, "--set", "trainer.epochs=2", "--set", tracking("BuggyTracker")]) == 0
    out = capsys.readouterr().out
    assert "Traceback" in out and "parts.py" in out and "ValueError: a bug in the user's tracker" in out
    assert out.count("BuggyTracker is switched off") == 1
    assert (only_run_dir(tmp_path) / "checkpoint-epoch2.pth").exists()


@pytest.mark.parametrize(
    "trackers, message",
    [
        ('[{"type": "CSVTrackr"}]', "[0].type': unknown name 'CSVTrackr' (did you mean 'CSVTracker'?)"),
        ('[{"type": "tests.parts.TinyCNN"}]', "[0].type': <class 'tests.parts.TinyCNN'> is not a Tracker subclass"),
        ('[{"type": "CSVTracker", "args": {"path": "x"}}]', "[0].args.path': CSVTracker has no argument 'path'"),
        ('{"type": "CSVTracker"}', "': got {'type': 'CSVTracker'}, expected"),
    ],
)
def test_tracker_mistakes_are_one_line_before_any_file(quick_run, tmp_path, capsys, trackers, message):
    assert train.main([*quick_run, "--set", f"trackers={trackers}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: config key 'trackers{message}") and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())
