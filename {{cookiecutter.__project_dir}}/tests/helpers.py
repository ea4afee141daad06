"""Helpers for the tests: the project folder, and running the entry scripts as real processes."""

import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
# The tests train on the bundled digits with this config, so they run offline and in seconds
# whatever dataset and settings the project's own config uses.
TEST_CONFIG = "tests/config.json"


def shipped_config() -> str:
    """The project's own config file: config.json, or config.yaml for a project made with YAML."""
    return next(name for name in ("config.json", "config.yaml") if (PROJECT_DIR / name).is_file())


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python <args>` in the project folder, as a user would, and capture its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_script(*args: str) -> subprocess.Popen:
    """Start `python <args>` in the project folder; read its merged output line by line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(process: subprocess.Popen, marker: str) -> list[str]:
    """Lines printed by `process` up to and including the first one containing `marker`."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"process ended before printing {marker!r}:\n{''.join(lines)}")


def step_losses(output: str) -> dict[int, str]:
    """The per-step losses that train.py logs at verbosity 2, by global step."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "step" and parts[2] == "loss":
            found[int(parts[1])] = parts[3]
    return found
