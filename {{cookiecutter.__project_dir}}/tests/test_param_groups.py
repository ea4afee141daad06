"""Fine-tuning from the config: `arch.freeze` keeps parameters out of training, and each group of
`optimizer.param_groups` trains at its own settings, is stepped by the scheduler, logged as
`lr/NAME`, and resumed exactly; a glob that matches nothing, or a resume into other groups, is
one line (utils/param_groups.py). Real trainers on the bundled digits."""

import importlib.util
import json
import re
import sys

import pytest
import torch

import train
from tests.helpers import (
    PROJECT_DIR,
    TEST_CONFIG,
    build_trainer,
    metrics_rows,
    run_script,
    same_weights,
    signal_at_loss_call,
)
from utils.checkpoint import load_checkpoint
from utils.errors import CheckpointError
from utils.runtime import Interrupted

# The tests' TinyCNN: features.0 (convolution), features.1 (batch norm), classifier.2 (linear).
FREEZE = 'arch.freeze=["features.0.*"]'
FROZEN = ("features.0.weight", "features.0.bias")
GROUPS = 'optimizer.param_groups=[{"params": "classifier.*", "lr": 0.1}]'  # optimizer.args.lr: 0.01


def trainable(trainer) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in trainer.raw_model.named_parameters()}


def test_groups_train_at_their_own_lr_and_frozen_parameters_stay(tmp_path):
    """Frozen parameters are left out of the optimizer and unchanged by training; the default
    group (group 0) and each configured group get their learning rates, the scheduler halves
    every one of them, and metrics.csv logs them as `lr` and `lr/<group>`."""
    trainer = build_trainer(FREEZE, GROUPS, "trainer.epochs=3")
    before = trainable(trainer)
    groups = trainer.optimizer.param_groups
    assert [(group.get("name"), group["lr"], group["param_names"]) for group in groups] == [
        (None, 0.01, ["features.1.weight", "features.1.bias"]),
        ("classifier", 0.1, ["classifier.2.weight", "classifier.2.bias"]),
    ]
    frozen = dict(trainer.raw_model.named_parameters())
    in_optimizer = {id(param) for group in groups for param in group["params"]}
    assert not any(frozen[name].requires_grad or id(frozen[name]) in in_optimizer for name in FROZEN)
    assert len(trainer.lr_scheduler.base_lrs) == 2

    trainer.train(tmp_path)

    after = trainable(trainer)
    assert all(torch.equal(before[name], after[name]) for name in FROZEN)
    assert all(not torch.equal(before[name], after[name]) for name in before if name not in FROZEN)
    assert [group["lr"] for group in groups] == [0.005, 0.05]  # StepLR: step_size 2, gamma 0.5
    rows = metrics_rows(tmp_path)
    assert [(float(row["lr"]), float(row["lr/classifier"])) for row in rows] == [(0.01, 0.1)] * 2 + [(0.005, 0.05)]


def test_a_parameter_goes_to_the_first_group_that_matches_it():
    """Globs may overlap: a later group gets only what earlier ones left, named by "name"."""
    trainer = build_trainer(
        'optimizer.param_groups=[{"params": "*.bias", "weight_decay": 0, "name": "biases"}, '
        '{"params": "classifier.*", "lr": 0.1}]'
    )
    assert [(group.get("name"), group["param_names"]) for group in trainer.optimizer.param_groups] == [
        (None, ["features.0.weight", "features.1.weight"]),
        ("biases", ["features.0.bias", "features.1.bias", "classifier.2.bias"]),
        ("classifier", ["classifier.2.weight"]),
    ]


@pytest.mark.slow
def test_a_run_with_groups_stopped_and_resumed_equals_an_uninterrupted_one(tmp_path):
    """Stopped mid-epoch and resumed, a run with frozen layers and groups ends with the weights,
    log and optimizer groups of the run that was never stopped."""
    settings = (FREEZE, GROUPS, "trainer.epochs=2")
    reference = build_trainer(*settings)
    reference_log = reference.train(tmp_path / "reference")
    stopped = build_trainer(*settings)
    signal_at_loss_call(stopped, 30)
    with pytest.raises(Interrupted):
        stopped.train(tmp_path / "run")
    (checkpoint,) = (tmp_path / "run").glob("checkpoint-epoch*-step*.pth")
    resumed = build_trainer(*settings)
    resumed.load_state_dict(load_checkpoint(checkpoint))
    log = resumed.train(tmp_path / "run")
    assert same_weights(resumed.raw_model.state_dict(), reference.raw_model.state_dict())
    assert log == reference_log
    states = [trainer.optimizer.state_dict() for trainer in (resumed, reference)]
    assert states[0]["param_groups"] == states[1]["param_groups"]  # names, parameters, learning rates
    assert states[0]["state"].keys() == states[1]["state"].keys()
    for param, state in states[0]["state"].items():
        assert all(torch.equal(value, states[1]["state"][param][key]) for key, value in state.items())


