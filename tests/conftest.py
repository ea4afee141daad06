"""Fixtures shared by the template's tests."""

import pytest

from helpers import PYTHON_ENV, SKIP_ENV, bake


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
