"""Slow tier: projects stay updatable with cruft, and an update never touches the user's files.

Runs the real `cruft create`, `cruft check`, `cruft diff` and `cruft update` against a git copy
of this template, as a user keeping a project in step with the template would. The older
template an update starts from is made from this one (no git history needed: CI clones may be
shallow).
"""

import json
import re
import shutil
import sys
import time

import pytest

from helpers import REPO, SKIP_ENV, TEMPLATE, run

pytestmark = pytest.mark.slow

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}
# Lines the post-generation hook prints around a smoke run: none may reach an update or a diff.
HOOK_OUTPUT = ("Trainable parameters", "epoch 1/1", "Smoke run", "Next steps", "config check")
# What the sweeps option adds to a project, beyond Jinja blocks and the schema's `sweep` key.
SWEEP_FILES = ("sweep.py", "utils/search_space.py", "tests/test_sweep.py")


def git(cwd, *args):
    result = run(["git", *args], cwd=cwd, timeout=60, env=GIT_ENV)
    assert result.returncode == 0, result.stdout
    return result.stdout


def cruft(cwd, env, *args):
    return run([sys.executable, "-m", "cruft", *args], cwd=cwd, timeout=300, env={**GIT_ENV, **env})


def copy_template(destination):
    """Copy this template's files into destination (created or not), leaving a .git there alone."""
    ignore = shutil.ignore_patterns(".git", "__pycache__", ".*_cache", ".benchmarks")
    shutil.copytree(REPO, destination, ignore=ignore, dirs_exist_ok=True)
    return destination


def make_older_template(tree):
    """Turn a copy of this template into a consistent older one, from before the sweeps option:
    no `sweeps` question, no sweep files, and every Jinja test of the answer (README, config,
    requirements, pyproject, hooks) rendered as if it were no."""
    cookiecutter_json = tree / "cookiecutter.json"
    answers = json.loads(cookiecutter_json.read_text(encoding="utf-8"))
    del answers["sweeps"], answers["__prompts__"]["sweeps"]
    cookiecutter_json.write_text(json.dumps(answers, indent=2) + "\n", encoding="utf-8")
    for relative in SWEEP_FILES:
        (tree / TEMPLATE.name / relative).unlink()
    rewritten = 0
    for path in [*(tree / "hooks").glob("*.py"), *(tree / TEMPLATE.name).rglob("*")]:
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # data files (the bundled digits)
            continue
        if "cookiecutter.sweeps" in text:
            path.write_text(text.replace("cookiecutter.sweeps", "false"), encoding="utf-8")
            rewritten += 1
    # README, config.json, config.yaml, requirements.txt, pyproject.toml and both hooks: if the
    # option moves elsewhere, this older template must follow, or the test would prove nothing.
    assert rewritten >= 7, rewritten


