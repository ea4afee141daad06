"""Helpers for the tests: the project folder, and running the entry scripts as real processes."""

import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python <args>` in the project folder, as a user would, and capture its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
