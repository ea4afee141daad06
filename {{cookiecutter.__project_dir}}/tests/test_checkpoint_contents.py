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


def drop(key):
    return lambda c: c.pop(key)


def put(key, value):
    return lambda c: c.__setitem__(key, value)


def poison_weights(c):
    next(iter(c["state_dict"].values())).fill_(math.nan)


# name: (change to a real checkpoint, the text the error holds, also refused by test.py?). What an
# entry should be follows from the same entry of a new trainer's state_dict().
CASES = {
    "no-optimizer": (drop("optimizer"), "lacks optimizer", False),
    "no-epoch": (drop("epoch"), "lacks epoch", False),
    "epoch-as-text": (put("epoch", "3"), "'epoch' should be an integer, not str", False),
    "optimizer-as-a-list": (put("optimizer", [1, 2]), "'optimizer' should be a mapping, not list", False),
    "optimizer-without-groups": (put("optimizer", {"state": {}}), "'optimizer' should be", False),
    "step-as-a-float": (put("global_step", 2.5), "'global_step' should be an integer, not float", False),
    "random-state-not-tensors": (put("rng", {"torch": "seed", "cuda": None}), "'rng' should hold", False),
    "best-score-as-text": (put("monitor_best", "0.9"), "'monitor_best' should be a number, not str", False),
    "mid-epoch-without-metric-sums": (put("samples_done", 640), "holds no 'train_metrics'", False),
    "python-random-state-cut": (lambda c: c["rng"]["python"][0].pop(), "no usable python random state", False),
    "a-non-tensor-weight": (lambda c: c["state_dict"].__setitem__("w", 3), "no 'state_dict' of tensors", True),
    "nan-weights": (poison_weights, "holds NaN or infinite weights", True),
    "no-config": (drop("config"), "no config", True),
    "an-unsafe-pickle": (put("extra", argparse.Namespace(x=1)), "pickled code (argparse.Namespace)", True),
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
    assert train.main(["-r", str(path)]) == 2
    err = one_line(capsys)
    assert str(path) in err and CASES[case][1] in err


@pytest.mark.parametrize("case", list(CASES))
def test_resume_auto_names_what_is_wrong_with_the_only_checkpoint(trained, tmp_path, capsys, case):
    damaged(trained, tmp_path / "Tests" / "20260101-000000", case)
    code = train.main(["-c", TEST_CONFIG, "--set", f"trainer.save_dir={tmp_path.as_posix()}", "-r", "auto"])
    assert code == 2
    assert CASES[case][1] in one_line(capsys)


@pytest.mark.parametrize("case", [name for name, (_, _, evaluated) in CASES.items() if evaluated])
def test_evaluating_a_damaged_checkpoint_is_one_line(trained, tmp_path, capsys, case):
    path = damaged(trained, tmp_path / "run", case)
    assert evaluate_script.main(["-r", str(path), "-d", "cpu"]) == 2
    assert CASES[case][1] in one_line(capsys)