@pytest.fixture
def cruft_env(tmp_path):
    """cruft's environment: a private cookiecutter config (no replay files in the home folder)
    and the smoke run skipped, as a test that wants it on says so."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(f"replay_dir: {json.dumps(str(home / 'replay'))}\n", encoding="utf-8")
    return {SKIP_ENV: "1", "COOKIECUTTER_CONFIG": str(home / "config.yaml")}


@pytest.fixture
def template_repo(tmp_path):
    """This template, committed to a git repository of its own (cruft reads templates from git)."""
    copy = copy_template(tmp_path / "template")
    git(copy, "init", "-q", "-b", "main")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "template v1")
    return copy


@pytest.fixture
def older_template_repo(tmp_path):
    """A template git repository whose first commit is the older template (no sweeps option)
    and whose second is this template: (repository, first commit)."""
    copy = copy_template(tmp_path / "template")
    make_older_template(copy)
    git(copy, "init", "-q", "-b", "main")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "older template: no sweeps option")
    older = git(copy, "rev-parse", "HEAD").strip()
    for child in copy.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    copy_template(copy)
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "sweeps option, default yes")
    return copy, older


def create_project(template, out, env, *args):
    """`cruft create` the default project, then put it under git as generated (cruft merges
    through git, and needs the generated version of each file)."""
    created = cruft(out.parent, env, "create", str(template), "--no-input", "--output-dir", str(out), *args)
    assert created.returncode == 0, created.stdout
    project = out / "my_project"
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "project as generated")
    return project


def test_cruft_update_applies_a_template_change_and_keeps_user_files(template_repo, tmp_path, cruft_env):
    """`cruft create` makes the project; after a template change `cruft check` reports it and
    `cruft update` applies it to the code, while config.json (and data/, saved/) keep the
    user's edits: they are listed in [tool.cruft] skip."""
    project = create_project(template_repo, tmp_path / "out", cruft_env)
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["template"] == str(template_repo)

    # The user tunes their config; the template later changes train.py and the same config.
    config_path = project / "config.json"
    config_path.write_text(config_path.read_text(encoding="utf-8").replace('"epochs": 25', '"epochs": 3'))
    git(project, "commit", "-q", "-am", "my settings")
    train_py = template_repo / TEMPLATE.name / "train.py"
    train_py.write_text(train_py.read_text(encoding="utf-8").replace('"""Train a model', '"""Train (v2) a model', 1))
    template_config = template_repo / TEMPLATE.name / "config.json"
    template_config.write_text(template_config.read_text(encoding="utf-8").replace('"epochs": 25', '"epochs": 40'))
    git(template_repo, "commit", "-q", "-am", "template v2")

    assert cruft(project, cruft_env, "check").returncode != 0
    updated = cruft(project, cruft_env, "update", "--skip-apply-ask")
    assert updated.returncode == 0, updated.stdout
    assert (project / "train.py").read_text(encoding="utf-8").startswith('"""Train (v2) a model')
    assert '"epochs": 3,' in config_path.read_text(encoding="utf-8")
    checked = cruft(project, cruft_env, "check")
    assert checked.returncode == 0, checked.stdout
    assert not list(project.rglob("*.rej"))


def keep_both_sides(text):
    """Resolve git conflict markers by keeping the user's lines, then the template's."""
    pattern = re.compile(r"^<<<<<<< [^\n]*\n(.*?)^=======\n(.*?)^>>>>>>> [^\n]*\n", re.M | re.S)
    return pattern.sub(lambda match: match.group(1) + match.group(2), text)


def changelog_sweep_section(changelog):
    """The `sweep` section that CHANGELOG.md tells an updating user to copy, as JSON data."""
    (block,) = re.findall(r"```json\n(\"sweep\": \{.*?\n\})\n```", changelog, re.S)
    return json.loads("{" + block + "}")["sweep"]


