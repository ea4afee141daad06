"""Every stop point resumes and continues bit-identically on the CPU: the first, a middle and the
last batch of an epoch, with gradient accumulation, and with a user's loader that augments at
random in DataLoader worker processes (tests/parts.py). Real trainers, signals and files."""

import os
import signal

import pytest

from tests.helpers import build_trainer, same_weights, signal_at_loss_call
from utils.checkpoint import load_checkpoint
from utils.runtime import Interrupted

posix_only = pytest.mark.skipif(os.name != "posix", reason="needs SIGUSR1")
SETUPS = {
    "accumulate": ["trainer.accumulate=2"],
    "workers-and-augmentation": ["data_loader.type=tests.parts.AugmentedDigits", "data_loader.args.num_workers=2"],
    "augmentation-in-this-process": ["data_loader.type=tests.parts.AugmentedDigits", "data_loader.args.num_workers=0"],
}
# The n-th training loss of the run: 21 batches per epoch.
STOPS = {"first-batch": 1, "last-batch": 21, "mid-epoch": 30}


def trainer_of(setup: str):
    return build_trainer("trainer.epochs=2", *SETUPS[setup])


@pytest.fixture(scope="module", params=list(SETUPS))
def reference(request, tmp_path_factory):
    """An uninterrupted 2-epoch run of each setup: its last log and final weights."""
    trainer = trainer_of(request.param)
    log = trainer.train(tmp_path_factory.mktemp("reference"))
    return request.param, log, trainer.raw_model.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("stop", list(STOPS))
def test_any_stop_point_resumes_bit_identically(reference, tmp_path, stop):
    setup, reference_log, reference_weights = reference
    interrupted = trainer_of(setup)
    signal_at_loss_call(interrupted, STOPS[stop])
    with pytest.raises(Interrupted):
        interrupted.train(tmp_path)
    (checkpoint,) = tmp_path.glob("checkpoint-epoch*-step*.pth")
    resumed = trainer_of(setup)
    resumed.load_state_dict(load_checkpoint(checkpoint))
    log = resumed.train(tmp_path)
    assert same_weights(resumed.raw_model.state_dict(), reference_weights)
    assert log == reference_log


def test_augmentation_in_workers_follows_the_sample_not_the_worker(tmp_path):
    """Each sample's random augmentation comes from its place in the epoch: 1 or 3 worker
    processes load the same batches, so a run does not depend on how many there are."""
    batches = []
    for workers in (1, 2):
        loader = build_trainer(*SETUPS["workers-and-augmentation"], f"data_loader.args.num_workers={workers}")
        batches.append([images for images, _ in loader.data_loader][:5])
    assert all(a.equal(b) for a, b in zip(*batches, strict=True))


@posix_only
def test_sigusr1_saves_and_asks_for_a_requeue(tmp_path):
    """SIGUSR1, a batch scheduler's warning before the time limit: save, then exit code 75."""
    trainer = build_trainer()
    signal_at_loss_call(trainer, 5, signal.SIGUSR1)
    with pytest.raises(Interrupted, match="stopped by SIGUSR1") as stopped:
        trainer.train(tmp_path)
    assert stopped.value.exit_code == 75
    assert load_checkpoint(tmp_path / "checkpoint-epoch1-step5.pth")["global_step"] == 5
