"""Fixtures shared by the template's tests."""

import functools

import pytest

from helpers import PYTHON_ENV, SKIP_ENV, bake, bake_combination


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
def baked(tmp_path_factory, worker_id):
    """bake(answers) -> (project folder, error or None): each combination baked once per test run,
    with the smoke run off, shared by tests/test_options.py and tests/test_audits.py (read-only).
    Under pytest-xdist the workers share one folder, so a combination is baked by one of them."""
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "combinations"
    root.mkdir(exist_ok=True)
    return functools.partial(bake_combination, root=root)
