"""Mixed precision, gradient accumulation, clipping, torch.compile and multi-process DDP."""

import copy
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

from data_loader.digits import DigitsDataLoader
from model.loss import cross_entropy
from model.metric import accuracy
from parse_config import load_config
from tests.helpers import PROJECT_DIR, TEST_CONFIG, run_script, step_losses
from trainer import Trainer

CONFIG = load_config(PROJECT_DIR / TEST_CONFIG)


def real_trainer(tmp_path, model, loader, optimizer, **trainer_settings) -> Trainer:
    """A real Trainer with the default config's trainer settings, saving into `tmp_path`."""
    config = copy.deepcopy(CONFIG)
    config["trainer"].update(save_dir=str(tmp_path), tensorboard=False, **trainer_settings)
    valid = loader.split_validation()
    return Trainer(
        model,
        cross_entropy,
        [accuracy],
        optimizer,
        config,
        torch.device("cpu"),
        data_loader=loader,
        valid_data_loader=valid,
    )


def tiny_trainer(tmp_path, batch_size=64, **trainer_settings):
    """A Trainer on the bundled data with a small model without dropout or batch norm."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    loader = DigitsDataLoader(str(PROJECT_DIR / "data"), batch_size=batch_size, validation_split=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return real_trainer(tmp_path, model, loader, optimizer, epochs=1, **trainer_settings)


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path):
    """accumulate=2 with batch 32 takes the same optimizer steps as batch 64."""
    full = tiny_trainer(tmp_path / "a", batch_size=64)
    halves = tiny_trainer(tmp_path / "b", batch_size=32, accumulate=2)
    full.train(tmp_path)
    halves.train(tmp_path)
    assert full.global_step == halves.global_step
    for a, b in zip(full.model.parameters(), halves.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_clipping_bounds_the_gradient_norm_and_logs_it(tmp_path):
    """With trainer.clip_grad_norm, each step uses gradients of at most that norm."""
    trainer = tiny_trainer(tmp_path, clip_grad_norm=0.05)
    norms = []
    real_step = trainer.optimizer.step

    def step_recording_norm(*args, **kwargs):
        norms.append(torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters()]).item())
        return real_step(*args, **kwargs)

    trainer.optimizer.step = step_recording_norm
    log = trainer.train(tmp_path)
    assert norms and max(norms) <= 0.05 * 1.0001
    assert log["grad_norm"] > 0.05  # the logged norm is the one before clipping


def test_bf16_mixed_precision_trains_on_cpu(tmp_path, quick_run):
    """trainer.amp=bf16 runs the forward pass in bfloat16 and still learns."""
    result = run_script("train.py", *quick_run, "--set", "trainer.epochs=2", "--set", "trainer.amp=bf16")
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split("val_accuracy ")[-1].split()[0]) > 0.9


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed with CUDA")
def test_fp16_without_cuda_is_a_config_error(tmp_path, quick_run):
    result = run_script("train.py", *quick_run, "--set", "trainer.amp=fp16")
    assert result.returncode == 2
    assert "config key 'trainer.amp': fp16 needs a CUDA device" in result.stderr
    assert not any(tmp_path.iterdir())


def test_compiled_model_trains_and_saves_plain_weights(tmp_path):
    """trainer.compile=true trains through torch.compile; checkpoints hold the plain model's keys."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on the CPU needs a C compiler")
    trainer = tiny_trainer(tmp_path, compile=True, save_period=1)
    log = trainer.train(tmp_path)
    assert log["loss"] > 0 and trainer.train_model is not trainer.model
    saved = torch.load(tmp_path / "checkpoint-epoch1.pth", weights_only=True)
    assert set(saved["state_dict"]) == set(trainer.model.state_dict())


