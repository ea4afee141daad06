"""slurm/train.sbatch, run by bash as SLURM runs it, with a stand-in `scontrol` that records its
arguments: the time-limit warning (SIGUSR1 to the batch script) saves a checkpoint and requeues
the job, and the requeued job continues from it with `-r auto`."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_DIR, TEST_CONFIG, finish, read_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix" or shutil.which("bash") is None, reason="needs bash and POSIX signals"),
]


def sbatch(tmp_path, *args: str, restarts: int = 0) -> subprocess.Popen:
    """Start the batch script as SLURM would, in job 4242 after `restarts` requeues."""
    bin_dir = tmp_path / "bin"
    if not bin_dir.is_dir():
        bin_dir.mkdir()
        (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
        (bin_dir / "scontrol").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "LAUNCHER": sys.executable,
        "SLURM_JOB_ID": "4242",
        "SLURM_RESTART_COUNT": str(restarts),
        "SAVE_DIR": (tmp_path / "saved").as_posix(),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    sets = ["trainer.verbosity=2", *args]
    command = ["bash", "slurm/train.sbatch", "-c", TEST_CONFIG, *(arg for s in sets for arg in ("--set", s))]
    return subprocess.Popen(
        command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_the_time_limit_warning_saves_requeues_and_the_requeued_job_resumes(tmp_path):
    (tmp_path / "saved" / "job999" / "20260101-000000").mkdir(parents=True)  # another job's run
    job = sbatch(tmp_path, "trainer.epochs=1000")
    read_until(job, "step 5 loss")
    job.send_signal(signal.SIGUSR1)  # --signal=B:USR1@90 signals the batch script alone
    output = finish(job, timeout=60)
    assert job.returncode == 75, output
    assert "Traceback" not in output and "stopped by SIGUSR1" in output
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    assert list((tmp_path / "saved" / "job4242").glob("*/checkpoint-epoch1-step*.pth"))

    requeued = sbatch(tmp_path, "trainer.epochs=2", restarts=1)
    output = finish(requeued, timeout=300)
    assert requeued.returncode == 0, output
    assert "Resuming from" in output and "samples into epoch 1" in output and "epoch 2/2" in output
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n", "a finished job is not requeued"


def test_a_job_requeued_before_its_first_checkpoint_starts_afresh(tmp_path):
    """Preempted before it saved anything: the requeued job trains from the start (no -r auto,
    which would refuse: there is no checkpoint of this job to continue)."""
    job = sbatch(tmp_path, "trainer.epochs=1", restarts=1)
    output = finish(job, timeout=300)
    assert job.returncode == 0, output
    assert "Resuming from" not in output and "epoch 1/1" in output
