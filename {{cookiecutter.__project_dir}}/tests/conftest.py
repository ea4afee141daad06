"""Fixtures shared by the tests. Tests marked `slow` (real torchrun, compile, kill -9, signals to
real processes, full training runs) are left out of a plain `pytest`; `pytest -m "slow or not
slow"` runs everything, as the CI workflow does."""

import logging
import signal

import pytest
import torch

from tests.helpers import TEST_CONFIG


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    # A tiny model on a small machine runs fastest, and steadiest, on one thread.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def signal_handlers_restored():
    """A run stopped by a signal keeps its handlers to the end of the process (the rest of a burst
    of signals must not kill it mid-exit); in the test process, put the previous ones back."""
    from utils.runtime import StopSignal

    saved = {signum: signal.getsignal(signum) for signum in StopSignal.SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture(autouse=True)
def console_logging_removed():
    """train.main() logs to the sys.stdout it finds, which pytest swaps per test and then closes:
    take its handlers away after each test (pytest's own stay)."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)


@pytest.fixture
def quick_run(tmp_path):
    """Options that make train.py train the tests' config into `tmp_path`."""
    return ["-c", TEST_CONFIG, "--set", f"trainer.save_dir={tmp_path.as_posix()}"]
