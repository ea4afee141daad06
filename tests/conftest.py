"""Fixtures shared by the template's tests."""

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from helpers import COMBINATIONS, PYTHON_ENV, SKIP_ENV, bake, bake_one, combination_id


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch):
    """Every test starts with the smoke run off, no interpreter override and one torch thread."""
    monkeypatch.setenv(SKIP_ENV, "1")
    monkeypatch.delenv(PYTHON_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture(scope="session")
def default_project(cookies_session):
    """The project baked with the default answers and no smoke run (shared, read-only)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SKIP_ENV, "1")
        result = bake(cookies_session)
    assert result.exception is None, result.exception
    return result.project_path


@pytest.fixture(scope="session")
def baked(tmp_path_factory):
    """Every combination baked once, two at a time: {combination id: (project folder, error)}.
    Shared by tests/test_options.py and tests/test_audits.py (read-only)."""
    root = tmp_path_factory.mktemp("combinations")
    home = root.parent / f"{root.name}-cookiecutter-home"
    home.mkdir()
    config_file = home / "config.yaml"
    config_file.write_text(
        f"cookiecutters_dir: {json.dumps(str(home / 'templates'))}\nreplay_dir: {json.dumps(str(home / 'replay'))}\n",
        encoding="utf-8",
    )
    jobs = [(answers, str(root / combination_id(answers)), str(config_file)) for answers in COMBINATIONS]
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        errors = list(pool.map(bake_one, jobs, chunksize=8))
    return {
        combination_id(answers): (Path(out) / "my_project", error)
        for (answers, out, _), error in zip(jobs, errors, strict=True)
    }
