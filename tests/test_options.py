"""Fast tier over combinations of template options: each bakes (hooks on, smoke run off) into
exactly its files, with configs, metadata and CI files that agree with the answers, and the whole
lot passes the pinned ruff.

The default run takes the 48 curated combinations (tests/helpers.py ``CURATED``): every
combination of the options that meet in the same files, and every value of each option baked
with every value of each other one. The other 2,256 of the full product carry the
``full_product`` marker: ``python -m pytest -m "not slow"`` runs the product (the template's
workflow does, once a week)."""

import json
import re
import sys
import tomllib

import jsonschema
import pytest
import yaml
from cookiecutter.utils import create_env_with_context
from jinja2 import nodes

from helpers import (
    COMBINATIONS,
    CONFIG_FILES,
    CURATED,
    FILE_LEVEL,
    INTERACTING,
    JINJA_LEFTOVER,
    OPTIONS,
    TEMPLATE,
    combination_id,
    expected_listing,
    is_copy_only,
    is_junk,
    listing,
    render_context,
    run,
    text_files,
    value_pairs,
)

LOADERS = {"digits": "DigitsDataLoader", "mnist": "MnistDataLoader", "image_folder": "ImageFolderDataLoader"}
# The newest Python that the pinned torch has wheels for: CI's newest leg, the last classifier.
NEWEST_PYTHON = "3.14"
PINNED_RUFF = re.search(r"ruff==([0-9.]+)", (TEMPLATE / "pyproject.toml").read_text(encoding="utf-8")).group(1)


def load_config_file(project, answers):
    text = (project / CONFIG_FILES[answers["config_format"]]).read_text(encoding="utf-8")
    return yaml.safe_load(text) if answers["config_format"] == "yaml" else json.loads(text)


FULL = pytest.mark.full_product
COMBINATION_SETS = [
    pytest.param(CURATED, id="curated"),
    pytest.param(COMBINATIONS, id="full-product", marks=FULL),
]


def combination_params():
    """Every combination, those outside the curated list marked ``full_product``."""
    curated = {combination_id(answers) for answers in CURATED}
    return [
        pytest.param(answers, id=combination_id(answers), marks=() if combination_id(answers) in curated else FULL)
        for answers in COMBINATIONS
    ]


def test_the_product_covers_every_choice():
    """9 options: 3 datasets x 2 formats x 2 x 2 x 2 x 2 x 2 (yes/no) x 4 licenses x 3 Pythons = 2,304."""
    assert len(COMBINATIONS) == 2304 == len({combination_id(a) for a in COMBINATIONS})


def test_the_curated_combinations_bake_every_pair_of_values():
    """The default run's combinations hold every combination of the interacting options, and
    every value of every option next to every value of every other option, so a file-level
    check runs at least once on each value it depends on."""
    ids = [combination_id(answers) for answers in CURATED]
    assert len(ids) == len(set(ids)) <= 60
    interacting = {tuple(answers[name] for name in INTERACTING) for answers in CURATED}
    assert len(interacting) == 3 * 2 * 2 * 2 * 2
    every_pair = set().union(*map(value_pairs, COMBINATIONS))
    assert set().union(*map(value_pairs, CURATED)) == every_pair
    assert len(every_pair) == 213


def option_uses(source):
    """The options each place in a template text depends on: those of an output, a condition or
    a loop, plus those of the conditions around it and of the variables it reads."""
    aliases, uses = {}, []

    def options_in(node):
        found = set()
        for child in [node, *node.find_all((nodes.Getattr, nodes.Name))]:
            if isinstance(child, nodes.Getattr) and isinstance(child.node, nodes.Name):
                if child.node.name == "cookiecutter" and child.attr in OPTIONS:
                    found.add(child.attr)
            elif isinstance(child, nodes.Name):
                found |= aliases.get(child.name, set())
        return frozenset(found)

    def walk(node, around):
        if isinstance(node, nodes.Assign):
            aliases[node.target.name] = options_in(node.node) | around
        elif isinstance(node, (nodes.If, nodes.For)):
            inner = options_in(node.test if isinstance(node, nodes.If) else node.iter) | around
            uses.append(inner)
            for child in [*node.body, *getattr(node, "elif_", []), *node.else_]:
                walk(child, inner)
        elif isinstance(node, nodes.Output):
            uses.extend(options_in(child) | around for child in node.nodes if not isinstance(child, nodes.TemplateData))
        else:
            for child in node.iter_child_nodes():
                walk(child, around)

    walk(create_env_with_context(render_context()).parse(source), frozenset())
    return uses


