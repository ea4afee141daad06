"""Runs survive signals, kills and numerical faults, and resume exactly where they stopped.

The slow tests here run real `python train.py` processes and send them real signals and real
`kill -9`; the others call train.main() in this process, with real files.
"""

import os
import random
import signal
import time

import pytest
import torch

import train
from tests.helpers import (
    PROJECT_DIR,
    TEST_CONFIG,
    finish,
    only_run_dir,
    read_until,
    run_script,
    same_weights,
    start_script,
    step_losses,
)
from utils.checkpoint import run_checkpoints

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
# Small runs: 3 epochs of 21 steps, every step's loss logged (verbosity 2), a checkpoint per epoch.
RUN = ["--set", "trainer.epochs=3", "--set", "trainer.save_period=1", "--set", "trainer.verbosity=2"]


def train_args(save_dir):
    return ["train.py", "-c", TEST_CONFIG, *RUN, "--set", f"trainer.save_dir={save_dir.as_posix()}"]


def final_state(save_dir):
    return torch.load(only_run_dir(save_dir) / "checkpoint-epoch3.pth", weights_only=True)


@pytest.fixture(autouse=True)
def in_project_dir(monkeypatch):
    monkeypatch.chdir(PROJECT_DIR)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted reference run in a real process: its final checkpoint and every step's loss."""
    save_dir = tmp_path_factory.mktemp("reference")
    result = run_script(*train_args(save_dir))
    assert result.returncode == 0, result.stderr
    return final_state(save_dir), step_losses(result.stdout)


@pytest.mark.slow
@posix_only
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_a_real_process_saves_and_resumes_exactly(tmp_path, uninterrupted, signum, exit_code):
    """SIGTERM/SIGINT mid-epoch: a checkpoint at the next step, exit 143/130 within seconds, and a
    resumed process ends bit-identical to the uninterrupted run with the same loss at every step."""
    reference, reference_losses = uninterrupted
    process = start_script(*train_args(tmp_path))
    before = read_until(process, "step 30 loss")
    sent = time.monotonic()
    process.send_signal(signum)
    rest = finish(process, timeout=30)
    assert process.wait() == exit_code
    assert time.monotonic() - sent < 10
    assert "resume with: python train.py -r" in rest
    (checkpoint,) = tmp_path.glob("*/*/checkpoint-epoch2-step*.pth")
    resumed = run_script("train.py", "-r", str(checkpoint))
    assert resumed.returncode == 0, resumed.stderr
    assert "samples into epoch 2" in resumed.stdout
    assert same_weights(final_state(tmp_path)["state_dict"], reference["state_dict"])
    assert {**step_losses("".join(before) + rest), **step_losses(resumed.stdout)} == reference_losses


@pytest.mark.slow
@posix_only
def test_a_signal_delivered_twice_still_saves(tmp_path):
    """Ctrl-C under torchrun reaches each process twice (terminal, then torchrun): one stop, saved."""
    process = start_script(*train_args(tmp_path))
    read_until(process, "step 5 loss")
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)
    finish(process, timeout=30)
    assert process.returncode == 130
    (checkpoint,) = tmp_path.glob("*/*/checkpoint-epoch1-step*.pth")
    torch.load(checkpoint, weights_only=True)


@posix_only
def test_a_later_second_signal_still_saves_and_a_third_exits_at_once(monkeypatch, capfd):
    """A signal after the first burst is still the same stop (the checkpoint gets written); one
    more ends the process at once, for a run that must go now."""
    from utils.runtime import StopSignal

    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    monkeypatch.setattr(StopSignal, "SAME_REQUEST_S", 0.0)
    with StopSignal() as stop:
        for signum in (signal.SIGTERM, signal.SIGINT):
            os.kill(os.getpid(), signum)
            time.sleep(0.01)
        assert (stop.received, exits) == (signal.SIGTERM, [])
        assert "signal once more to quit without saving" in capfd.readouterr().err
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
    assert exits == [130]


