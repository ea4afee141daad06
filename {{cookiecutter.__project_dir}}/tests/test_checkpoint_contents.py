"""A checkpoint is checked where it is read (`train.py -r FILE`, `train.py -r auto`, `test.py -r
FILE`): anything missing, of the wrong kind or non-finite is one line naming the file and what is
wrong, exit code 2, never a KeyError from deep in the resume."""

import argparse
import math

import pytest
import torch

import test as evaluate_script
import train
from tests.helpers import PROJECT_DIR, TEST_CONFIG, build_trainer
from utils.checkpoint import check_resumable
from utils.errors import CheckpointError


def drop(key):
    return lambda c: c.pop(key)


def put(key, value):
    return lambda c: c.__setitem__(key, value)


def poison_weights(c):
    next(iter(c["state_dict"].values())).fill_(math.nan)


def optimizer(change):  # on the one parameter group of the tests' AdamW, or on its state
    return lambda c: change(c["optimizer"]["param_groups"][0], c["optimizer"]["state"])


def mid_epoch(train_metrics, samples_done=640):
    return lambda c: c.update(samples_done=samples_done, train_metrics=train_metrics)


METRIC_SUMS = {"sums": {"loss": 64.0}, "counts": {"loss": 64}}


# name: (change to a real checkpoint, the text the error holds, also refused by test.py?). What an
# entry should be follows from the same entry of a new trainer's state_dict().
CASES = {
    "no-optimizer": (drop("optimizer"), "lacks optimizer", False),
    "no-epoch": (drop("epoch"), "lacks epoch", False),
    "epoch-as-text": (put("epoch", "3"), "'epoch' should be an integer, not str", False),
    "optimizer-as-a-list": (put("optimizer", [1, 2]), "'optimizer' should be a mapping, not list", False),
    "optimizer-without-groups": (put("optimizer", {"state": {}}), "'optimizer' should be", False),
    "step-as-a-float": (put("global_step", 2.5), "'global_step' should be an integer, not float", False),
    "random-state-not-tensors": (put("rng", {"torch": "seed", "cuda": None}), "no usable torch random state", False),
    "best-score-as-text": (put("monitor_best", "0.9"), "'monitor_best' should be a number, not str", False),
    "mid-epoch-without-metric-sums": (put("samples_done", 640), "holds no 'train_metrics'", False),
    "python-random-state-cut": (lambda c: c["rng"]["python"][0].pop(), "no usable python random state", False),
    "a-non-tensor-weight": (lambda c: c["state_dict"].__setitem__("w", 3), "no 'state_dict' of tensors", True),
    "nan-weights": (poison_weights, "holds NaN or infinite weights", True),
    "no-config": (drop("config"), "no config", True),
    "an-unsafe-pickle": (put("extra", argparse.Namespace(x=1)), "pickled code (argparse.Namespace)", True),
    "negative-epoch": (put("epoch", -5), "'epoch' should be non-negative, not -5", False),
    "negative-step": (put("global_step", -1), "'global_step' should be non-negative", False),
    "negative-samples-done": (mid_epoch(METRIC_SUMS, -64), "'samples_done' should be non-negative", False),
    "nan-best-score": (put("monitor_best", math.nan), "'monitor_best' should be a finite number", False),
    "best-score-of-the-other-mode": (put("monitor_best", math.inf), "'monitor_best' should be a finite number", False),
    "optimizer-state-of-a-wrong-shape": (
        optimizer(lambda group, state: state[4].__setitem__("exp_avg", torch.zeros(32))),
        "'optimizer' state 'exp_avg' of parameter 4 has shape (32,), the model's parameter has (10, 32)",
        False,
    ),
    "optimizer-state-of-an-unknown-parameter": (
        optimizer(lambda group, state: state.__setitem__(9, dict(state[0]))),
        "'optimizer' holds state for parameter 9",
        False,
    ),
    "an-extra-parameter-group": (
        lambda c: c["optimizer"]["param_groups"].append(dict(c["optimizer"]["param_groups"][0], params=[])),
        "'optimizer' has parameter groups of [6, 0] parameters, this run's [6]",
        False,
    ),
    "learning-rate-as-text": (
        optimizer(lambda group, state: group.__setitem__("lr", "0.01")),
        "'optimizer' parameter group 0: 'lr' should be a finite number, not '0.01'",
        False,
    ),
    "infinite-learning-rate": (optimizer(lambda group, state: group.__setitem__("lr", math.inf)), "'lr'", False),
    "amsgrad-as-a-number": (optimizer(lambda group, state: group.__setitem__("amsgrad", math.nan)), "'amsgrad'", False),
    "optimizer-step-as-a-list": (
        optimizer(lambda group, state: state[2].__setitem__("step", [1])),
        "'optimizer' state 'step' of parameter 2 is [1]",
        False,
    ),
    "optimizer-state-replaced-by-a-number": (
        optimizer(lambda group, state: state[4].__setitem__("exp_avg", 5.0)),
        "'optimizer' state 'exp_avg' of parameter 4 is 5.0, not a tensor",
        False,
    ),
    "negative-optimizer-step": (
        optimizer(lambda group, state: state[1].__setitem__("step", torch.tensor(-3.0))),
        "'optimizer' state 'step' of parameter 1 is -3.0, a count that cannot be negative",
        False,
    ),
    "nan-optimizer-state": (
        optimizer(lambda group, state: state[4]["exp_avg_sq"].fill_(math.nan)),
        "'optimizer' state 'exp_avg_sq' of parameter 4 holds NaN or infinite values",
        False,
    ),
    "numpy-random-position-nan": (lambda c: c["rng"]["numpy"][0].__setitem__(2, math.nan), "usable numpy", False),
    "betas-cut": (optimizer(lambda group, state: group.__setitem__("betas", (0.9,))), "'betas'", False),
    "scheduler-gamma-as-text": (
        lambda c: c["lr_scheduler"].__setitem__("gamma", "0.5"),
        "'lr_scheduler': 'gamma' should be a finite number",
        False,
    ),
    "torch-random-state-cut": (
        lambda c: c["rng"]["torch"].__setitem__(0, c["rng"]["torch"][0][:64]),
        "usable torch",
        False,
    ),
    "numpy-random-state-cut": (lambda c: c["rng"]["numpy"][0][1].pop(), "no usable numpy random state", False),
    "python-random-state-short": (lambda c: c["rng"]["python"][0][1].pop(), "no usable python random state", False),
    "metric-sums-of-a-wrong-layout": (mid_epoch({"loss": 1.0}), "'train_metrics' should be", False),
    "metric-counts-of-other-keys": (
        mid_epoch({"sums": {"loss": 1.0}, "counts": {"accuracy": 64}}),
        "'train_metrics' should be",
        False,
    ),
    "metric-sum-as-text": (mid_epoch({"sums": {"loss": "1"}, "counts": {"loss": 64}}), "'train_metrics'", False),
    "epoch-metric-state-not-tensors": (
        mid_epoch({**METRIC_SUMS, "states": {"BalancedAccuracy": {"hits": [1, 2]}}}),
        "'train_metrics' 'states' should map each epoch-level metric to a state_dict() of tensors",
        False,
    ),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    build_trainer("trainer.epochs=1").train(run_dir)
    return run_dir / "checkpoint-epoch1.pth"


@pytest.fixture(autouse=True)
def in_project_dir(monkeypatch):
    monkeypatch.chdir(PROJECT_DIR)


def damaged(trained, folder, case):
    checkpoint = torch.load(trained, weights_only=True)
    CASES[case][0](checkpoint)
    folder.mkdir(parents=True)
    torch.save(checkpoint, folder / "checkpoint-epoch1.pth")
    return folder / "checkpoint-epoch1.pth"


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "weights_only" not in err, err
    return err


@pytest.mark.parametrize("case", list(CASES))
def test_resume_from_a_damaged_checkpoint_is_one_line(trained, tmp_path, capsys, case):
    path = damaged(trained, tmp_path / "run", case)
    assert train.main(["-r", str(path), "--set", "trainer.epochs=2"]) == 2  # (epoch 1 of 1 would be refused as done)
    err = one_line(capsys)
    assert str(path) in err and CASES[case][1] in err
    assert sorted(tmp_path.rglob("*")) == [path.parent, path]  # refused before any file is written


@pytest.mark.parametrize("case", list(CASES))
def test_resume_auto_names_what_is_wrong_with_the_only_checkpoint(trained, tmp_path, capsys, case):
    damaged(trained, tmp_path / "Tests" / "20260101-000000", case)
    code = train.main(["-c", TEST_CONFIG, "--set", f"trainer.save_dir={tmp_path.as_posix()}", "-r", "auto"])
    assert code == 2
    assert CASES[case][1] in one_line(capsys)
    assert len(list(tmp_path.rglob("*"))) == 3  # no new run folder


@pytest.mark.parametrize("case", [name for name, (_, _, evaluated) in CASES.items() if evaluated])
def test_evaluating_a_damaged_checkpoint_is_one_line(trained, tmp_path, capsys, case):
    path = damaged(trained, tmp_path / "run", case)
    assert evaluate_script.main(["-r", str(path), "-d", "cpu"]) == 2
    assert CASES[case][1] in one_line(capsys)


# What earlier versions saved (torch's random state alone, None for an empty state), and best
# scores that a fresh trainer holds: a run that never improved, a run without a monitor.
ACCEPTED = {
    "earlier-version": lambda c: c.update(grad_scaler=None, rng={"torch": c["rng"]["torch"][0], "cuda": None}),
    "never-improved": put("monitor_best", -math.inf),
    "monitor-off": lambda c: c.update(monitor="off", monitor_best=math.nan),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_resume_accepts_what_earlier_versions_and_fresh_trainers_save(trained, case):
    checkpoint = torch.load(trained, weights_only=True)
    ACCEPTED[case](checkpoint)
    trainer = build_trainer("trainer.epochs=2", f"trainer.monitor={checkpoint['monitor']}")
    trainer.load_state_dict(checkpoint, trained)
    assert trainer.epochs_done == 1 and repr(trainer.monitor_best) == repr(checkpoint["monitor_best"])


def test_the_grad_scalers_settings_are_checked_where_fp16_restores_them(trained):
    trainer = build_trainer("trainer.epochs=2")
    checkpoint, fresh = torch.load(trained, weights_only=True), trainer.state_dict()
    fresh["grad_scaler"], checkpoint["grad_scaler"] = {"scale": 65536.0}, {"scale": math.nan}
    shapes = [param.shape for param in trainer.raw_model.parameters()]
    with pytest.raises(CheckpointError, match="'grad_scaler': 'scale' should be a finite number, not nan"):
        check_resumable(trained, checkpoint, fresh, shapes)
