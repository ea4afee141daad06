"""Slow tier: projects stay updatable with cruft, and an update never touches the user's files.

Runs the real `cruft create`, `cruft check` and `cruft update` against a git copy of this
template, as a user keeping a project in step with the template would.
"""

import json
import shutil
import sys

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


def git(cwd, *args):
    result = run(["git", *args], cwd=cwd, timeout=60, env=GIT_ENV)
    assert result.returncode == 0, result.stdout
    return result.stdout


def cruft(cwd, env, *args):
    return run([sys.executable, "-m", "cruft", *args], cwd=cwd, timeout=300, env={**GIT_ENV, **env})


@pytest.fixture
def template_repo(tmp_path):
    """This template, committed to a git repository of its own (cruft reads templates from git)."""
    copy = tmp_path / "template"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", "__pycache__", ".*_cache", ".benchmarks"))
    git(copy, "init", "-q", "-b", "main")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "template v1")
    return copy


def test_cruft_update_applies_a_template_change_and_keeps_user_files(template_repo, tmp_path):
    """`cruft create` makes the project; after a template change `cruft check` reports it and
    `cruft update` applies it to the code, while config.json (and data/, saved/) keep the
    user's edits: they are listed in [tool.cruft] skip."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(f"replay_dir: {json.dumps(str(home / 'replay'))}\n", encoding="utf-8")
    env = {SKIP_ENV: "1", "COOKIECUTTER_CONFIG": str(home / "config.yaml")}
    out = tmp_path / "out"
    created = cruft(tmp_path, env, "create", str(template_repo), "--no-input", "--output-dir", str(out))
    assert created.returncode == 0, created.stdout
    project = out / "my_project"
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["template"] == str(template_repo)
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "project as generated")

    # The user tunes their config; the template later changes train.py and the same config.
    config_path = project / "config.json"
    config_path.write_text(config_path.read_text(encoding="utf-8").replace('"epochs": 25', '"epochs": 3'))
    git(project, "commit", "-q", "-am", "my settings")
    train_py = template_repo / TEMPLATE.name / "train.py"
    train_py.write_text(train_py.read_text(encoding="utf-8").replace('"""Train a model', '"""Train (v2) a model', 1))
    template_config = template_repo / TEMPLATE.name / "config.json"
    template_config.write_text(template_config.read_text(encoding="utf-8").replace('"epochs": 25', '"epochs": 40'))
    git(template_repo, "commit", "-q", "-am", "template v2")

    assert cruft(project, env, "check").returncode != 0
    updated = cruft(project, env, "update", "--skip-apply-ask")
    assert updated.returncode == 0, updated.stdout
    assert (project / "train.py").read_text(encoding="utf-8").startswith('"""Train (v2) a model')
    assert '"epochs": 3,' in config_path.read_text(encoding="utf-8")
    checked = cruft(project, env, "check")
    assert checked.returncode == 0, checked.stdout
    assert not list(project.rglob("*.rej"))
