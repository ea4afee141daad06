"""Runs survive signals, kills and numerical faults, and resume exactly where they stopped.

Every test here uses real training processes: real signals, real `kill -9`, real files.
"""

import os
import random
import signal
import time

import pytest
import torch

from tests.helpers import TEST_CONFIG, read_until, run_script, start_script, step_losses
from utils.checkpoint import run_checkpoints

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
# Small runs: 3 epochs of ~21 steps, every step's loss logged (verbosity 2), a checkpoint per epoch.
RUN = ["--set", "trainer.epochs=3", "--set", "trainer.save_period=1", "--set", "trainer.verbosity=2"]


def train_args(save_dir):
    return ["train.py", "-c", TEST_CONFIG, *RUN, "--set", f"trainer.save_dir={save_dir.as_posix()}"]


def final_state(save_dir):
    (run,) = [p for p in save_dir.glob("*/*") if p.is_dir()]
    return torch.load(run / "checkpoint-epoch3.pth", weights_only=True)


def epoch_lines(output: str) -> dict[int, str]:
    """The logged 'epoch N/M  loss ...' summaries, by epoch."""
    found = {}
    for line in output.splitlines():
        if line.startswith("epoch ") and "/" in line.split()[1]:
            found[int(line.split()[1].split("/")[0])] = line
    return found


def assert_same_weights(a, b):
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted reference run: its final checkpoint and every step's loss."""
    save_dir = tmp_path_factory.mktemp("reference")
    result = run_script(*train_args(save_dir))
    assert result.returncode == 0, result.stderr
    return final_state(save_dir), step_losses(result.stdout), epoch_lines(result.stdout)


@posix_only
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_epoch_saves_and_resumes_exactly(tmp_path, uninterrupted, signum, exit_code):
    """SIGTERM/SIGINT mid-epoch: a checkpoint at the next step, exit 143/130, and a resume that
    ends bit-identical to the uninterrupted run with the same loss at every step."""
    reference, reference_losses, reference_epochs = uninterrupted
    process = start_script(*train_args(tmp_path))
    before = read_until(process, "step 30 loss")
    sent = time.monotonic()
    process.send_signal(signum)
    rest, _ = process.communicate(timeout=30)
    assert process.wait() == exit_code
    assert time.monotonic() - sent < 10
    assert "resume with: python train.py -r" in rest
    (checkpoint,) = tmp_path.glob("*/*/checkpoint-epoch2-step*.pth")
    resumed = run_script("train.py", "-r", str(checkpoint))
    assert resumed.returncode == 0, resumed.stderr
    assert "samples into epoch 2" in resumed.stdout
    assert_same_weights(final_state(tmp_path), reference)
    losses = {**step_losses("".join(before) + rest), **step_losses(resumed.stdout)}
    assert losses == reference_losses
    assert epoch_lines(resumed.stdout)[2] == reference_epochs[2], "epoch 2's averages include the steps before the stop"


def test_resume_after_an_epoch_boundary_is_exact(tmp_path, uninterrupted):
    """Stopping after epoch 2 and resuming in a fresh process ends bit-identical, same losses."""
    reference, reference_losses, _ = uninterrupted
    first = run_script(*train_args(tmp_path), "--set", "trainer.epochs=2")
    assert first.returncode == 0, first.stderr
    (checkpoint,) = tmp_path.glob("*/*/checkpoint-epoch2.pth")
    resumed = run_script("train.py", "-r", str(checkpoint), "--set", "trainer.epochs=3")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(final_state(tmp_path), reference)
    assert {**step_losses(first.stdout), **step_losses(resumed.stdout)} == reference_losses


@posix_only
def test_a_signal_delivered_twice_still_saves(tmp_path):
    """Ctrl-C under torchrun reaches each process twice (terminal, then torchrun): one stop, saved."""
    process = start_script(*train_args(tmp_path))
    read_until(process, "step 5 loss")
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 130
    (checkpoint,) = tmp_path.glob("*/*/checkpoint-epoch1-step*.pth")
    torch.load(checkpoint, weights_only=True)


@posix_only
def test_a_later_second_signal_exits_at_once(monkeypatch):
    """A second signal after the first was seen ends the process at once (no waiting for a save)."""
    from utils.stop_signal import StopSignal

    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    monkeypatch.setattr(StopSignal, "SAME_REQUEST_S", 0.0)
    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert (stop.received, exits) == (signal.SIGTERM, [])
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
    assert exits == [130]


