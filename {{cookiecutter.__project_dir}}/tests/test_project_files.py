"""The project's own files agree with each other, so that an update of one (by Dependabot, say)
cannot leave the others behind."""

import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def requirement_lines(name: str) -> list[Requirement]:
    lines = (PROJECT_DIR / name).read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def constraints() -> dict[str, str]:
    """{canonical name: pinned version} of constraints.txt."""
    pins = {}
    for requirement in requirement_lines("constraints.txt"):
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"constraints.txt: {requirement} is not an exact pin (==)"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_constraints_pin_ruff_at_the_version_pinned_in_pyproject():
    assert constraints().get("ruff") == ruff_pin()


def test_constraints_pin_every_package_the_project_installs():
    """`pip install -r requirements.txt -c constraints.txt` (or `-e ".[dev]"`) installs only pinned
    versions of the packages the project names: add a new dependency to constraints.txt too."""
    pyproject = (PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8")
    dev = re.search(r"^dev = \[(.*)\]$", pyproject, flags=re.MULTILINE).group(1)
    named = [requirement.name for requirement in requirement_lines("requirements.txt")]
    named += [Requirement(item).name for item in re.findall(r'"([^"]+)"', dev)]
    unpinned = sorted(name for name in named if canonicalize_name(name) not in constraints())
    assert not unpinned, f"constraints.txt pins no version of {unpinned}"


def test_ci_installs_every_package_at_the_versions_in_constraints():
    path = PROJECT_DIR / ".github" / "workflows" / "ci.yml"
    if not path.exists():
        pytest.skip(".github/workflows/ci.yml was not generated")
    installs = re.findall(r"pip install (.+)", path.read_text(encoding="utf-8"))
    unconstrained = [line for line in installs if "-c constraints.txt" not in line and line != "--upgrade pip"]
    assert installs and not unconstrained, unconstrained
