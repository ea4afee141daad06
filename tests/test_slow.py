"""Slow tier (run by CI too): real smoke runs, the generated project's own tests, the
cookiecutter command line as users run it, and cookiecutter installed without torch.

Deselect locally with ``python -m pytest -m "not slow"``.
"""

import re
import shutil
import subprocess
import sys
import time
import venv

import pytest

from helpers import PYTHON_ENV, REPO, SKIP_ENV, TEMPLATE, cookiecutter_cli, expected_listing, listing, run

pytestmark = pytest.mark.slow

PROJECT_TESTS_TIMEOUT_S = 900
YES_NO = {True: "yes", False: "no"}  # the words for booleans on cookiecutter's command line


# One bake per dataset; the other options vary between them so that each value is run for real.
DATASET_BAKES = {
    "digits": {},
    "mnist": {
        "dataset": "mnist",
        "config_format": "yaml",
        "tensorboard": False,
        "sweeps": False,
        "github_actions": False,
        "license": "BSD-3-Clause",
        "python_version": "3.11",
    },
    "image_folder": {
        "dataset": "image_folder",
        "mlflow": True,
        "pre_commit": False,
        "license": "none",
        "python_version": "3.12",
    },
}


@pytest.fixture(scope="module", params=list(DATASET_BAKES))
def smoke_baked(request, tmp_path_factory):
    """A project per dataset, baked by the cookiecutter CLI with the smoke run on."""
    answers = DATASET_BAKES[request.param]
    out = tmp_path_factory.mktemp(f"smoke-{request.param}") / "out"
    cli_answers = [f"{key}={YES_NO.get(value, value)}" for key, value in answers.items()]
    started = time.monotonic()
    result = cookiecutter_cli(sys.executable, out, *cli_answers, env={SKIP_ENV: "", PYTHON_ENV: ""})
    seconds = time.monotonic() - started
    project = out / "my_project"
    return {
        "answers": answers,
        "result": result,
        "seconds": seconds,
        "project": project,
        "listing": listing(project) if project.is_dir() else None,
    }


def test_smoke_run_passes_and_leaves_nothing_behind(smoke_baked):
    """A bake of each dataset trains a couple of batches successfully (MNIST and image folders on
    a generated sample, no download) and the project afterwards holds exactly its files: no
    __pycache__, no saved/ runs, no logs, no data."""
    result = smoke_baked["result"]
    assert result.returncode == 0, result.stdout
    assert "Smoke run passed in" in result.stdout
    assert "Smoke run skipped" not in result.stdout
    assert smoke_baked["listing"] == expected_listing(**smoke_baked["answers"])
    print(f"bake with smoke run: {smoke_baked['seconds']:.1f} s")


def failures_first(output, size=8000):
    """The failing tests' tracebacks from a pytest run's output, rather than its warnings summary."""
    start = output.find("= FAILURES =")
    return output[-size:] if start < 0 else output[start : start + size]