@posix_only
def test_kill_9_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL at random times, then `--resume auto`: the newest checkpoint loads, and the run
    finishes. Killed saves leave only temporary files, which the next start removes."""
    rng = random.Random(1)
    long_run = [*train_args(tmp_path), "--set", "trainer.epochs=20", "--set", "trainer.verbosity=1"]
    for trial in range(4):
        process = start_script(*long_run, *(["-r", "auto"] if trial else []))
        read_until(process, "Saved")  # at least one checkpoint exists from here on
        time.sleep(rng.uniform(0.0, 1.5))
        process.kill()
        process.communicate(timeout=30)
        (run,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
        torch.load(run_checkpoints(run)[-1], weights_only=True)
    finished = run_script(*long_run, "-r", "auto")
    assert finished.returncode == 0, finished.stderr
    assert "Resuming from" in finished.stdout and "epoch 20/20" in finished.stdout
    assert not list(tmp_path.glob("*/*/.tmp-*"))


def test_non_finite_loss_stops_with_exit_3_and_saves_nothing(tmp_path):
    """A diverging run stops at the first NaN/inf loss with one line and exit code 3."""
    result = run_script(*train_args(tmp_path), "--set", "optimizer.args.lr=1e30", "--set", "trainer.verbosity=1")
    assert result.returncode == 3
    assert result.stderr.startswith("error: loss became NaN or infinite at step ") and result.stderr.count("\n") == 1
    assert not list(tmp_path.glob("*/*/*.pth"))


def test_resume_auto_without_runs_is_an_error(tmp_path):
    result = run_script(*train_args(tmp_path), "-r", "auto")
    assert result.returncode == 2
    assert "--resume auto: no checkpoint under" in result.stderr


def test_corrupt_checkpoint_given_to_resume_is_an_error_not_a_fresh_start(tmp_path):
    bad = tmp_path / "checkpoint-epoch1.pth"
    bad.write_bytes(b"\0" * 100)
    result = run_script("train.py", "-r", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: checkpoint '{bad}' cannot be loaded")
    assert list(tmp_path.iterdir()) == [bad]


def test_keep_last_prunes_old_checkpoints_but_keeps_best(tmp_path):
    result = run_script(*train_args(tmp_path), "--set", "trainer.epochs=4", "--set", "trainer.keep_last=2")
    assert result.returncode == 0, result.stderr
    (run,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    assert sorted(p.name for p in run.glob("*.pth")) == [
        "checkpoint-epoch3.pth",
        "checkpoint-epoch4.pth",
        "model_best.pth",
    ]


def test_resuming_an_older_checkpoint_branches_into_a_new_run(tmp_path):
    """Resuming from epoch 2 of a run that reached epoch 3 never overwrites epoch 3."""
    first = run_script(*train_args(tmp_path))
    assert first.returncode == 0, first.stderr
    (run,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    epoch3 = (run / "checkpoint-epoch3.pth").read_bytes()
    resumed = run_script("train.py", "-r", str(run / "checkpoint-epoch2.pth"))
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "checkpoint-epoch3.pth").read_bytes() == epoch3
    assert len([p for p in tmp_path.glob("*/*") if p.is_dir()]) == 2


def test_two_runs_started_together_get_separate_folders(tmp_path):
    processes = [start_script(*train_args(tmp_path), "--set", "trainer.epochs=1") for _ in range(2)]
    for process in processes:
        process.communicate(timeout=120)
        assert process.returncode == 0
    runs = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    assert len(runs) == 2
    assert all((run / "checkpoint-epoch1.pth").is_file() for run in runs)


def test_changed_learning_rate_on_resume_is_applied(tmp_path):
    """`--lr` with `-r` takes effect on top of the restored optimizer state (and is logged)."""
    first = run_script(*train_args(tmp_path), "--set", "trainer.epochs=1")
    assert first.returncode == 0, first.stderr
    (checkpoint,) = tmp_path.glob("*/*/checkpoint-epoch1.pth")
    resumed = run_script("train.py", "-r", str(checkpoint), "--lr", "0.0005", "--set", "trainer.epochs=2")
    assert resumed.returncode == 0, resumed.stderr
    assert "Applying changed optimizer args {'lr': 0.0005}" in resumed.stdout
    state = torch.load(checkpoint.parent / "checkpoint-epoch2.pth", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.0005


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
