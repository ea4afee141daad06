"""Fast tier over the full product of template options: every combination bakes (hooks on,
smoke run off) into exactly its files, with configs, metadata and CI files that agree with the
answers, and the whole lot passes the pinned ruff."""

import json
import re
import sys
import tomllib

import jsonschema
import pytest
import yaml

from helpers import (
    COMBINATIONS,
    CONFIG_FILES,
    JINJA_LEFTOVER,
    TEMPLATE,
    combination_id,
    expected_listing,
    is_junk,
    listing,
    run,
    text_files,
)

LOADERS = {"digits": "DigitsDataLoader", "mnist": "MnistDataLoader", "image_folder": "ImageFolderDataLoader"}
# The newest Python that the pinned torch has wheels for: CI's newest leg, the last classifier.
NEWEST_PYTHON = "3.14"
PINNED_RUFF = re.search(r"ruff==([0-9.]+)", (TEMPLATE / "pyproject.toml").read_text(encoding="utf-8")).group(1)


def load_config_file(project, answers):
    text = (project / CONFIG_FILES[answers["config_format"]]).read_text(encoding="utf-8")
    return yaml.safe_load(text) if answers["config_format"] == "yaml" else json.loads(text)


def test_the_product_covers_every_choice():
    """9 options: 3 datasets x 2 formats x 2 x 2 x 2 x 2 x 2 (yes/no) x 4 licenses x 3 Pythons = 2,304."""
    assert len(COMBINATIONS) == 2304 == len({combination_id(a) for a in COMBINATIONS})


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_combination_bakes_exactly_its_files(baked, answers):
    """The project holds the template's files less those of the options not chosen; no Jinja is
    left in any text file and every line ends with LF."""
    project, error = baked[combination_id(answers)]
    assert error is None, error
    files = listing(project)
    expected = expected_listing(**answers)
    assert files == expected, {"missing": expected - files, "extra": files - expected}
    assert not [path for path in files if is_junk(path)]
    for path, text in text_files(project):
        assert not JINJA_LEFTOVER.search(text), path
        assert "\r" not in text, path


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_combination_config_matches_the_answers(baked, answers):
    """The config (JSON or YAML) names the chosen dataset's loader, has TensorBoard as chosen,
    passes the shipped JSON Schema, and holds the same settings in either format."""
    project, _ = baked[combination_id(answers)]
    config = load_config_file(project, answers)
    schema = json.loads((project / "config.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(config, schema)
    assert config["data_loader"]["type"] == LOADERS[answers["dataset"]]
    assert config["trainer"]["tensorboard"] is answers["tensorboard"]
    assert ("sweep" in config) is answers["sweeps"] is ("sweep" in schema["properties"])
    assert [tracker["type"] for tracker in config.get("trackers", [])] == ["MLflowTracker"] * answers["mlflow"]
    twin = dict(answers, config_format="yaml" if answers["config_format"] == "json" else "json")
    other = load_config_file(baked[combination_id(twin)][0], twin)
    assert {k: v for k, v in config.items() if k != "$schema"} == {k: v for k, v in other.items() if k != "$schema"}
    tests_config = json.loads((project / "tests" / "config.json").read_text(encoding="utf-8"))
    jsonschema.validate(tests_config, schema)
    assert tests_config["data_loader"]["type"] == "DigitsDataLoader"  # every project keeps the bundled digits


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_combination_metadata_matches_the_answers(baked, answers):
    """pyproject.toml and requirements.txt list the same dependencies, the chosen license and
    minimum Python, and classifiers from it to the newest; the CI workflow tests both Pythons on
    Linux, macOS and Windows; pre-commit runs the pinned ruff."""
    project, _ = baked[combination_id(answers)]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    meta = pyproject["project"]
    assert meta["requires-python"] == f">={answers['python_version']}"
    minimum, newest = (int(version.split(".")[1]) for version in (answers["python_version"], NEWEST_PYTHON))
    pythons = [c.rsplit(" ", 1)[1] for c in meta["classifiers"] if c.startswith("Programming Language :: Python :: 3.")]
    assert pythons == [f"3.{minor}" for minor in range(minimum, newest + 1)]
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + answers["python_version"].replace(".", "")
    assert meta.get("license") == (None if answers["license"] == "none" else answers["license"])
    if answers["license"] != "none":
        assert meta["license-files"] == ["LICENSE"]
    names = {re.split(r"[<>=!~ ]", dep)[0] for dep in meta["dependencies"]}
    assert ("torchvision" in names) is (answers["dataset"] != "digits")
    assert ("tensorboard" in names) is answers["tensorboard"]
    assert ({"optuna", "matplotlib"} <= names) is answers["sweeps"] is ("optuna" in names)
    assert ({"mlflow-skinny", "sqlalchemy", "alembic"} <= names) is answers["mlflow"] is ("mlflow-skinny" in names)
    assert {"torch", "numpy", "jsonschema", "filelock", "ruamel.yaml", "tqdm"} <= names
    requirements = (project / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert {re.split(r"[<>=!~ ]", line)[0] for line in requirements if line and line[0] != "#"} == names
    assert {"config.json", "config.yaml", "data", "saved"} <= set(pyproject["tool"]["cruft"]["skip"])
    if answers["github_actions"]:
        workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
        matrix = workflow["jobs"]["test"]["strategy"]["matrix"]
        assert matrix["python-version"] == [answers["python_version"], NEWEST_PYTHON]
        assert matrix["os"] == ["ubuntu-latest", "macos-latest", "windows-latest"]
        steps = " ".join(step.get("run", "") for step in workflow["jobs"]["test"]["steps"])
        assert "pytest" in steps
        assert "download.pytorch.org/whl/cpu" in steps
        assert f"ruff=={PINNED_RUFF}" in steps
    if answers["pre_commit"]:
        hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
        (ruff_repo,) = [repo for repo in hooks["repos"] if repo["repo"].endswith("/ruff-pre-commit")]
        assert ruff_repo["rev"] == f"v{PINNED_RUFF}"
    if answers["license"] != "none":
        first_line = (project / "LICENSE").read_text(encoding="utf-8").strip().splitlines()[0]
        assert first_line.strip() == {"MIT": "MIT License", "BSD-3-Clause": "BSD 3-Clause License"}.get(
            answers["license"], "Apache License"
        )


def test_every_combination_passes_ruff(baked):
    """`ruff check` and `ruff format --check` pass in every combination, each project linted
    with its own pyproject.toml (one ruff process over all of them)."""
    root = next(iter(baked.values()))[0].parents[1]
    for args in (["check", "--output-format", "concise"], ["format", "--check"]):
        result = run([sys.executable, "-m", "ruff", *args, "--no-cache", "."], cwd=root, timeout=300)
        assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_combination_readme_tree_names_every_file(baked, answers):
    """The generated README's folder tree has a line for every file the project actually has
    (tests/ and data/ are summarised), and names no file the project lacks."""
    project, _ = baked[combination_id(answers)]
    readme = (project / "README.md").read_text(encoding="utf-8")
    tree = readme.split("## Folder layout", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"[\w.-]+\.(?:py|json|yaml|yml|toml|txt|npz|md)|LICENSE|\.git\w+", tree))
    wanted = {p.name for p in project.iterdir() if p.is_file() and p.name != "README.md"}
    wanted |= {p.name for p in project.glob("*/*.py") if p.parent.name != "tests" and p.name != "__init__.py"}
    wanted |= {p.name for p in project.glob(".github/workflows/*")}
    assert wanted - named == set(), "files missing from the README tree"
    assert {name for name in named if name.endswith(".py")} <= {p.name for p in project.rglob("*.py")}
    assert f"python train.py -c {CONFIG_FILES[answers['config_format']]}" in readme
