"""A generated project's constraints.txt pins what the template is tested with: the same versions
as requirements-dev.txt, for every package the project names, installable on every Python it
supports."""

import json
import tomllib
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from helpers import REPO, SKIP_ENV, TEMPLATE, bake

PYTHON_CHOICES = json.loads((REPO / "cookiecutter.json").read_text(encoding="utf-8"))["python_version"]
OLDEST_PYTHON = min(PYTHON_CHOICES, key=lambda version: tuple(map(int, version.split("."))))


def requirement_lines(path):
    """The requirements of a requirements or constraints file: comment lines and blank lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def pins(path) -> dict[str, Requirement]:
    """{canonical name: requirement} of a file whose every requirement is one exact pin."""
    found = {}
    for requirement in requirement_lines(path):
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {requirement} is not an exact pin"
        found[canonicalize_name(requirement.name)] = requirement
    return found


@pytest.fixture(scope="module")
def full_project(cookies_session):
    """A project with every optional package (torchvision, TensorBoard, Optuna, MLflow, pre-commit),
    made for the oldest Python the template offers."""
    answers = {"dataset": "mnist", "tensorboard": True, "sweeps": True, "mlflow": True, "pre_commit": True}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SKIP_ENV, "1")
        result = bake(cookies_session, **answers, python_version=OLDEST_PYTHON)
    assert result.exception is None, result.exception
    return result.project_path


def test_constraints_file_is_the_same_whatever_the_answers(full_project):
    """constraints.txt has no Jinja: every project gets the template's file byte for byte (pip
    ignores the pins of packages a project does not install)."""
    assert (full_project / "constraints.txt").read_bytes() == (TEMPLATE / "constraints.txt").read_bytes()


def test_constraints_pin_the_versions_the_template_is_tested_with(full_project):
    """Each pin of constraints.txt is the version requirements-dev.txt pins: what CI tested the
    template with is what a generated project installs."""
    tested = {}
    for requirement in requirement_lines(REPO / "requirements-dev.txt"):
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator == "==":
            tested[canonicalize_name(requirement.name)] = specifiers[0].version
    differ = {
        name: (next(iter(requirement.specifier)).version, tested.get(name, "not pinned"))
        for name, requirement in pins(full_project / "constraints.txt").items()
        if tested.get(name) != next(iter(requirement.specifier)).version
    }
    assert not differ, f"constraints.txt and requirements-dev.txt pin these differently: {differ}"


def test_constraints_pin_every_package_a_project_names(full_project):
    """requirements.txt, pyproject.toml's dependencies and its [dev] extra name no package that
    constraints.txt leaves unpinned."""
    pinned = set(pins(full_project / "constraints.txt"))
    project = tomllib.loads((full_project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    named = [*requirement_lines(full_project / "requirements.txt"), *map(Requirement, project["dependencies"])]
    named += map(Requirement, project["optional-dependencies"]["dev"])
    unpinned = sorted({r.name for r in named if canonicalize_name(r.name) not in pinned})
    assert not unpinned, f"add these to constraints.txt (and requirements-dev.txt): {unpinned}"


def supported_pythons(project) -> list[str]:
    """The Python versions a project supports, from its classifiers: its minimum to the newest."""
    classifiers = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]["classifiers"]
    return [c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")]


def test_every_pin_holds_on_each_python_its_release_installs_on(full_project):
    """A pin applies on exactly the Pythons its release supports (its Requires-Python, read from
    the installed release): on the others its `python_version` marker turns it off, so that
    `pip install -c constraints.txt` still works there, and no pin is turned off needlessly."""
    pythons = supported_pythons(full_project)
    assert pythons[0] == OLDEST_PYTHON
    assert len(pythons) > 1
    wrong = []
    for name, requirement in pins(full_project / "constraints.txt").items():
        version = next(iter(requirement.specifier)).version
        try:
            release = distribution(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed: python -m pip install -r requirements-dev.txt")
        assert release.version.split("+")[0] == version, f"{name} {release.version} installed, {version} pinned"
        supports = SpecifierSet(release.metadata.get("Requires-Python") or "")
        for python in pythons:
            applies = requirement.marker is None or requirement.marker.evaluate(
                {"python_version": python, "python_full_version": f"{python}.0"}
            )
            if applies != supports.contains(f"{python}.0"):
                wrong.append(f"{requirement} on Python {python} (the release needs Python {supports})")
    assert not wrong, wrong
