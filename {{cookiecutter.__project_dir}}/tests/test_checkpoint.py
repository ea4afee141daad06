"""Checkpoints are plain data: safe to load anywhere, never half-written, and checked where read."""

import os
import sys

import pytest
import torch

from tests.helpers import build_trainer, run_script
from utils.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from utils.errors import CheckpointError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint written by a real (one-epoch) training run."""
    run_dir = tmp_path_factory.mktemp("run")
    build_trainer("trainer.epochs=1").train(run_dir)
    return run_dir / "checkpoint-epoch1.pth"


def test_checkpoint_loads_with_weights_only_in_a_fresh_process(trained):
    """A checkpoint loads with weights_only=True where the project was never imported."""
    probe = (
        "import sys, torch\n"
        "c = torch.load(sys.argv[1], map_location='cpu', weights_only=True)\n"
        "assert 'model' not in sys.modules and 'trainer' not in sys.modules\n"
        "print(c['epoch'], c['arch'], type(c['config']).__name__, len(c['state_dict']))\n"
    )
    loaded = run_script("-I", "-c", probe, str(trained))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split()[:3] == ["1", "TinyCNN", "dict"]


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path):
    """If saving fails midway, the old file is intact and no temporary file is left."""
    target = tmp_path / "checkpoint-epoch1.pth"
    save_checkpoint({"epoch": 1, "weights": torch.ones(3)}, target)
    with pytest.raises(RuntimeError):
        save_checkpoint({"epoch": 2, "bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-epoch1.pth"]


def test_a_failed_first_save_does_not_advise_resuming(tmp_path):
    """The run folder moved away before the first checkpoint: nothing can be resumed, and the
    one line says so by advising a new start."""
    trainer = build_trainer("trainer.epochs=1")
    trainer.epoch_end_callbacks.append(lambda epoch, log: (tmp_path / "run").rename(tmp_path / "moved") and False)
    with pytest.raises(CheckpointError, match="could not write checkpoint") as raised:
        trainer.train(tmp_path / "run")
    assert str(raised.value).endswith("; free space or fix permissions, then start the run again")


class ConfigParser:
    """Stands for pytorch-template's ConfigParser, which its checkpoints pickle."""


class SystemCall:
    """Pickles as a call of os.system: a file made to harm whoever loads it."""

    def __reduce__(self):
        return os.system, (f"\"{sys.executable}\" -c \"open('pickled-code-ran', 'w')\"",)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        (b"not a checkpoint at all", "cannot be loaded"),
        (b"PK\x03\x04 truncated zip", "cannot be loaded"),
        (
            {"state_dict": {}, "config": ConfigParser()},
            "holds pickled code (tests.test_checkpoint.ConfigParser), which is never loaded",
        ),
        ({"config": {}, "state_dict": {}, "extra": SystemCall()}, "holds pickled code ("),
        ({"weights": {}}, "is not a checkpoint written by this project's train.py"),
        ({"config": {}, "state_dict": {"w": 3}}, "has no 'state_dict' of tensors"),
        ({"config": {}, "state_dict": {"w": torch.tensor([1.0, float("nan")])}}, "holds NaN or infinite weights"),
    ],
)
def test_unusable_checkpoint_is_one_clear_line(tmp_path, monkeypatch, content, message):
    """A missing, damaged, unsafe or incomplete checkpoint is a CheckpointError naming the file,
    one line, without terminal escape codes or torch's advice to unpickle it anyway."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert message in text and str(path) in text
    assert "\n" not in text and "\x1b" not in text and "weights_only" not in text
    assert not (tmp_path / "pickled-code-ran").exists()


def test_resuming_needs_the_training_state_evaluating_does_not(tmp_path, trained):
    """A checkpoint with weights and config alone evaluates, but resuming from it is refused."""
    full = torch.load(trained, weights_only=True)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": full["state_dict"], "config": full["config"]}, path)
    assert load_checkpoint(path)["state_dict"].keys() == full["state_dict"].keys()
    with pytest.raises(CheckpointError, match="lacks epoch, samples_done, global_step, optimizer"):
        build_trainer("trainer.epochs=1").load_state_dict(load_checkpoint(path), path)


def test_weights_of_another_architecture_are_explained_in_one_line(trained):
    """Loading weights into a differently sized model names the first mismatching tensor."""
    other = build_trainer("trainer.epochs=1", "arch.args.channels=4").raw_model
    with pytest.raises(CheckpointError, match=r"features\.0\.weight is .* the model has") as info:
        load_model_state(other, load_checkpoint(trained)["state_dict"])
    assert "\n" not in str(info.value)


def test_weights_saved_from_data_parallel_load(trained):
    """Weights saved with DataParallel's `module.` prefix (pytorch-template with n_gpu > 1) load."""
    model = build_trainer("trainer.epochs=1").raw_model
    weights = {f"module.{key}": value for key, value in load_checkpoint(trained)["state_dict"].items()}
    load_model_state(model, weights)
    assert torch.equal(model.state_dict()["classifier.2.weight"], weights["module.classifier.2.weight"])
