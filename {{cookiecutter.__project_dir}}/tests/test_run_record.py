"""Runs you can compare without TensorBoard: every run folder records what it ran with
(environment.json) and draws its curves (curves.png, when matplotlib is installed)."""

import importlib.metadata
import json
import platform
import shutil
import subprocess

import pytest

from logger.run_record import git_state, requirements
from tests.helpers import PROJECT_DIR, build_trainer, signal_at_loss_call
from utils.checkpoint import load_checkpoint, run_checkpoints
from utils.runtime import Interrupted

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def environment(run_dir) -> list[dict]:
    return json.loads((run_dir / "environment.json").read_text(encoding="utf-8"))


def png_width(path) -> int:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    return int.from_bytes(data[16:20], "big")  # the IHDR chunk comes first


@pytest.fixture
def stopped_then_resumed(tmp_path):
    """A run stopped by a signal in its second epoch (curves.png of then is kept beside), then
    resumed to the end."""
    trainer = build_trainer("trainer.epochs=2")
    signal_at_loss_call(trainer, 30)
    with pytest.raises(Interrupted):
        trainer.train(tmp_path)
    if (tmp_path / "curves.png").exists():
        shutil.copy(tmp_path / "curves.png", tmp_path / "curves-when-stopped.png")
    resumed = build_trainer("trainer.epochs=2")
    resumed.load_state_dict(load_checkpoint(run_checkpoints(tmp_path)[-1]))
    resumed.train(tmp_path)
    return tmp_path


def test_a_run_folder_records_python_torch_and_every_requirement(tmp_path):
    build_trainer("trainer.epochs=1").train(tmp_path)
    (entry,) = environment(tmp_path)
    assert entry["from_epoch"] == 0
    assert entry["versions"]["python"] == platform.python_version()
    assert entry["versions"]["torch"] == importlib.metadata.version("torch")
    listed = requirements(PROJECT_DIR / "requirements.txt")
    assert "numpy" in listed and "torch" in listed
    assert all(entry["versions"][name] == importlib.metadata.version(name) for name in listed)


def test_a_resumed_run_records_what_it_continued_with(stopped_then_resumed):
    assert [entry["from_epoch"] for entry in environment(stopped_then_resumed)] == [0, 1]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_git_commit_and_uncommitted_changes_are_recorded(tmp_path):
    assert git_state(tmp_path) is None  # not a repository

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True)

    git("init", "-q")
    (tmp_path / "model.py").write_text("a = 1\n", encoding="utf-8")
    git("add", "model.py")
    git("commit", "-q", "-m", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "notes.txt").write_text("untracked files do not count\n", encoding="utf-8")
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "model.py").write_text("a = 2\n", encoding="utf-8")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def test_curves_are_drawn_when_a_run_stops_and_when_it_ends(stopped_then_resumed):
    pytest.importorskip("matplotlib")
    assert png_width(stopped_then_resumed / "curves-when-stopped.png") > 0
    assert png_width(stopped_then_resumed / "curves.png") > 0


def test_the_monitored_metric_gets_a_panel_beside_the_loss(tmp_path):
    pytest.importorskip("matplotlib")
    build_trainer("trainer.epochs=1", "trainer.monitor=max val_accuracy").train(tmp_path / "accuracy")
    build_trainer("trainer.epochs=1", "trainer.monitor=min val_loss").train(tmp_path / "loss")
    assert png_width(tmp_path / "accuracy" / "curves.png") == 2 * png_width(tmp_path / "loss" / "curves.png")
