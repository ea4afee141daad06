"""train.py and test.py end to end, as a user runs them: real processes, real files."""

import pytest

import test as test_script
import train
from tests.helpers import PROJECT_DIR, TEST_CONFIG, only_run_dir, run_script, shipped_config
from utils.checkpoint import create_run_dir, load_checkpoint


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """A real `python train.py` run of 2 epochs; its save_dir and output."""
    save_dir = tmp_path_factory.mktemp("saved")
    result = run_script(
        "train.py", "-c", TEST_CONFIG, "--set", "trainer.epochs=2", "--set", f"trainer.save_dir={save_dir.as_posix()}"
    )
    assert result.returncode == 0, result.stderr
    return save_dir, result


def test_a_run_folder_holds_config_log_and_checkpoints(two_epochs):
    save_dir, result = two_epochs
    run_dir = only_run_dir(save_dir)
    assert f"Run folder: {run_dir}" in result.stdout and "epoch 2/2" in result.stdout
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.json",
        "train.log",
        "checkpoint-epoch2.pth",
        "model_best.pth",
    }
    assert "Built tests.parts.TinyCNN from config key 'arch'" in (run_dir / "train.log").read_text(encoding="utf-8")


def test_resume_continues_the_same_run_at_the_next_epoch_and_test_py_evaluates_it(two_epochs, capsys, monkeypatch):
    """`-r checkpoint` picks up after the saved epoch, in the same run folder and log file; test.py
    then scores the whole test split."""
    monkeypatch.chdir(PROJECT_DIR)
    save_dir, _ = two_epochs
    run_dir = only_run_dir(save_dir)
    resumed = run_script("train.py", "-r", str(run_dir / "checkpoint-epoch2.pth"), "--set", "trainer.epochs=3")
    assert resumed.returncode == 0, resumed.stderr
    assert (
        "Resumed after epoch 2" in resumed.stdout and "epoch 3/3" in resumed.stdout and "epoch 1/" not in resumed.stdout
    )
    assert only_run_dir(save_dir) == run_dir
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert "epoch 1/2" in log and "epoch 3/3" in log
    assert load_checkpoint(run_dir / "checkpoint-epoch3.pth")["epoch"] == 3
    assert test_script.main(["-r", str(run_dir / "checkpoint-epoch3.pth"), "-d", "cpu"]) == 0
    assert "(epoch 3, 360 samples)" in capsys.readouterr().out


def test_resuming_a_finished_run_says_how_to_extend_it(two_epochs, capsys):
    checkpoint = only_run_dir(two_epochs[0]) / "checkpoint-epoch2.pth"
    assert train.main(["-r", str(checkpoint), "--set", "trainer.epochs=2"]) == 2
    assert "train further with --set trainer.epochs=12" in capsys.readouterr().err


def test_checkpoint_of_another_architecture_is_refused_in_one_line(two_epochs, capsys, monkeypatch):
    """test.py with a config whose model does not fit the weights: exit 2 and a clear line."""
    monkeypatch.chdir(PROJECT_DIR)
    checkpoint = str(only_run_dir(two_epochs[0]) / "checkpoint-epoch2.pth")
    assert test_script.main(["-r", checkpoint, "-c", TEST_CONFIG, "--set", "arch.args.channels=4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the checkpoint's weights do not fit the model built from config key 'arch'")
    assert err.count("\n") == 1


def test_smoke_run_of_the_shipped_config_leaves_nothing_behind():
    """`--smoke` on the project's own config trains two batches and cleans up: the project folder
    is unchanged (data that is not bundled is replaced by a generated sample, nothing is downloaded)."""
    before = sorted(p.relative_to(PROJECT_DIR) for p in PROJECT_DIR.rglob("*") if "__pycache__" not in p.parts)
    result = run_script("train.py", "-c", shipped_config(), "--smoke")
    assert result.returncode == 0, result.stderr
    assert "Smoke run passed" in result.stdout
    after = sorted(p.relative_to(PROJECT_DIR) for p in PROJECT_DIR.rglob("*") if "__pycache__" not in p.parts)
    assert after == before


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    config = {"name": "same", "trainer": {"save_dir": str(tmp_path)}}
    folders = {create_run_dir(config) for _ in range(5)}
    assert len(folders) == 5 and all(p.is_dir() for p in folders)
