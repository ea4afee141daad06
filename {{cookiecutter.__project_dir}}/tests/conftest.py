"""Fixtures shared by the tests."""

import pytest
import torch

from tests.helpers import TEST_CONFIG


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    # A tiny model on a small machine runs fastest, and steadiest, on one thread.
    torch.set_num_threads(1)


@pytest.fixture
def quick_run(tmp_path):
    """Options that make train.py save into `tmp_path` instead of the project's saved/."""
    return ["-c", TEST_CONFIG, "--set", f"trainer.save_dir={tmp_path.as_posix()}"]
