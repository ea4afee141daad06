"""Checkpoints are plain data: safe to load anywhere, and never half-written."""

import pytest
import torch

from model.model import SmallCNN
from tests.helpers import run_script
from utils import CheckpointError
from utils.checkpoint import load_checkpoint, load_model_state, save_checkpoint


def test_training_checkpoint_loads_with_weights_only_in_a_fresh_process(tmp_path, quick_run):
    """A checkpoint from train.py loads with weights_only=True where the project was never imported."""
    result = run_script("train.py", *quick_run, "--set", "trainer.epochs=1")
    assert result.returncode == 0, result.stderr
    (checkpoint,) = tmp_path.glob("*/*/checkpoint-epoch1.pth")
    probe = (
        "import sys, torch\n"
        "c = torch.load(sys.argv[1], map_location='cpu', weights_only=True)\n"
        "assert 'model' not in sys.modules and 'trainer' not in sys.modules\n"
        "print(c['epoch'], c['arch'], type(c['config']).__name__, len(c['state_dict']))\n"
    )
    loaded = run_script("-I", "-c", probe, str(checkpoint))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split()[:3] == ["1", "SmallCNN", "dict"]


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


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        (b"not a checkpoint at all", "cannot be loaded"),
        (b"PK\x03\x04 truncated zip", "cannot be loaded"),
    ],
)
def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path, content, message):
    """A missing or damaged checkpoint gives a CheckpointError naming the file."""
    path = tmp_path / "model.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    """A file that needs arbitrary unpickling is rejected rather than executed."""
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "config": {}, "obj": Unpicklable.__new__(Unpicklable).__class__}, path)
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        load_checkpoint(path)


def test_weights_of_another_architecture_are_explained_in_one_line():
    """Loading weights into a differently sized model names the first mismatching tensor."""
    small, large = SmallCNN(channels=8), SmallCNN(channels=16)
    with pytest.raises(CheckpointError, match=r"features\.0\.weight is .* the model has") as info:
        load_model_state(large, small.state_dict())
    assert "\n" not in str(info.value)
