"""One writer per run folder: a second train.py into a run that is still training (`-r auto`, or
`-r` with its latest checkpoint) is refused in one line naming the process that holds it, and
the lock goes with the process, however it ends."""

import os
import signal
import subprocess
import sys

import pytest

import train
from tests.helpers import PROJECT_DIR, TEST_CONFIG, build_trainer

HOLD = """import sys, time
from utils.checkpoint import lock_run_dir
with lock_run_dir(sys.argv[1]):
    print('held', flush=True)
    time.sleep(120)
"""


@pytest.fixture(autouse=True)
def in_project_dir(monkeypatch):
    monkeypatch.chdir(PROJECT_DIR)


def trained_run(save_dir):
    """A run folder with one checkpoint, under `save_dir`."""
    folder = save_dir / "Tests" / "20260101-000000"
    folder.mkdir(parents=True)
    build_trainer("trainer.epochs=1").train(folder)
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("saved"))


def hold(run_dir) -> subprocess.Popen:
    """Another process holding the run folder, as a live train.py does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "held\n"
    return process


@pytest.fixture(scope="module")
def holder(run_dir):
    process = hold(run_dir)
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("how", ["-r auto", "-r latest checkpoint"])
def test_a_second_writer_is_refused_naming_the_first(run_dir, holder, capsys, how):
    resume = "auto" if how == "-r auto" else str(run_dir / "checkpoint-epoch1.pth")
    args = ["-c", TEST_CONFIG, "--set", f"trainer.save_dir={run_dir.parents[1].as_posix()}"]
    code = train.main([*args, "--set", "trainer.epochs=2", "-r", resume])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"run folder '{run_dir}' is in use by train.py (pid {holder.pid} on " in err
    assert not (run_dir / "checkpoint-epoch2.pth").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_the_lock_dies_with_its_process(tmp_path):
    """kill -9 leaves no stale lock: the operating system releases it."""
    run_dir = trained_run(tmp_path)
    holder = hold(run_dir)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    args = ["-c", TEST_CONFIG, "--set", f"trainer.save_dir={run_dir.parents[1].as_posix()}"]
    assert train.main([*args, "--set", "trainer.epochs=2", "-r", "auto"]) == 0
    assert (run_dir / "checkpoint-epoch2.pth").is_file()