def test_file_level_options_meet_at_most_one_other_option_in_any_template_text():
    """What makes the curated list enough: no place in the template's rendered files depends on a
    file-level option together with two or more other options, so baking every pair of values
    renders every variant of every such place (the interacting options are baked in full)."""
    checked = 0
    for path, text in text_files(TEMPLATE):
        if is_copy_only(path):
            continue
        for options in option_uses(text):
            checked += bool(options & set(FILE_LEVEL))
            assert not (options & set(FILE_LEVEL) and len(options) > 2), (path, sorted(options))
    assert checked >= 8  # the workflow, LICENSE, pyproject.toml and README.md use them


def twin_of(answers):
    """The curated combination with the same interacting options in the other config format."""
    other = "yaml" if answers["config_format"] == "json" else "json"
    wanted = {name: answers[name] for name in INTERACTING} | {"config_format": other}
    (twin,) = [a for a in CURATED if all(a[name] == value for name, value in wanted.items())]
    return twin


@pytest.mark.parametrize("answers", combination_params())
def test_combination_bakes_exactly_its_files(baked, answers):
    """The project holds the template's files less those of the options not chosen; no Jinja is
    left in any text file and every line ends with LF."""
    project, error = baked(answers)
    assert error is None, error
    files = listing(project)
    expected = expected_listing(**answers)
    assert files == expected, {"missing": expected - files, "extra": files - expected}
    assert not [path for path in files if is_junk(path)]
    for path, text in text_files(project):
        assert not JINJA_LEFTOVER.search(text), path
        assert "\r" not in text, path


@pytest.mark.parametrize("answers", combination_params())
def test_combination_config_matches_the_answers(baked, answers):
    """The config (JSON or YAML) names the chosen dataset's loader, has TensorBoard as chosen,
    passes the shipped JSON Schema, and holds the same settings in either format."""
    project, error = baked(answers)
    assert error is None, error
    config = load_config_file(project, answers)
    schema = json.loads((project / "config.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(config, schema)
    assert config["data_loader"]["type"] == LOADERS[answers["dataset"]]
    assert config["trainer"]["tensorboard"] is answers["tensorboard"]
    assert ("sweep" in config) is answers["sweeps"] is ("sweep" in schema["properties"])
    assert [tracker["type"] for tracker in config.get("trackers", [])] == ["MLflowTracker"] * answers["mlflow"]
    twin = twin_of(answers)
    other = load_config_file(baked(twin)[0], twin)
    assert {k: v for k, v in config.items() if k != "$schema"} == {k: v for k, v in other.items() if k != "$schema"}
    tests_config = json.loads((project / "tests" / "config.json").read_text(encoding="utf-8"))
    jsonschema.validate(tests_config, schema)
    assert tests_config["data_loader"]["type"] == "DigitsDataLoader"  # every project keeps the bundled digits


@pytest.mark.parametrize("answers", combination_params())
def test_combination_metadata_matches_the_answers(baked, answers):
    """pyproject.toml and requirements.txt list the same dependencies, the chosen license and
    minimum Python, and classifiers from it to the newest; the CI workflow tests both Pythons on
    Linux, macOS and Windows; pre-commit runs the pinned ruff."""
    project, error = baked(answers)
    assert error is None, error
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


@pytest.mark.parametrize("combinations", COMBINATION_SETS)
def test_every_combination_passes_ruff(baked, combinations):
    """`ruff check` and `ruff format --check` pass in every combination, each project linted
    with its own pyproject.toml (one ruff process over all of them)."""
    bakes = [baked(answers) for answers in combinations]
    assert not [error for _, error in bakes if error is not None]
    root = bakes[0][0].parents[1]
    for args in (["check", "--output-format", "concise"], ["format", "--check"]):
        result = run([sys.executable, "-m", "ruff", *args, "--no-cache", "."], cwd=root, timeout=300)
        assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.parametrize("answers", combination_params())
def test_combination_readme_tree_names_every_file(baked, answers):
    """The generated README's folder tree has a line for every file the project actually has
    (tests/ and data/ are summarised), and names no file the project lacks."""
    project, error = baked(answers)
    assert error is None, error
    readme = (project / "README.md").read_text(encoding="utf-8")
    tree = readme.split("## Folder layout", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"[\w.-]+\.(?:py|json|yaml|yml|toml|txt|npz|md)|LICENSE|\.git\w+", tree))
    wanted = {p.name for p in project.iterdir() if p.is_file() and p.name != "README.md"}
    wanted |= {p.name for p in project.glob("*/*.py") if p.parent.name != "tests" and p.name != "__init__.py"}
    wanted |= {p.name for p in project.glob(".github/workflows/*")}
    assert wanted - named == set(), "files missing from the README tree"
    assert {name for name in named if name.endswith(".py")} <= {p.name for p in project.rglob("*.py")}
    assert f"python train.py -c {CONFIG_FILES[answers['config_format']]}" in readme
