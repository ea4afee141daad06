"""Fast tier: bad answers stop generation with one clear line each and leave nothing on disk."""

import ast
import keyword
import re
import sys

import pytest
from cookiecutter.exceptions import FailedHookException

from helpers import REPO, bake, load_hook

NAMES_THE_PROJECT_USES = [
    "torch",
    "torchvision",
    "numpy",
    "tensorboard",
    "tqdm",
    "test",
    "tests",
    "model",
    "base",
    "trainer",
    "logger",
    "utils",
    "data_loader",
    "data",
    "parse_config",
    "predict",
    "train",
    "config",
]

BAD_SLUGS = [
    pytest.param("class", "is a Python keyword", id="keyword"),
    pytest.param("match", "is a Python keyword", id="soft-keyword"),
    pytest.param("torch", "would shadow the module", id="third-party"),
    pytest.param("model", "would shadow the module", id="project-package"),
    pytest.param("json", "would shadow the standard-library module", id="stdlib"),
    pytest.param("../evil", "path separator or '..'", id="dotdot"),
    pytest.param("a\\b", "path separator or '..'", id="backslash"),
    pytest.param("it's", "contains a quote", id="single-quote"),
    pytest.param('say"hi', "contains a quote", id="double-quote"),
    pytest.param("my project", "contains whitespace", id="whitespace"),
    pytest.param("héllo", "non-ASCII", id="non-ascii"),
    pytest.param("MyProject", "contains uppercase letters", id="uppercase"),
    pytest.param("1st_project", "starts with a digit", id="leading-digit"),
    pytest.param("my-project", "is not a lowercase identifier", id="hyphen"),
    pytest.param("com1", "device name Windows cannot use", id="windows-device"),
    # The folder is named from `__project_dir`, the slug with separators and dots neutralised,
    # so even these never create anything outside the output folder.
    pytest.param("a/b", "path separator or '..'", id="slash"),
    pytest.param("..", "path separator or '..'", id="dot-dot"),
    pytest.param("", "project_slug is empty", id="empty"),
]


def leftovers(tmp_path):
    """What a failed bake left in the pytest-cookies output folder (empty bakeNN folders aside)."""
    root = tmp_path / "cookies"
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if not (path.parent == root and path.is_dir() and not any(path.iterdir()))
    )


@pytest.mark.parametrize(("slug", "message"), BAD_SLUGS)
def test_bad_slug_stops_generation_with_named_problem(cookies, capfd, tmp_path, slug, message):
    """An unusable project_slug stops cookiecutter with 'ERROR: project_slug ...' naming the
    problem and how to fix it, and no file or folder is left behind."""
    result = bake(cookies, project_slug=slug)
    assert isinstance(result.exception, FailedHookException)
    assert result.project_path is None
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR: project_slug")]
    assert len(errors) == 1, err
    assert message in errors[0]
    assert " - choose a lowercase Python identifier" in errors[0]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        pytest.param({"project_name": "", "project_slug": "ok"}, "project_name is empty", id="empty-name"),
        pytest.param({"project_name": "   ", "project_slug": "ok"}, "project_name is empty", id="blank"),
        pytest.param(
            {"project_name": "Two\nLines", "project_slug": "ok"},
            "project_name 'Two\\nLines' spans several lines",
            id="multiline-name",
        ),
        pytest.param(
            {"project_name": "Bell\x07", "project_slug": "ok"},
            "contains control characters",
            id="control-char",
        ),
        pytest.param(
            {"project_name": "x" * 101, "project_slug": "ok"},
            "project_name is 101 characters long - shorten it to 100",
            id="too-long",
        ),
        pytest.param({"project_name": "Réseau"}, "project_slug 'réseau' contains non-ASCII", id="unicode"),
        pytest.param({"description": "a\nb"}, "description 'a\\nb' spans", id="description"),
        pytest.param({"author_name": "a\r\nb"}, "spans several lines", id="author"),
    ],
)
def test_bad_text_answer_stops_generation_with_named_problem(cookies, capfd, tmp_path, answers, message):
    """Empty, multi-line, control-character or over-long answers are refused by name, and a
    non-ASCII name without an explicit slug asks for a slug."""
    result = bake(cookies, **answers)
    assert isinstance(result.exception, FailedHookException)
    assert result.project_path is None
    err = capfd.readouterr().err
    assert any(line.startswith("ERROR: ") and message in line for line in err.splitlines()), err
    assert leftovers(tmp_path) == []


def test_all_problems_are_reported_at_once(cookies, capfd):
    """Several bad answers give one ERROR line each in a single run, before anything else."""
    result = bake(cookies, project_name="", project_slug="class", description="a\nb", author_name="x\ny")
    assert isinstance(result.exception, FailedHookException)
    err = capfd.readouterr().err.splitlines()
    assert [line.split(" ")[1] for line in err[:4]] == [
        "project_name",
        "project_slug",
        "description",
        "author_name",
    ]
    assert all(" - " in line for line in err[:4])
    assert "Traceback" not in "\n".join(err[:4])


@pytest.mark.parametrize("name", NAMES_THE_PROJECT_USES)
def test_slug_may_not_shadow_a_module_the_project_uses(tmp_path, name):
    """Every module or folder the project imports or contains is refused as project_slug."""
    hook = load_hook("pre_gen_project", tmp_path)
    problems = hook.check_slug(name)
    assert len(problems) == 1
    assert "would shadow" in problems[0]


