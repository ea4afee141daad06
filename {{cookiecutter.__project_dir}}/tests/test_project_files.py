"""The project's own files agree with each other, so that an update of one (by Dependabot, say)
cannot leave the others behind."""

import re

import pytest

from tests.helpers import PROJECT_DIR


def ruff_pin() -> str:
    return re.search(r'"ruff==([^"]+)"', (PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8")).group(1)


@pytest.mark.parametrize("name", [".pre-commit-config.yaml", ".github/workflows/ci.yml"])
def test_every_file_that_runs_ruff_runs_the_version_pinned_in_pyproject(name):
    path = PROJECT_DIR / name
    if not path.exists():
        pytest.skip(f"{name} was not generated")
    text = path.read_text(encoding="utf-8")
    versions = re.findall(r"ruff==([0-9][^\s\"']*)", text) + re.findall(r"ruff-pre-commit\s+rev:\s*v(\S+)", text)
    assert versions, f"{name} names no ruff version"
    assert set(versions) == {ruff_pin()}, f"{name} runs ruff {versions}, pyproject.toml pins {ruff_pin()}"