def torchrun(*args, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    return subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_process_ddp_trains_validates_checkpoints_and_resumes(tmp_path, quick_run):
    """torchrun with 2 CPU processes (gloo): one run folder, global metrics, plain checkpoints, and
    resume both in 2 processes and in 1 (a different world size)."""
    result = torchrun("train.py", *quick_run, "--set", "trainer.epochs=2", "--set", "trainer.save_period=1")
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    assert result.stdout.count("epoch 2/2") == 1, "only the main process logs"
    assert "val_accuracy" in result.stdout
    checkpoint = torch.load(run / "checkpoint-epoch2.pth", weights_only=True)
    assert checkpoint["world_size"] == 2
    assert not any(key.startswith("module.") for key in checkpoint["state_dict"])
    assert checkpoint["global_step"] == 2 * 11  # 1,293 training samples in global batches of 2 x 64
    resumed = torchrun("train.py", "-r", str(run / "checkpoint-epoch2.pth"), "--set", "trainer.epochs=3")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "epoch 3/3" in resumed.stdout
    single = run_script("train.py", "-r", str(run / "checkpoint-epoch3.pth"), "--set", "trainer.epochs=4")
    assert single.returncode == 0, single.stderr
    assert torch.load(run / "checkpoint-epoch4.pth", weights_only=True)["global_step"] == 33 + 21


class PlainDigits(torch.utils.data.Dataset):
    """The bundled digits as an ordinary Dataset, the path a user's own data takes; it can send
    this process a real SIGTERM when it has served `stop_after` samples."""

    def __init__(self, stop_after: int | None = None) -> None:
        loader = DigitsDataLoader(str(PROJECT_DIR / "data"), batch_size=64)
        self.images, self.labels = loader.dataset.tensors
        self.stop_after, self.served = stop_after, 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        self.served += 1
        if self.served == self.stop_after:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.images[index], self.labels[index]


def plain_trainer(tmp_path, dataset):
    from base import BaseDataLoader
    from model.model import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(dropout=0.5)
    loader = BaseDataLoader(dataset, batch_size=64, validation_split=0.1, seed=0)
    return real_trainer(tmp_path, model, loader, torch.optim.AdamW(model.parameters(), lr=0.003), epochs=2)


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_own_dataset_resumes_exactly_after_a_signal_mid_epoch(tmp_path):
    """With a plain Dataset (torch's DataLoader underneath), stop by SIGTERM in epoch 2 and resume
    in fresh objects: the weights end bit-identical to an uninterrupted run."""
    from utils.checkpoint import load_checkpoint
    from utils.errors import Interrupted

    reference = plain_trainer(tmp_path / "reference", PlainDigits())
    (tmp_path / "reference").mkdir()
    reference.train(tmp_path / "reference")

    (tmp_path / "run").mkdir()
    interrupted = plain_trainer(tmp_path / "run", PlainDigits(stop_after=1437 + 64 * 7))
    with pytest.raises(Interrupted) as stopped:
        interrupted.train(tmp_path / "run")
    assert stopped.value.exit_code == 143
    (checkpoint,) = (tmp_path / "run").glob("checkpoint-epoch2-step*.pth")

    resumed = plain_trainer(tmp_path / "run", PlainDigits())
    resumed.resume(load_checkpoint(checkpoint))
    resumed.train(tmp_path / "run")
    for a, b in zip(reference.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_ddp_run_stopped_by_sigterm_resumes_exactly(tmp_path):
    """SIGTERM to torchrun mid-epoch: both processes stop at the same step, the main one saves,
    and a resumed 2-process run ends bit-identical to an uninterrupted one."""
    common = ["-c", TEST_CONFIG, "--set", "trainer.epochs=2", "--set", "trainer.verbosity=2"]
    reference = torchrun("train.py", *common, "--set", f"trainer.save_dir={(tmp_path / 'ref').as_posix()}")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    save = ["--set", f"trainer.save_dir={(tmp_path / 'run').as_posix()}"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py"]
    process = subprocess.Popen(
        [*command, *common, *save],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in process.stdout:
        if "step 3 loss" in line:
            process.send_signal(signal.SIGTERM)
            break
    process.communicate(timeout=120)
    (checkpoint,) = (tmp_path / "run").glob("*/*/checkpoint-epoch1-step10.pth")
    resumed = torchrun("train.py", "-r", str(checkpoint))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (a,) = (tmp_path / "ref").glob("*/*/checkpoint-epoch2.pth")
    (b,) = (tmp_path / "run").glob("*/*/checkpoint-epoch2.pth")
    a, b = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    reference_losses = step_losses(reference.stdout)
    assert {k: v for k, v in reference_losses.items() if k > 10} == step_losses(resumed.stdout)