def test_slug_may_not_be_any_keyword_or_stdlib_module(tmp_path):
    """Every keyword, soft keyword and standard-library module name is refused as project_slug."""
    hook = load_hook("pre_gen_project", tmp_path)
    names = set(keyword.kwlist) | set(keyword.softkwlist) | set(sys.stdlib_module_names)
    accepted = sorted(name for name in names if not hook.check_slug(name))
    assert not accepted


def test_reserved_names_cover_every_import_and_top_level_name(default_project, tmp_path):
    """The refused names include every top-level module the generated code imports and every
    top-level file or folder of the project, so this check stays right as files are added."""
    hook = load_hook("pre_gen_project", tmp_path)
    refused = hook.RESERVED_NAMES | hook.STDLIB_NAMES
    names = {p.name for p in default_project.iterdir() if p.is_dir()}
    names |= {p.stem for p in default_project.glob("*.py")}
    for path in default_project.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    missing = sorted(n for n in names if hook.SLUG_PATTERN.fullmatch(n) and n not in refused)
    assert not missing, f"add these to RESERVED_NAMES in hooks/pre_gen_project.py: {missing}"


@pytest.mark.parametrize(
    ("slug", "accepted"),
    [
        ("my_project", True),
        ("a", True),
        ("digits2_cnn", True),
        ("x" * 60, True),
        ("_private", False),
        ("snake_Case", False),
        ("tab\tname", False),
        ("nul\0name", False),
        ("dot.name", False),
    ],
)
def test_check_slug_table(tmp_path, slug, accepted):
    """Lowercase ASCII identifiers are accepted; anything else is refused with a reason."""
    hook = load_hook("pre_gen_project", tmp_path)
    problems = hook.check_slug(slug)
    assert (problems == []) is accepted, problems
    assert all(" - " in problem for problem in problems)


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("2.7.1", True),
        ("2.7.0", True),
        ("2.10.0", True),
        ("3.0.0.dev1", True),
        ("2.8.0rc1", True),
        ("2.6.0", False),
        ("1.7.3", False),
        ("unknown", False),
    ],
)
def test_cookiecutter_older_than_2_7_is_refused(tmp_path, version, ok):
    """cookiecutter < 2.7 (which turns CLI 'no' into a truthy string) is refused with an
    upgrade command; versions are compared as numbers, so 2.10 counts as newer than 2.7."""
    hook = load_hook("pre_gen_project", tmp_path)
    problems = hook.check_cookiecutter_version(version)
    assert (problems == []) is ok
    if not ok:
        assert problems[0].startswith(f"cookiecutter {version} is too old")
        assert "pip install 'cookiecutter>=2.7'" in problems[0]


def test_pre_hook_reports_the_running_cookiecutter_version(tmp_path):
    """The version checked is the one of the cookiecutter actually running the hook."""
    import cookiecutter

    hook = load_hook("pre_gen_project", tmp_path)
    assert hook.installed_cookiecutter_version() == cookiecutter.__version__
    assert hook.validate(hook.ANSWERS, cookiecutter.__version__) == []


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (True, True),
        (False, True),
        (None, True),
        ("False", True),
        ("no", True),
        ("0", True),
        ("Off", True),
        ("yes", True),
        ("maybe", False),
        (2, False),
    ],
)
def test_smoke_run_switch_must_be_yes_or_no(tmp_path, value, ok):
    """_smoke_run may be a bool or a yes/no word (as a replay file or cookiecutter 2.6 gives it);
    anything else is refused before the project is written."""
    hook = load_hook("pre_gen_project", tmp_path)
    assert (hook.check_smoke_run(value) == []) is ok


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dataset", "MNIST", "dataset 'MNIST' is not one of digits, mnist, image_folder (did you mean 'mnist'?)"),
        ("dataset", "cifar10", "dataset 'cifar10' is not one of digits, mnist, image_folder - "),
        ("config_format", "toml", "config_format 'toml' is not one of json, yaml - "),
        ("license", "GPL-3.0", "license 'GPL-3.0' is not one of MIT, BSD-3-Clause, Apache-2.0, none - "),
        ("python_version", "3.9", "python_version '3.9' is not one of 3.10, 3.11, 3.12 - "),
        ("tensorboard", "maybe", "tensorboard 'maybe' is not a yes/no value - use true or false"),
        ("github_actions", 2, "github_actions 2 is not a yes/no value"),
        ("pre_commit", None, "pre_commit None is not a yes/no value"),
    ],
)
def test_option_answers_outside_their_choices_are_refused(tmp_path, key, value, message):
    """Answers that bypass cookiecutter's own choice checks (a replay file, an old cruft state)
    are refused by the pre-gen hook with one line naming the option and its choices."""
    hook = load_hook("pre_gen_project", tmp_path)
    answers = dict(hook.ANSWERS, **{key: value})
    problems = hook.validate(answers, "2.7.1")
    assert len(problems) == 1
    assert problems[0].startswith(message), problems


@pytest.mark.parametrize("value", [True, False, "yes", "no", "False", "on"])
def test_yes_no_options_take_bools_and_yes_no_words(tmp_path, value):
    hook = load_hook("pre_gen_project", tmp_path)
    assert hook.validate(dict(hook.ANSWERS, tensorboard=value, pre_commit=value), "2.7.1") == []


def test_choice_outside_the_list_writes_nothing(tmp_path):
    """cookiecutter itself refuses `dataset=cifar` before the hooks run: nothing is written, and
    its message lists the choices."""
    from cookiecutter.main import cookiecutter

    with pytest.raises(ValueError, match=re.escape("the choices are ['digits', 'mnist', 'image_folder']")):
        cookiecutter(str(REPO), no_input=True, extra_context={"dataset": "cifar"}, output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