def test_generated_project_own_tests_pass(smoke_baked):
    """Each dataset's generated project passes all its own tests as generated, the slow ones
    included (`python -m pytest -m "slow or not slow"`, as its CI workflow runs them)."""
    project = smoke_baked["project"]
    assert project.is_dir(), smoke_baked["result"].stdout
    started = time.monotonic()
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-m", "slow or not slow", "-p", "no:cacheprovider"],
        cwd=project,
        timeout=PROJECT_TESTS_TIMEOUT_S,
    )
    print(f"generated project's pytest: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, failures_first(result.stdout)


def test_cli_bad_answers_exit_1_with_error_lines_first_and_nothing_left(tmp_path):
    """From the command line, bad answers exit 1; the first lines of output are the hook's
    'ERROR: ... - ...' lines (before cookiecutter's traceback), and nothing is written."""
    out = tmp_path / "out"
    result = cookiecutter_cli(sys.executable, out, "project_slug=class", "author_name=a\nb", "project_name=Fine")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ERROR: project_slug 'class' is a Python keyword - "), lines[:5]
    assert lines[1].startswith("ERROR: author_name 'a\\nb' spans several lines - "), lines[:5]
    assert list(out.iterdir()) == []


def broken_template(tmp_path, train_py):
    """A copy of this template whose generated train.py is replaced by train_py."""
    copy = tmp_path / "template"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", "__pycache__", ".*_cache", ".benchmarks"))
    (copy / TEMPLATE.name / "train.py").write_text(train_py, encoding="utf-8")
    return copy


def test_cli_failed_smoke_run_deletes_project_unless_kept(tmp_path):
    """When the smoke run fails, cookiecutter exits 1 after 'ERROR: smoke training failed' and
    deletes the project; --keep-project-on-failure, as the message advises, keeps it."""
    template = broken_template(tmp_path, "raise SystemExit('deliberately broken')\n")
    env = {SKIP_ENV: "", PYTHON_ENV: ""}
    out = tmp_path / "out"
    result = cookiecutter_cli(sys.executable, out, template=template, env=env)
    assert result.returncode == 1
    assert "deliberately broken" in result.stdout
    assert "ERROR: smoke training failed" in result.stdout
    assert "--keep-project-on-failure" in result.stdout
    assert list(out.iterdir()) == []

    kept = cookiecutter_cli(sys.executable, out, "--keep-project-on-failure", template=template, env=env)
    assert kept.returncode == 1
    assert (out / "my_project" / "config.json").is_file()


def test_cli_skip_variable_skips_a_broken_smoke_run(tmp_path):
    """PYTORCH_TEMPLATE_SKIP_SMOKE=1, the switch that also works under cruft, skips the run."""
    template = broken_template(tmp_path, "raise SystemExit('deliberately broken')\n")
    out = tmp_path / "out"
    result = cookiecutter_cli(sys.executable, out, template=template, env={SKIP_ENV: "1"})
    assert result.returncode == 0, result.stdout
    assert "Smoke run skipped (PYTORCH_TEMPLATE_SKIP_SMOKE is set)" in result.stdout
    assert (out / "my_project" / "train.py").is_file()


@pytest.fixture(scope="module")
def venv_without_torch(tmp_path_factory):
    """A venv with only cookiecutter==2.7.1, as pipx/uvx would install it (no torch)."""
    root = tmp_path_factory.mktemp("venv-no-torch")
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    python = root / "bin" / "python"
    try:
        pip = run(
            [str(python), "-m", "pip", "install", "-q", "cookiecutter==2.7.1"],
            cwd=root,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("pip could not install cookiecutter==2.7.1 in 300 s (registry unreachable?)")
    if pip.returncode != 0:
        unreachable = (
            "No matching distribution",
            "Could not find a version",
            "NewConnectionError",
            "Temporary failure in name resolution",
            "Network is unreachable",
            "ProxyError",
            "SSLError",
        )
        if any(marker in pip.stdout for marker in unreachable):
            pytest.skip(f"pip cannot reach the package registry: {pip.stdout.strip()[-300:]}")
        pytest.fail(f"pip install cookiecutter failed:\n{pip.stdout}")
    probe = run([str(python), "-c", "import torch"], cwd=root, timeout=60)
    assert probe.returncode != 0, "the venv unexpectedly has torch"
    return python


def test_cookiecutter_without_torch_keeps_project_with_notice(venv_without_torch, tmp_path):
    """With cookiecutter installed without torch and no Python with torch on PATH, the project
    is still created (exit 0) and the user is told how to run the smoke check later."""
    out = tmp_path / "out"
    env = {
        "PATH": str(venv_without_torch.parent),  # only the venv's python/python3: no torch
        SKIP_ENV: "",
        PYTHON_ENV: "",
        "PYTHONPATH": "",
    }
    result = cookiecutter_cli(venv_without_torch, out, env=env, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "The config check was skipped: no Python with jsonschema was found" in result.stdout
    assert "smoke check was skipped because no Python with torch, numpy" in result.stdout
    assert "cd my_project && pip install -r requirements.txt -c constraints.txt && python train.py" in result.stdout
    assert listing(out / "my_project") == expected_listing()


def test_pytorch_template_python_lets_torchless_cookiecutter_smoke_test(venv_without_torch, tmp_path):
    """With cookiecutter installed without torch, PYTORCH_TEMPLATE_PYTHON=<python with torch>
    makes the smoke run happen anyway."""
    out = tmp_path / "out"
    env = {"PATH": str(venv_without_torch.parent), SKIP_ENV: "", PYTHON_ENV: sys.executable}
    result = cookiecutter_cli(venv_without_torch, out, env=env, timeout=400)
    assert result.returncode == 0, result.stdout
    assert "Smoke run passed in" in result.stdout
    assert f"with {sys.executable}" in result.stdout
    assert listing(out / "my_project") == expected_listing()


def test_the_readme_commands_work_in_a_fresh_venv(default_project, tmp_path):
    """In a fresh venv, the generated README's commands work as written: `pip install -e ".[dev]" -c constraints.txt`
    installs the dependencies and the dev tools without copying the project's modules (utils,
    model, ...) into site-packages; then the quickstart trains, evaluates the best checkpoint to
    >= 97% test accuracy, and the pinned ruff passes. Offline: the venv sees this Python's
    packages, pip gets no index (and no build isolation, which would need one)."""
    project = tmp_path / "project"
    shutil.copytree(default_project, project)
    root = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(root)
    python = str(root / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))
    offline = ["--no-index", "--no-build-isolation"]
    commands = [
        [python, "-m", "pip", "install", "-q", *offline, "-e", ".[dev]", "-c", "constraints.txt"],
        [python, "train.py", "-c", "config.json"],
        [python, "test.py", "-c", "config.json", "-r", "auto"],
        [python, "-m", "ruff", "check", "--no-cache", "."],
        [python, "-m", "ruff", "format", "--check", "--no-cache", "."],
    ]
    outputs = []
    for command in commands:
        started = time.monotonic()
        result = run(command, cwd=project, timeout=600)
        print(f"{' '.join(command[1:])}: exit {result.returncode} in {time.monotonic() - started:.1f} s")
        assert result.returncode == 0, result.stdout[-4000:]
        outputs.append(result.stdout)
    accuracy = float(re.search(r"accuracy\s*:\s*([0-9.]+)", outputs[2]).group(1))
    print(f"test accuracy: {accuracy:.4f}")
    assert accuracy >= 0.97, outputs[2]
    shown = run([python, "-m", "pip", "show", "my_project"], cwd=tmp_path, timeout=60)
    requires = next(line for line in shown.stdout.splitlines() if line.startswith("Requires: "))
    assert "torch" in requires, shown.stdout
    probe = run([python, "-c", "import importlib.util as u; print(u.find_spec('train'))"], cwd=tmp_path, timeout=60)
    assert probe.stdout.strip() == "None", probe.stdout
