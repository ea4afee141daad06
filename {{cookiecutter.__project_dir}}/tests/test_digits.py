"""The shipped config trains the bundled digits to a useful model (digits projects only)."""

import re

import pytest

from tests.helpers import only_run_dir, run_script, shipped_config


@pytest.mark.slow
def test_shipped_config_reaches_97_percent_test_accuracy(tmp_path):
    """The project's own config trains to >= 97% accuracy on the held-out test split."""
    trained = run_script("train.py", "-c", shipped_config(), "--set", f"trainer.save_dir={tmp_path.as_posix()}")
    assert trained.returncode == 0, trained.stderr
    tested = run_script("test.py", "-r", str(only_run_dir(tmp_path) / "model_best.pth"))
    assert tested.returncode == 0, tested.stderr
    assert "(epoch" in tested.stdout and "360 samples" in tested.stdout
    accuracy = float(re.search(r"accuracy\s*:\s*([0-9.]+)", tested.stdout).group(1))
    assert accuracy >= 0.97, tested.stdout
