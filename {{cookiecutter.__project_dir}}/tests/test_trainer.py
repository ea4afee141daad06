"""Every trainer keeps the loop's guarantees: the default one, and a user's that overrides only
`training_step` (tests/parts.py). Real trainers, real signals, real checkpoint files."""

import signal

import pytest
import torch

from tests.helpers import build_trainer, same_weights, signal_at_loss_call
from utils.checkpoint import load_checkpoint
from utils.runtime import Interrupted, NonFiniteLoss

TRAINERS = ["Trainer", "tests.parts.StepOnlyTrainer"]
STEPS_PER_EPOCH = 21  # 1,293 training samples in batches of 64


def trainer_of(kind: str, *assignments: str):
    # A trainer whose steps return no output and target computes no metrics: it monitors the loss.
    monitor = "max val_accuracy" if kind == "Trainer" else "min val_loss"
    return build_trainer(f"trainer.type={kind}", f"trainer.monitor={monitor}", *assignments)


@pytest.fixture(scope="module", params=TRAINERS)
def reference(request, tmp_path_factory):
    """An uninterrupted 3-epoch run of each trainer: its kind, last log and final weights."""
    trainer = trainer_of(request.param)
    log = trainer.train(tmp_path_factory.mktemp("reference"))
    return request.param, log, trainer.raw_model.state_dict()


@pytest.mark.parametrize(
    "stop_at_step",
    [pytest.param(30, id="mid-epoch"), pytest.param(STEPS_PER_EPOCH, id="last-batch"), pytest.param(1, id="first")],
)
def test_signal_saves_and_resume_ends_bit_identical(reference, tmp_path, stop_at_step):
    """SIGTERM during any step of an epoch (first, middle or last batch): a checkpoint at that step,
    exit code 143, and fresh objects resumed from it end with the uninterrupted run's weights."""
    kind, reference_log, reference_weights = reference
    interrupted = trainer_of(kind)
    signal_at_loss_call(interrupted, stop_at_step)
    with pytest.raises(Interrupted) as stopped:
        interrupted.train(tmp_path)
    assert stopped.value.exit_code == 143
    (checkpoint,) = tmp_path.glob(f"checkpoint-epoch*-step{stop_at_step}.pth")
    resumed = trainer_of(kind)
    resumed.load_state_dict(load_checkpoint(checkpoint))
    log = resumed.train(tmp_path)
    assert same_weights(resumed.raw_model.state_dict(), reference_weights)
    assert log == reference_log, "the epoch averages include the steps before the stop"


def test_a_signal_after_the_last_step_lets_the_run_finish(tmp_path):
    """SIGTERM during the last epoch's validation: the work is done, so the run ends normally with
    its final checkpoint instead of asking to resume a finished run."""
    trainer = trainer_of("Trainer")
    criterion = trainer.criterion

    def loss_signalling_in_the_last_validation(output, target):
        if not torch.is_grad_enabled() and trainer.global_step == 3 * STEPS_PER_EPOCH:
            signal.raise_signal(signal.SIGTERM)
        return criterion(output, target)

    trainer.criterion = loss_signalling_in_the_last_validation
    trainer.train(tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint-epoch3.pth")["epoch"] == 3


@pytest.mark.parametrize("kind", TRAINERS)
def test_sigint_exits_130_after_saving(tmp_path, kind):
    trainer = trainer_of(kind)
    signal_at_loss_call(trainer, 5, signal.SIGINT)
    with pytest.raises(Interrupted) as stopped:
        trainer.train(tmp_path)
    assert stopped.value.exit_code == 130
    assert load_checkpoint(tmp_path / "checkpoint-epoch1-step5.pth")["global_step"] == 5


@pytest.mark.parametrize("kind", TRAINERS)
def test_nan_loss_stops_the_run_and_saves_nothing(tmp_path, kind):
    """A diverging run stops at the first non-finite loss, before it can reach a checkpoint."""
    trainer = trainer_of(kind, "optimizer.args.lr=1e30", "optimizer.type=SGD")
    with pytest.raises(NonFiniteLoss, match="loss became NaN or infinite at step"):
        trainer.train(tmp_path)
    assert not list(tmp_path.glob("*.pth"))


@pytest.mark.parametrize("kind", TRAINERS)
def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path, kind):
    """accumulate=2 with batch 32 takes the same optimizer steps as batch 64 (for a model without
    dropout or batch statistics, whose gradients add up exactly)."""
    runs = []
    for batch, accumulate in ((64, 1), (32, 2)):
        settings = [f"data_loader.args.batch_size={batch}", f"trainer.accumulate={accumulate}"]
        trainer = trainer_of(kind, "arch.type=tests.parts.LinearNet", "arch.args={}", "trainer.epochs=1", *settings)
        (tmp_path / str(batch)).mkdir()
        trainer.train(tmp_path / str(batch))
        runs.append(trainer)
    assert runs[0].global_step == runs[1].global_step == STEPS_PER_EPOCH
    for a, b in zip(runs[0].raw_model.parameters(), runs[1].raw_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_clipping_bounds_the_gradient_norm_and_logs_it(tmp_path):
    """With trainer.clip_grad_norm, every step uses gradients of at most that norm; the logged
    grad_norm is the norm before clipping."""
    trainer = trainer_of("Trainer", "trainer.clip_grad_norm=0.05", "trainer.epochs=1")
    norms, step = [], trainer.optimizer.step

    def step_recording_norm(*args, **kwargs):
        norms.append(torch.nn.utils.get_total_norm([p.grad for p in trainer.raw_model.parameters()]).item())
        return step(*args, **kwargs)

    trainer.optimizer.step = step_recording_norm
    log = trainer.train(tmp_path)
    assert len(norms) == STEPS_PER_EPOCH and max(norms) <= 0.05 * 1.0001
    assert log["grad_norm"] > 0.05


def test_bf16_mixed_precision_trains_on_cpu(tmp_path):
    """trainer.amp=bf16 runs the forward pass and loss in bfloat16 and still learns."""
    log = trainer_of("Trainer", "trainer.amp=bf16", "trainer.epochs=2").train(tmp_path)
    assert log["val_accuracy"] > 0.5


def test_a_trainer_reports_what_its_step_returns(tmp_path):
    """A step that returns only a loss and a scalar of its own gets both averaged and logged, for
    training and validation; metrics need output and target, so there are none."""
    log = trainer_of("tests.parts.StepOnlyTrainer", "trainer.epochs=1", "trainer.monitor=max val_confidence").train(
        tmp_path
    )
    assert set(log) == {"loss", "confidence", "lr", "val_loss", "val_confidence"}
    assert 0.1 < log["val_confidence"] <= 1