@pytest.fixture(scope="module")
def grouped_checkpoint(tmp_path_factory):
    """A checkpoint after one epoch with frozen layers and groups."""
    folder = tmp_path_factory.mktemp("grouped")
    build_trainer(FREEZE, GROUPS, "trainer.epochs=1").train(folder)
    return load_checkpoint(folder / "checkpoint-epoch1.pth")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param([GROUPS], "has parameter groups of [2, 2] parameters, this run's [4, 2]", id="unfrozen"),
        pytest.param([FREEZE], "has parameter groups of [2, 2] parameters, this run's [4]", id="groups-dropped"),
        pytest.param(
            [FREEZE, 'optimizer.param_groups=[{"params": "features.1.*", "lr": 0.1}]'],
            "parameter group 0 holds features.1.weight, which this run's does not",
            id="other-glob",
        ),
        pytest.param(
            [FREEZE, 'optimizer.param_groups=[{"params": "classifier.*", "lr": 0.1, "name": "head"}]'],
            "parameter group 1 is 'classifier', this run's 'head'",
            id="renamed",
        ),
    ],
)
def test_resuming_into_other_groups_is_one_line(grouped_checkpoint, changes, expected):
    """A checkpoint restores its optimizer state group by group: a config whose groups or frozen
    layers differ from the checkpoint's is refused in one line that says what to keep."""
    trainer = build_trainer(*changes, "trainer.epochs=2")
    with pytest.raises(CheckpointError) as refused:
        trainer.load_state_dict(grouped_checkpoint)
    message = str(refused.value)
    assert expected in message and "optimizer.param_groups and arch.freeze" in message and "\n" not in message


def test_resume_applies_changed_settings_to_the_groups_that_use_them(grouped_checkpoint, caplog):
    """On resume, a changed `optimizer.args.lr` (--lr) applies to the groups without their own lr,
    and a changed group lr to that group alone."""
    trainer = build_trainer(
        FREEZE, 'optimizer.param_groups=[{"params": "classifier.*", "lr": 0.2}]', "optimizer.args.lr=0.02"
    )
    trainer.load_state_dict(grouped_checkpoint)
    assert [group["lr"] for group in trainer.optimizer.param_groups] == [0.02, 0.2]
    assert "Applied the changed optimizer.param_groups[0].lr to 0.2 on resume" in caplog.text
    same = build_trainer(FREEZE, GROUPS, "optimizer.args.lr=0.02")
    same.load_state_dict(grouped_checkpoint)
    assert [group["lr"] for group in same.optimizer.param_groups] == [0.02, 0.1]


def test_a_glob_matching_nothing_is_one_line_and_exit_2(tmp_path):
    """A typo in a glob stops train.py before anything is written, naming the key and the model's
    parameters."""
    setting = 'arch.freeze=["features.*", "clasifier.*"]'
    result = run_script("train.py", "-c", TEST_CONFIG, "--set", f"trainer.save_dir={tmp_path}", "--set", setting)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(
        "error: config key 'arch.freeze[1]': 'clasifier.*' matches no parameter of the model "
        "(did you mean 'classifier.*'?); its parameters are features.*, classifier.*"
    ), result.stderr
    assert not any(tmp_path.iterdir())


def test_a_group_glob_matching_nothing_is_one_line_and_exit_2(tmp_path, capsys):
    setting = 'optimizer.param_groups=[{"params": "fc.*", "lr": 0.1}]'
    assert train.main(["-c", TEST_CONFIG, "--set", f"trainer.save_dir={tmp_path}", "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "error: config key 'optimizer.param_groups[0].params': 'fc.*' matches no parameter of the model"
    ), err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('[{"params": "classifier.*", "lrr": 0.1}]', "'optimizer.param_groups[0].lrr': AdamW has no argument 'lrr'"),
        ('[{"params": "classifier.*", "lr": -1}]', "'optimizer.param_groups[0].lr': got -1, expected a number >= 0"),
        ('[{"params": "features.0.*"}]', "'optimizer.param_groups[0].params': 'features.0.*' matches only parameters"),
        ('[{"params": "classifier.*"}, {"params": "*"}]', "'optimizer.param_groups[1]': '*' cannot name the group"),
        ('[{"params": "a*"}, {"params": "a?", "name": "a"}]', "'optimizer.param_groups[1]': 'a' is also group 0's"),
    ],
)
def test_a_bad_group_is_one_line(setting, expected):
    """An unknown optimizer argument, a bad value, a glob that finds only frozen parameters or
    a group without a usable name: each is one line naming the group's key."""
    with pytest.raises(Exception) as refused:
        build_trainer(FREEZE, f"optimizer.param_groups={setting}")
    assert type(refused.value).__name__ == "ConfigError" and expected in str(refused.value)


def test_freezing_everything_is_refused():
    """A config that would leave nothing to train is refused before training starts."""
    with pytest.raises(Exception, match="freezes every parameter of the model"):
        build_trainer('arch.freeze=["*"]')


def readme_example():
    """The README's fine-tuning example: its model file (a module) and its config keys."""
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Fine-tuning: parameter groups and frozen layers", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    keys = json.loads("{" + re.search(r"```json\n(.*?)```", section, re.S).group(1) + "}")
    spec = importlib.util.spec_from_loader("model.pretrained", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(code, "README.md", "exec"), module.__dict__)
    return module, keys


def test_readme_fine_tuning_example_builds(monkeypatch):
    """The README's ResNet-18 example validates and builds: the stem and first stages frozen,
    layer3 and layer4 in the default group, the head at ten times its learning rate."""
    pytest.importorskip("torchvision")
    module, keys = readme_example()
    monkeypatch.setitem(sys.modules, "model.pretrained", module)  # the file the README has you write
    config = json.loads((PROJECT_DIR / TEST_CONFIG).read_text(encoding="utf-8"))
    config.update(keys)
    config["arch"]["args"]["weights"] = None  # no download
    config["data_loader"]["args"]["data_dir"] = str(PROJECT_DIR / "data")
    trainer = build_trainer(config=config)
    default, head = trainer.optimizer.param_groups
    assert {name.split(".")[0] for name in default["param_names"]} == {"layer3", "layer4"}
    assert head["param_names"] == ["fc.weight", "fc.bias"] and head["lr"] == 10 * default["lr"]
    for name, param in trainer.raw_model.named_parameters():
        assert param.requires_grad is (name.split(".")[0] in ("layer3", "layer4", "fc")), name
