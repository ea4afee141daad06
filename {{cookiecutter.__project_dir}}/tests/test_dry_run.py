"""Config values that pass every static check but cannot train are refused before any file is
written: one line naming the config key, exit code 2. train.py runs one batch through the real
model, loss, metrics, optimizer and scheduler first (utils/dry_run.py)."""

import pytest
import torch

import train
from tests.helpers import PROJECT_DIR, TEST_CONFIG

# name: (--set assignments or other arguments, the start of the one-line error)
CASES = {
    "scheduler-divides-by-zero": (["lr_scheduler.args.step_size=0"], "config key 'lr_scheduler' (StepLR)"),
    "cosine-with-no-period": (
        ["lr_scheduler.type=CosineAnnealingLR", 'lr_scheduler.args={"T_max": 0}'],
        "config key 'lr_scheduler' (CosineAnnealingLR)",
    ),
    "one-cycle-shorter-than-the-run": (
        ["lr_scheduler.type=OneCycleLR", 'lr_scheduler.args={"max_lr": 0.1, "total_steps": 2}'],
        "config key 'lr_scheduler' (OneCycleLR)",
    ),
    "optimizer-needs-a-closure": (["optimizer.type=LBFGS", 'optimizer.args={"lr": 0.1}'], "config key 'optimizer'"),
    "fewer-classes-than-the-data": (["arch.args.num_classes=5"], "config key 'arch.args.num_classes'"),
    "output-the-loss-cannot-read": (
        ["arch.type=torch.nn.Conv2d", 'arch.args={"in_channels": 1, "out_channels": 10, "kernel_size": 8}'],
        "config key 'loss'",
    ),
    "model-that-does-not-fit-the-data": (
        ["arch.type=torch.nn.Linear", 'arch.args={"in_features": 10, "out_features": 10}'],
        "config key 'arch' (torch.nn.Linear)",
    ),
    "loss-that-does-not-fit-the-output": (["loss=torch.nn.functional.binary_cross_entropy"], "config key 'loss'"),
    "metric-that-does-not-fit-the-output": (
        ['metrics=["torch.nn.functional.mse_loss"]', "trainer.monitor=min val_loss"],
        "config key 'metrics' (torch.nn.functional.mse_loss)",
    ),
}
DEVICES = ["cuda", "cuda:7", "mps"]


@pytest.fixture(autouse=True)
def in_project_dir(monkeypatch):
    monkeypatch.chdir(PROJECT_DIR)


@pytest.mark.filterwarnings("ignore:Using a target size")  # what mse_loss says before it fails
@pytest.mark.parametrize("case", list(CASES))
def test_values_that_fail_only_when_training_are_refused_before_any_file(tmp_path, capsys, case):
    assignments, message = CASES[case]
    sets = [arg for a in [*assignments, f"trainer.save_dir={tmp_path.as_posix()}"] for arg in ("--set", a)]
    code = train.main(["-c", TEST_CONFIG, *sets])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "device", [d for d in DEVICES if torch.device(d).type != "cuda" or not torch.cuda.is_available()]
)
def test_devices_that_are_not_there_are_refused_in_one_line(tmp_path, capsys, device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    code = train.main(["-c", TEST_CONFIG, "-d", device, "--set", f"trainer.save_dir={tmp_path.as_posix()}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --device '{device}'") and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_the_dry_run_leaves_no_trace(tmp_path):
    """The first batch trains the same with and without the dry run: weights, batch statistics,
    random state and the optimizer are as they were."""
    from tests.helpers import build_trainer
    from utils import dry_run

    runs = []
    for tried in (False, True):
        trainer = build_trainer("trainer.epochs=1")
        if tried:
            dry_run.check(trainer)
        trainer.train(tmp_path)
        runs.append(trainer.raw_model.state_dict())
    assert all(torch.equal(runs[0][key], runs[1][key]) for key in runs[0])


def test_a_bug_in_the_users_model_keeps_its_traceback(tmp_path, monkeypatch):
    """An error raised in the project's own code is a bug, not a config mistake."""
    from tests import parts

    def broken_forward(self, x):
        return self.classifier(self.features(x)) + undefined_name  # noqa: F821

    monkeypatch.setattr(parts.TinyCNN, "forward", broken_forward)
    with pytest.raises(NameError):
        train.main(["-c", TEST_CONFIG, "--set", f"trainer.save_dir={tmp_path.as_posix()}"])


@pytest.mark.parametrize(
    "case, hinted", [("output-the-loss-cannot-read", False), ("loss-that-does-not-fit-the-output", True)]
)
def test_the_loss_error_points_at_num_classes_only_for_a_model_that_takes_it(tmp_path, capsys, case, hinted):
    """A regression model or a torch layer has no num_classes: no hint sends its user there."""
    sets = [arg for a in [*CASES[case][0], f"trainer.save_dir={tmp_path.as_posix()}"] for arg in ("--set", a)]
    assert train.main(["-c", TEST_CONFIG, *sets]) == 2
    assert ("arch.args.num_classes?" in capsys.readouterr().err) is hinted
