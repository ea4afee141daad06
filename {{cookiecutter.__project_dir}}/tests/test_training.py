"""Training, resuming and evaluating work end to end, in real processes."""

import torch

from parse_config import create_run_dir
from tests.helpers import PROJECT_DIR, TEST_CONFIG, run_script, shipped_config


def only_run_dir(save_dir):
    (run_dir,) = [p for p in save_dir.glob("*/*") if p.is_dir()]
    return run_dir


def test_resume_continues_the_same_run_at_the_next_epoch(tmp_path, quick_run):
    """`-r checkpoint` picks up after the saved epoch, in the same run folder and log file."""
    first = run_script("train.py", *quick_run, "--set", "trainer.epochs=2", "--set", "trainer.save_period=1")
    assert first.returncode == 0, first.stderr
    run_dir = only_run_dir(tmp_path)
    resumed = run_script("train.py", "-r", str(run_dir / "checkpoint-epoch2.pth"), "--set", "trainer.epochs=3")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resumed after epoch 2" in resumed.stdout
    assert "epoch 3/3" in resumed.stdout and "epoch 1/" not in resumed.stdout
    assert only_run_dir(tmp_path) == run_dir
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert "epoch 1/2" in log and "epoch 3/3" in log
    assert torch.load(run_dir / "checkpoint-epoch3.pth", weights_only=True)["epoch"] == 3


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    """Stopping after epoch 2 and resuming gives bit-identical weights to training straight through."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["-c", TEST_CONFIG, "--set", "trainer.save_period=1", "--set", "trainer.epochs=3"]
    assert run_script("train.py", *common, "--set", f"trainer.save_dir={straight.as_posix()}").returncode == 0
    first = run_script(
        "train.py", *common, "--set", f"trainer.save_dir={split.as_posix()}", "--set", "trainer.epochs=2"
    )
    assert first.returncode == 0, first.stderr
    resumed = run_script(
        "train.py", "-r", str(only_run_dir(split) / "checkpoint-epoch2.pth"), "--set", "trainer.epochs=3"
    )
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(only_run_dir(straight) / "checkpoint-epoch3.pth", weights_only=True)
    b = torch.load(only_run_dir(split) / "checkpoint-epoch3.pth", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert (a["monitor_best"], a["not_improved_count"]) == (b["monitor_best"], b["not_improved_count"])


def test_resuming_a_finished_run_says_how_to_extend_it(tmp_path, quick_run):
    trained = run_script("train.py", *quick_run, "--set", "trainer.epochs=1")
    assert trained.returncode == 0, trained.stderr
    again = run_script("train.py", "-r", str(only_run_dir(tmp_path) / "checkpoint-epoch1.pth"))
    assert again.returncode == 2
    assert "train further with --set trainer.epochs=11" in again.stderr


def test_checkpoint_of_another_architecture_is_refused_in_one_line(tmp_path, quick_run):
    """test.py with a config whose model does not fit the weights: exit 2 and a clear line."""
    trained = run_script("train.py", *quick_run, "--set", "trainer.epochs=1")
    assert trained.returncode == 0, trained.stderr
    checkpoint = str(only_run_dir(tmp_path) / "checkpoint-epoch1.pth")
    result = run_script("test.py", "-r", checkpoint, "-c", TEST_CONFIG, "--set", "arch.args.channels=8")
    assert result.returncode == 2
    assert result.stderr.startswith("error: the checkpoint's weights do not fit the model built from config key 'arch'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_smoke_run_leaves_nothing_behind():
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
