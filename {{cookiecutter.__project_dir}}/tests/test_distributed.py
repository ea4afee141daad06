"""Multi-process DDP with real torchrun (gloo on the CPU), and torch.compile. All slow."""

import os
import re
import shutil
import signal
import time

import pytest
import torch

from tests.helpers import (
    TEST_CONFIG,
    TORCHRUN,
    build_trainer,
    finish,
    only_run_dir,
    read_until,
    run_script,
    same_weights,
    start_script,
    step_losses,
    torchrun,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed"),
]


def test_two_processes_train_validate_checkpoint_and_resume_with_any_count(tmp_path, quick_run):
    """torchrun with 2 CPU processes: one run folder, global metrics, plain checkpoints, and
    resume both in 2 processes and in 1 (a different world size)."""
    result = torchrun("train.py", *quick_run, "--set", "trainer.epochs=2")
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    assert result.stdout.count("epoch 2/2") == 1, "only the main process logs"
    checkpoint = torch.load(run / "checkpoint-epoch2.pth", weights_only=True)
    assert checkpoint["world_size"] == 2
    assert not any(key.startswith("module.") for key in checkpoint["state_dict"])
    assert checkpoint["global_step"] == 2 * 11  # 1,293 training samples in global batches of 2 x 64
    first, second = checkpoint["rng"]["torch"]  # each process's own random state: its own dropout masks
    assert not torch.equal(first, second)
    resumed = torchrun("train.py", "-r", str(run / "checkpoint-epoch2.pth"), "--set", "trainer.epochs=3")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    single = run_script("train.py", "-r", str(run / "checkpoint-epoch3.pth"), "--set", "trainer.epochs=4")
    assert single.returncode == 0, single.stderr
    assert torch.load(run / "checkpoint-epoch4.pth", weights_only=True)["global_step"] == 33 + 21


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
@pytest.mark.parametrize("kind", ["Trainer", "tests.parts.StepOnlyTrainer"])
def test_sigterm_to_torchrun_saves_and_resumes_exactly(tmp_path, kind):
    """SIGTERM to torchrun mid-epoch: both processes stop at the same step, the main one saves,
    and a resumed 2-process run ends bit-identical to an uninterrupted one, also with a trainer
    that overrides only its training step."""
    common = [
        "-c",
        TEST_CONFIG,
        "--set",
        "trainer.epochs=2",
        "--set",
        "trainer.verbosity=2",
        "--set",
        f"trainer.type={kind}",
    ]
    common += ["--set", "trainer.monitor=min val_loss"]
    reference = torchrun("train.py", *common, "--set", f"trainer.save_dir={(tmp_path / 'ref').as_posix()}")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    process = start_script(
        "train.py", *common, "--set", f"trainer.save_dir={(tmp_path / 'run').as_posix()}", command=TORCHRUN
    )
    for line in process.stdout:
        if "step 3 loss" in line:
            process.send_signal(signal.SIGTERM)
            break
    output = finish(process, timeout=120)
    # what README.md tells a batch scheduler to expect: torchrun's 1, the first process's one line
    assert process.returncode == 1 and "SignalException" in output, output
    assert output.count("stopped by SIGTERM; resume with: python train.py -r") == 1, output
    # processes agree on stopping every 10 steps: at step 10, or later on a loaded machine
    (checkpoint,) = (tmp_path / "run").glob("*/*/checkpoint-epoch*-step*.pth")
    stopped_at = int(checkpoint.stem.rpartition("step")[2])
    assert stopped_at % 10 == 0
    resumed = torchrun("train.py", "-r", str(checkpoint))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (a,) = (tmp_path / "ref").glob("*/*/checkpoint-epoch2.pth")
    (b,) = (tmp_path / "run").glob("*/*/checkpoint-epoch2.pth")
    assert same_weights(torch.load(a, weights_only=True)["state_dict"], torch.load(b, weights_only=True)["state_dict"])
    assert {k: v for k, v in step_losses(reference.stdout).items() if k > stopped_at} == step_losses(resumed.stdout)


def test_compiled_model_trains_and_saves_plain_weights(tmp_path):
    """trainer.compile=true trains through torch.compile; checkpoints hold the plain model's keys."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on the CPU needs a C compiler")
    trainer = build_trainer("trainer.compile=true", "trainer.epochs=1")
    log = trainer.train(tmp_path)
    assert log["loss"] > 0 and trainer.model is not trainer.raw_model
    saved = torch.load(tmp_path / "checkpoint-epoch1.pth", weights_only=True)
    assert set(saved["state_dict"]) == set(trainer.raw_model.state_dict())


def test_a_failed_save_on_the_main_process_ends_every_process_with_one_message(tmp_path):
    """The main process alone writes checkpoints; when a write fails (here its run folder is
    moved away), every process stops within seconds, and only the main one says why."""
    sets = ["trainer.epochs=1000", f"trainer.save_dir={tmp_path.as_posix()}"]
    process = start_script(
        "train.py", "-c", TEST_CONFIG, *(arg for s in sets for arg in ("--set", s)), command=TORCHRUN
    )
    read_until(process, "checkpoint-epoch1.pth")
    only_run_dir(tmp_path).rename(tmp_path / "moved away")  # (atomic: rmtree could race a write)
    removed = time.monotonic()
    output = finish(process, timeout=120)
    assert process.returncode != 0
    assert time.monotonic() - removed < 30, "the next epoch's save fails, and all stop soon after"
    assert output.count("error: could not write checkpoint") == 1, output
    assert "DistBackendError" not in output and "Connection closed" not in output, output
    # torchrun's report: each process ended by itself with exit code 2, none had to be killed
    assert sorted(re.findall(r"^\s*exitcode\s*:\s*(-?\d+)", output, re.MULTILINE)) == ["2", "2"], output


def test_a_config_error_under_torchrun_is_printed_once(tmp_path):
    """Every process finds the same mistake; only the first one prints it."""
    result = torchrun("train.py", "-c", TEST_CONFIG, "--set", "optimizer.args.lr=-1")
    assert result.stderr.count("error: config key 'optimizer.args.lr'") == 1, result.stderr


def test_a_mistake_on_one_process_alone_is_printed_by_it_and_ends_all():
    """The dry run fails on the second process only: it says why (naming itself), the others
    stop quietly, and nobody waits for the others."""
    result = torchrun("train.py", "-c", TEST_CONFIG, "--set", "loss=tests.parts.loss_failing_on_rank_1")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: [rank 1] config key 'loss'"), result.stderr
    # the second process ends with 2; torchrun may end the first before it is done
    assert "2" in re.findall(r"^\s*exitcode\s*:\s*(-?\d+)", result.stderr, re.MULTILINE)
