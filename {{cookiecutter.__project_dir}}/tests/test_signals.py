"""Signals as clusters send them, to real `python train.py` processes with DataLoader workers:
to the main process or to the whole process group, twice in a row, or during a save. Always a
checkpoint that resumes, exit code 143/130 (75 for SIGUSR1: requeue), and no traceback."""

import os
import signal
import time

import pytest

from tests.helpers import TEST_CONFIG, finish, only_run_dir, read_until, run_script, start_script
from utils.checkpoint import load_checkpoint, run_checkpoints

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")]
WORKERS = ["--set", "data_loader.type=tests.parts.AugmentedDigits", "--set", "data_loader.args.num_workers=2"]
BALLAST = ["--set", "arch.type=tests.parts.BallastNet", "--set", "arch.args={}"]  # 100 MB checkpoints
# name: (extra arguments, log line to wait for, whole group?, signals sent, expected exit code)
CASES = {
    "sigterm-to-the-group": (WORKERS, "step 5 loss", True, [signal.SIGTERM], 143),
    "sigint-to-the-group": (WORKERS, "step 5 loss", True, [signal.SIGINT], 130),
    "sigusr1-to-the-group": (WORKERS, "step 5 loss", True, [signal.SIGUSR1], 75),
    "sigterm-twice-to-the-group": (WORKERS, "step 5 loss", True, [signal.SIGTERM, signal.SIGTERM], 143),
    "sigterm-to-the-main-process": (WORKERS, "step 5 loss", False, [signal.SIGTERM], 143),
    "sigterm-during-a-save": (BALLAST, "epoch 1/", False, [signal.SIGTERM], 143),
    "sigterm-twice-during-a-save": (BALLAST, "epoch 1/", True, [signal.SIGTERM, signal.SIGTERM], 143),
}


def train_args(save_dir):
    settings = ["trainer.epochs=1000", "trainer.verbosity=2", f"trainer.save_dir={save_dir.as_posix()}"]
    return ["train.py", "-c", TEST_CONFIG, *(arg for s in settings for arg in ("--set", s))]


@pytest.mark.parametrize("case", list(CASES))
def test_signals_save_a_checkpoint_that_resumes(tmp_path, case):
    extra, marker, group, signals, exit_code = CASES[case]
    process = start_script(*train_args(tmp_path), *extra, group=group)
    read_until(process, marker)
    for signum in signals:
        os.killpg(process.pid, signum) if group else process.send_signal(signum)
        time.sleep(0.05)
    output = finish(process, timeout=60)
    assert process.returncode == exit_code, output
    assert "Traceback" not in output and output.count("resume with: python train.py -r") == 1, output
    newest = run_checkpoints(only_run_dir(tmp_path))[-1]
    assert load_checkpoint(newest)["global_step"] > 0
    assert not list(tmp_path.glob("*/*/.tmp-*"))


def test_a_resumed_run_after_a_group_signal_finishes(tmp_path):
    """The checkpoint a whole-group SIGTERM left behind trains on to the end with `-r auto`."""
    process = start_script(*train_args(tmp_path), *WORKERS, group=True)
    read_until(process, "step 5 loss")
    os.killpg(process.pid, signal.SIGTERM)
    finish(process, timeout=60)
    resumed = run_script(*train_args(tmp_path), *WORKERS, "--set", "trainer.epochs=2", "-r", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 2/2" in resumed.stdout


@pytest.mark.parametrize(
    "mistake, exit_code",
    [(["--set", "lr_scheduler.args.step_size=0"], 2), (["--set", "loss=tests.parts.loss_with_a_bug"], 1)],
    ids=["refused-config", "bug-in-the-users-loss"],
)
def test_an_error_exit_with_worker_processes_ends_at_once(tmp_path, mistake, exit_code):
    """Worker processes ignore stop signals; a run that ends in an error still takes them along
    instead of waiting for them forever, and ending them adds no second, false error."""
    result = run_script(*train_args(tmp_path), *WORKERS, *mistake, timeout=60)
    err = result.stderr
    assert result.returncode == exit_code, err
    assert err.count("Traceback") == (exit_code == 1) and "killed by signal" not in err, err