@pytest.mark.slow
@posix_only
def test_kill_9_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL at random times, then `--resume auto`: the newest checkpoint loads, and the run
    finishes. Killed saves leave only temporary files, which the next start removes."""
    rng = random.Random(1)
    endless = [*train_args(tmp_path), "--set", "trainer.epochs=100000", "--set", "trainer.verbosity=1"]
    for trial in range(4):
        process = start_script(*endless, *(["-r", "auto"] if trial else []))
        read_until(process, "Saved")  # at least one checkpoint exists from here on
        time.sleep(rng.uniform(0.0, 1.5))
        process.kill()
        finish(process, timeout=30)
        newest = torch.load(run_checkpoints(only_run_dir(tmp_path))[-1], weights_only=True)
    last = newest["epoch"] + 2
    finished = run_script(*train_args(tmp_path), "--set", f"trainer.epochs={last}", "-r", "auto")
    assert finished.returncode == 0, finished.stderr
    assert "Resuming from" in finished.stdout and f"epoch {last}/{last}" in finished.stdout
    assert not list(tmp_path.glob("*/*/.tmp-*"))


@pytest.mark.slow
@posix_only
def test_kill_9_during_the_first_save_leaves_no_file_once_the_next_run_starts(tmp_path):
    """A run killed while writing its first checkpoint is never resumed: the next run under the
    same save_dir/name removes its partial file (a live run's are left alone: it holds its folder)."""
    ballast = ["--set", "arch.type=tests.parts.BallastNet", "--set", "arch.args={}"]  # 100 MB to write
    process = start_script(*train_args(tmp_path), *ballast)
    while not list(tmp_path.glob("*/*/.tmp-*.pth")):
        assert process.poll() is None
        time.sleep(0.001)
    process.kill()
    finish(process, timeout=30)
    assert list(tmp_path.glob("*/*/.tmp-*.pth")) and not list(tmp_path.glob("*/*/checkpoint-*.pth"))
    result = run_script(*train_args(tmp_path), "--set", "trainer.epochs=1")
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.glob("*/*/.tmp-*")) and "left by a run killed while saving" in result.stdout


def test_non_finite_loss_exits_3_with_one_line_and_saves_nothing(tmp_path, capsys):
    code = train.main([*train_args(tmp_path)[1:], "--set", "optimizer.args.lr=1e30", "--set", "optimizer.type=SGD"])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("error: loss became NaN or infinite at step ") and err.count("\n") == 1
    assert not list(tmp_path.glob("*/*/*.pth"))


def test_resume_auto_without_runs_is_an_error(tmp_path, capsys):
    assert train.main([*train_args(tmp_path)[1:], "-r", "auto"]) == 2
    assert "--resume auto: no checkpoint under" in capsys.readouterr().err


def test_corrupt_checkpoint_given_to_resume_is_an_error_not_a_fresh_start(tmp_path, capsys):
    bad = tmp_path / "checkpoint-epoch1.pth"
    bad.write_bytes(b"\0" * 100)
    assert train.main(["-r", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: checkpoint '{bad}' cannot be loaded")
    assert list(tmp_path.iterdir()) == [bad]


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    """A 3-epoch run with keep_last 2, trained in this process."""
    save_dir = tmp_path_factory.mktemp("three")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_DIR)
        assert train.main([*train_args(save_dir)[1:], "--set", "trainer.keep_last=2"]) == 0
    return only_run_dir(save_dir)


def test_keep_last_prunes_old_checkpoints_but_keeps_best(three_epochs):
    names = sorted(p.name for p in three_epochs.glob("*.pth"))
    assert names == ["checkpoint-epoch2.pth", "checkpoint-epoch3.pth", "model_best.pth"]


def test_resuming_an_older_checkpoint_branches_into_a_new_run(three_epochs):
    """Resuming from epoch 2 of a run that reached epoch 3 never overwrites epoch 3."""
    epoch3 = (three_epochs / "checkpoint-epoch3.pth").read_bytes()
    assert train.main(["-r", str(three_epochs / "checkpoint-epoch2.pth")]) == 0
    assert (three_epochs / "checkpoint-epoch3.pth").read_bytes() == epoch3
    assert len([p for p in three_epochs.parent.iterdir() if p.is_dir()]) == 2


def test_changed_learning_rate_on_resume_is_applied(three_epochs, capsys):
    """`--lr` with `-r` takes effect on top of the restored optimizer state (and is logged)."""
    checkpoint = three_epochs / "checkpoint-epoch3.pth"
    assert train.main(["-r", str(checkpoint), "--lr", "0.0005", "--set", "trainer.epochs=4"]) == 0
    out = capsys.readouterr().out
    assert "Applied the changed optimizer.args.lr to 0.0005 on resume" in out
    assert " lr 0.0005 " in out.split("epoch 4/4")[1].splitlines()[0]


@pytest.mark.slow
def test_two_runs_started_together_get_separate_folders(tmp_path):
    processes = [start_script(*train_args(tmp_path), "--set", "trainer.epochs=1") for _ in range(2)]
    for process in processes:
        finish(process, timeout=120)
        assert process.returncode == 0
    runs = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    assert len(runs) == 2 and all((run / "checkpoint-epoch1.pth").is_file() for run in runs)


def test_checkpoints_sort_by_progress_whatever_the_number_of_processes(tmp_path):
    """Mid-epoch names carry the global step, which only grows: -r auto finds the latest."""
    names = [
        "checkpoint-epoch2.pth",
        "checkpoint-epoch2-step38.pth",
        "checkpoint-epoch1.pth",
        "checkpoint-epoch2-step34.pth",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in run_checkpoints(tmp_path)] == [
        "checkpoint-epoch1.pth",
        "checkpoint-epoch2-step34.pth",
        "checkpoint-epoch2-step38.pth",
        "checkpoint-epoch2.pth",
    ]
