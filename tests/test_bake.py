"""Fast tier: what a freshly generated project contains (hooks on, smoke run off)."""

import ast
import json
import tomllib
from pathlib import Path

import pytest
from cookiecutter.utils import create_env_with_context
from jinja2 import TemplateError

from helpers import (
    JINJA_LEFTOVER,
    REPO,
    TEMPLATE,
    bake,
    copy_only_files,
    expected_listing,
    is_copy_only,
    is_junk,
    listing,
    render_context,
    ruff,
    text_files,
)


def test_template_folder_ships_no_build_junk():
    """The template folder holds no caches, bytecode or runs that a bake would copy."""
    junk = sorted(path for path in listing(TEMPLATE) if is_junk(path))
    assert not junk, f"remove these from the template folder, a bake would copy them: {junk}"


def test_every_template_file_renders():
    """Every text file of the template is valid Jinja (cookiecutter's own error names no file):
    literal '{{', '{%' or '{#' in code must be escaped, e.g. with {% raw %}...{% endraw %}."""
    context = render_context()
    env = create_env_with_context(context)
    broken = []
    for relative, text in text_files(TEMPLATE):
        if is_copy_only(relative):
            continue
        try:
            env.from_string(text).render(**context)
        except TemplateError as err:
            line = getattr(err, "lineno", None)
            snippet = text.splitlines()[line - 1].strip() if line else ""
            broken.append(f"{relative}:{line}: {err.message}: {snippet}")
    assert not broken, "\n".join(broken)


def test_default_bake_succeeds_in_folder_named_by_slug(default_project):
    """Baking with every default gives a project folder named after the default slug."""
    assert default_project.name == "my_project"
    assert (default_project / "train.py").is_file()


def test_default_bake_has_exactly_the_template_files(default_project):
    """A project holds exactly the template's files, names rendered: nothing missing or extra."""
    baked = listing(default_project)
    expected = expected_listing()
    assert baked == expected, {"missing": expected - baked, "extra": baked - expected}
    assert not [path for path in baked if is_junk(path)]


def test_default_bake_has_no_unrendered_jinja(default_project):
    """No text file of a fresh project contains a leftover '{{ cookiecutter...' or '{%'."""
    leftovers = [
        f"{path}: {line.strip()}"
        for path, text in text_files(default_project)
        for line in text.splitlines()
        if JINJA_LEFTOVER.search(line)
    ]
    assert not leftovers


def test_default_bake_text_files_use_lf_line_endings(default_project):
    """Every text file of a fresh project ends its lines with LF only."""
    crlf = [path for path, text in text_files(default_project) if "\r" in text]
    assert not crlf


def test_default_config_parses_and_names_required_sections(default_project):
    """config.json of a fresh project is valid JSON with the sections train.py reads."""
    config = json.loads((default_project / "config.json").read_text(encoding="utf-8"))
    for section in ("name", "arch", "data_loader", "optimizer", "loss", "metrics", "trainer"):
        assert section in config


def test_bundled_data_is_copied_byte_for_byte(default_project):
    """data/digits.npz, like every `_copy_without_render` file, is copied byte for byte."""
    binaries = copy_only_files()
    assert "data/digits.npz" in binaries
    for relative in set(binaries) & expected_listing():
        assert (default_project / relative).read_bytes() == (TEMPLATE / relative).read_bytes()


def test_default_bake_passes_ruff(default_project):
    """A fresh project passes `ruff check` and `ruff format --check` with its own config."""
    for args in (["check"], ["format", "--check"]):
        result = ruff(default_project, *args)
        assert result.returncode == 0, result.stdout


def test_default_bake_prints_next_steps(cookies, capfd):
    """After generation the user sees the commands to install, train, test and run pytest."""
    result = bake(cookies)
    assert result.exception is None
    out = capfd.readouterr().out
    assert "Smoke run skipped (PYTORCH_TEMPLATE_SKIP_SMOKE is set)" in out
    for command in (
        "cd my_project",
        "pip install -r requirements.txt -c constraints.txt",
        "python train.py -c config.json",
        "python test.py -c config.json -r auto",
        "python -m pytest",
    ):
        assert command in out


@pytest.mark.parametrize("value", [False, "False", "no", "0"])
def test_private_smoke_run_false_skips_the_smoke_run(cookies, capfd, monkeypatch, value):
    """--no-input _smoke_run=no (or extra_context False) skips the smoke run; project kept."""
    monkeypatch.delenv("PYTORCH_TEMPLATE_SKIP_SMOKE")
    result = bake(cookies, _smoke_run=value)
    assert result.exception is None, result.exception
    assert "Smoke run skipped (_smoke_run is false)" in capfd.readouterr().out
    assert listing(result.project_path) == expected_listing()


HOSTILE = 'x"; import os; os.system("touch PWNED") #'
VARIATIONS = [
    pytest.param({"project_name": "Image Classifier"}, "image_classifier", id="spaces"),
    pytest.param({"project_name": "deep-net-v2"}, "deep_net_v2", id="hyphens"),
    pytest.param({"project_name": "  Padded Name  "}, "padded_name", id="padded"),
    pytest.param({"project_name": "Réseau de neurones ∑", "project_slug": "reseau"}, "reseau", id="unicode"),
    pytest.param({"project_name": "Whatever", "project_slug": "custom_slug"}, "custom_slug"),
    pytest.param(
        {
            "project_name": 'Bob\'s "Best" Net \\ 100%',
            "project_slug": "bobs_net",
            "description": 'It\'s a "quoted" description with a backslash \\ and <tags> & more',
            "author_name": 'Seán O\'Brien "Ace"',
        },
        "bobs_net",
        id="quotes",
    ),
    pytest.param(
        {
            "project_name": HOSTILE,
            "project_slug": "hostile",
            "description": "'''\"\"\"; import os; os.system('touch PWNED') #",
            "author_name": '"""); __import__(\'os\').system(\'touch PWNED\'); ("""',
        },
        "hostile",
        id="hostile",
    ),
]


@pytest.mark.parametrize(("answers", "slug"), VARIATIONS)
def test_answers_are_rendered_as_data(cookies, tmp_path, monkeypatch, answers, slug):
    """Names with spaces, hyphens, unicode, quotes or code bake a valid, lint-clean project.

    The answers appear verbatim in README.md and pyproject.toml (which still parses), every
    Python file compiles, and nothing in them is ever executed by the hooks.
    """
    monkeypatch.chdir(tmp_path)
    result = bake(cookies, **answers)
    assert result.exception is None, result.exception
    project = result.project_path
    assert project.name == slug
    assert listing(project) == expected_listing(**answers)

    readme = (project / "README.md").read_text(encoding="utf-8")
    assert result.context["project_name"] in readme
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"].replace("-", "_") == slug
    assert pyproject["project"]["description"] == result.context["description"]
    assert result.context["author_name"] in [a["name"] for a in pyproject["project"]["authors"]]

    for path in project.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for args in (["check"], ["format", "--check"]):
        linted = ruff(project, *args)
        assert linted.returncode == 0, linted.stdout

    pwned = [p for root in (tmp_path, project.parent, REPO) for p in Path(root).rglob("PWNED")]
    assert not pwned