def test_update_from_an_older_template_is_quiet_and_clashes_arrive_as_git_conflicts(
    older_template_repo, tmp_path, cruft_env
):
    """A real `cruft update` from the older template (no sweeps option) of a project the user
    edited, smoke run switched on:

    - no smoke training and no hook output: the update prints only cruft's and git's lines;
    - the template's change to a line the user changed too (requirements.txt) arrives as git
      conflict markers, `UU` in `git status`, and no .rej file;
    - the README points to CHANGELOG.md, whose sweeps entry says to copy the `sweep` section;
    - the user's config.json is untouched, so the new sweep.py stops with one line naming the
      missing `sweep` section (exit 2);
    - after the conflict is resolved and the changelog's step followed, the project smoke-trains
      and sweeps, and `cruft check` finds it up to date."""
    template, older = older_template_repo
    project = create_project(template, tmp_path / "out", cruft_env, "--checkout", older)
    assert not (project / "sweep.py").exists()
    # The user adds a package where the template will add optuna, and tunes their config.
    requirements = project / "requirements.txt"
    text = requirements.read_text(encoding="utf-8")
    assert "tensorboard\ntqdm\n" in text, text
    requirements.write_text(text.replace("tensorboard\n", "tensorboard\npandas\n"), encoding="utf-8")
    config_path = project / "config.json"
    config_path.write_text(config_path.read_text(encoding="utf-8").replace('"epochs": 25', '"epochs": 3'))
    user_config = config_path.read_bytes()
    git(project, "commit", "-q", "-am", "my packages and settings")

    started = time.monotonic()
    updated = cruft(project, {**cruft_env, SKIP_ENV: ""}, "update", "-y")
    seconds = time.monotonic() - started
    print(f"\n--- cruft update -y ({seconds:.1f} s) ---\n{updated.stdout}--- end of cruft update ---")
    assert updated.returncode == 0, updated.stdout
    assert not [line for line in HOOK_OUTPUT if line in updated.stdout], updated.stdout
    assert "Applied patch to 'requirements.txt' with conflicts." in updated.stdout

    merged = requirements.read_text(encoding="utf-8")
    markers = [line.split(" ")[0] for line in merged.splitlines() if line[:7] in ("<<<<<<<", "=======", ">>>>>>>")]
    assert markers == ["<<<<<<<", "=======", ">>>>>>>"], merged
    assert "pandas" in merged
    assert "optuna>=4.0" in merged
    status = git(project, "status", "--porcelain").splitlines()
    assert "UU requirements.txt" in status, status
    assert not list(project.rglob("*.rej"))

    readme = (project / "README.md").read_text(encoding="utf-8")
    assert "CHANGELOG.md" in readme[readme.index("## Updating from the template") :]
    changelog = (template / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "error: config.json has no 'sweep' section; add one (README: Hyperparameter sweeps)" in changelog
    sweep_section = changelog_sweep_section(changelog)

    assert config_path.read_bytes() == user_config
    assert (project / "sweep.py").is_file()
    swept = run([sys.executable, "sweep.py", "-c", "config.json"], cwd=project, timeout=120)
    assert swept.returncode == 2, swept.stdout
    assert len(swept.stdout.strip().splitlines()) == 1, swept.stdout
    assert "'sweep'" in swept.stdout

    # Resolve the clash (both sides), then follow the changelog: copy the sweep section.
    requirements.write_text(keep_both_sides(merged), encoding="utf-8")
    assert "<<<<<<<" not in requirements.read_text(encoding="utf-8")
    git(project, "add", "requirements.txt")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["sweep"] = sweep_section
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    git(project, "commit", "-q", "-am", "template update: sweeps")
    trained = run([sys.executable, "train.py", "-c", "config.json", "--smoke"], cwd=project, timeout=300)
    assert trained.returncode == 0, trained.stdout
    sweep_command = [sys.executable, "sweep.py", "-c", "config.json", "--trials", "1", "--set", "trainer.epochs=1"]
    swept = run(sweep_command, cwd=project, timeout=300)
    assert swept.returncode == 0, swept.stdout
    checked = cruft(project, cruft_env, "check")
    assert checked.returncode == 0, checked.stdout


def test_cruft_diff_prints_the_diff_and_no_training(template_repo, tmp_path, cruft_env):
    """`cruft diff`, smoke run switched on, prints the user's changes against the template and
    nothing of the post-generation hook: no training log, no next steps."""
    project = create_project(template_repo, tmp_path / "out", cruft_env)
    train_py = project / "train.py"
    train_py.write_text(train_py.read_text(encoding="utf-8").replace('"""Train a model', '"""Train my model', 1))
    git(project, "commit", "-q", "-am", "my change")
    diffed = cruft(project, {**cruft_env, SKIP_ENV: ""}, "diff")
    assert diffed.returncode == 0, diffed.stdout
    assert diffed.stdout.startswith("diff --git upstream-template-old/train.py upstream-template-new/train.py\n")
    assert '-"""Train my model' in diffed.stdout
    assert not [line for line in HOOK_OUTPUT if line in diffed.stdout], diffed.stdout
