"""Helpers for the template's tests: baking, rendering hooks, listing files, subprocesses."""

import fnmatch
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context

REPO = Path(__file__).resolve().parents[1]
# The one folder whose name is a Jinja expression, e.g. "{{cookiecutter.project_slug}}".
(TEMPLATE,) = [path for path in REPO.iterdir() if path.is_dir() and path.name.startswith("{{")]
HOOKS = REPO / "hooks"
SKIP_ENV = "PYTORCH_TEMPLATE_SKIP_SMOKE"
PYTHON_ENV = "PYTORCH_TEMPLATE_PYTHON"
# Files a run or a tool leaves behind; none may be shipped in, or appear in, a fresh project.
JUNK_NAMES = {
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".benchmarks",
    "saved",
    "runs",
}
JUNK_SUFFIXES = {".pyc", ".pyo"}
# Jinja a bake must never leave in a text file: a cookiecutter variable, a tag or a comment.
JINJA_LEFTOVER = re.compile(r"\{\{-?\s*cookiecutter|\{%|\{#")


def bake(cookies, **answers):
    """Bake the template in this repository (whatever the working directory) with answers."""
    return cookies.bake(extra_context=answers or None, template=str(REPO))


def render_context(**answers):
    """Return the context cookiecutter would render with, as ``{"cookiecutter": {...}}``."""
    context = generate_context(context_file=str(REPO / "cookiecutter.json"), extra_context=answers)
    context["cookiecutter"] = prompt_for_config(context, no_input=True)
    return context


def load_hook(name, tmp_path, drop_private=False, **answers):
    """Render ``hooks/<name>.py`` with cookiecutter's Jinja environment and import it.

    drop_private=True renders without the ``_`` variables, as cruft does."""
    context = render_context(**answers)
    if drop_private:
        context["cookiecutter"] = {key: value for key, value in context["cookiecutter"].items() if key[0] != "_"}
    source = (HOOKS / f"{name}.py").read_text(encoding="utf-8")
    rendered = create_env_with_context(context).from_string(source).render(**context)
    path = tmp_path / f"{name}_{uuid.uuid4().hex}.py"
    path.write_text(rendered, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listing(root):
    """Every file and folder under root, as POSIX paths relative to it."""
    root = Path(root)
    return {path.relative_to(root).as_posix() for path in root.rglob("*")}


def is_junk(relative):
    parts = Path(relative).parts
    return any(part in JUNK_NAMES for part in parts) or Path(relative).suffix in JUNK_SUFFIXES


# What each option leaves out of a project, stated here independently of the post-gen hook.
DATASET_ONLY = {
    "digits": {"tests/test_digits.py"},
    "mnist": {"data_loader/mnist.py", "tests/test_mnist.py"},
    "image_folder": {"data_loader/image_folder.py", "tests/test_image_folder.py"},
}
CONFIG_FILES = {"json": "config.json", "yaml": "config.yaml"}


def left_out(answers):
    """The template paths (files or folders) that a project made with ``answers`` lacks."""
    paths = set()
    for dataset, files in DATASET_ONLY.items():
        if answers["dataset"] != dataset:
            paths |= files
    paths |= {name for key, name in CONFIG_FILES.items() if key != answers["config_format"]}
    if not answers["tensorboard"]:
        paths.add("tests/test_tensorboard.py")
    if not answers["sweeps"]:
        paths |= {"sweep.py", "utils/search_space.py", "tests/test_sweep.py"}
    if not answers["mlflow"]:
        paths |= {"logger/mlflow_tracker.py", "tests/test_mlflow.py"}
    if not answers["github_actions"]:
        paths.add(".github")
    if not answers["pre_commit"]:
        paths.add(".pre-commit-config.yaml")
    if answers["license"] == "none":
        paths.add("LICENSE")
    return paths


def expected_listing(**answers):
    """The paths a bake must produce: the template folder's listing with names rendered, less
    the files of the options not chosen."""
    context = render_context(**answers)
    env = create_env_with_context(context)
    rendered = {env.from_string(path).render(**context) for path in listing(TEMPLATE)}
    gone = left_out(context["cookiecutter"])
    return {path for path in rendered if not any(path == g or path.startswith(g + "/") for g in gone)}


COPY_ONLY_PATTERNS = json.loads((REPO / "cookiecutter.json").read_text(encoding="utf-8")).get(
    "_copy_without_render", []
)


def copy_only_files():
    """Template files that cookiecutter copies byte for byte (``_copy_without_render``),
    matched as cookiecutter matches them: fnmatch on the path inside the project folder."""
    return [path for path in sorted(listing(TEMPLATE)) if is_copy_only(path)]


def is_copy_only(relative):
    return any(fnmatch.fnmatch(relative, pattern) for pattern in COPY_ONLY_PATTERNS)


def text_files(root):
    """(relative path, text) of every file under root that is UTF-8 text without NUL bytes."""
    found = []
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            found.append((path.relative_to(root).as_posix(), data.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return found


def run(command, cwd, timeout, env=None, **kwargs):
    """Run a command without a shell; return the CompletedProcess with stdout+stderr merged."""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    full_env.update(env or {})
    return subprocess.run(
        command,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
        **kwargs,
    )


def ruff(project, *args):
    """Run the pinned ruff on a baked project with the project's own configuration."""
    return run([sys.executable, "-m", "ruff", *args, "--no-cache", "."], cwd=project, timeout=120)


def cookiecutter_cli(python, out_dir, *args, template=REPO, env=None, timeout=600):
    """Run `python -m cookiecutter --no-input <template> -o <out_dir> [args]` like a user would,
    with a private cookiecutter config (no replay files in the home folder)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    user_dir = out_dir.parent / f"{out_dir.name}-cookiecutter-home"
    user_dir.mkdir(exist_ok=True)
    config = user_dir / "config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(user_dir / 'templates'))}\n"
        f"replay_dir: {json.dumps(str(user_dir / 'replay'))}\n",
        encoding="utf-8",
    )
    command = [str(python), "-m", "cookiecutter", "--no-input", "--config-file", str(config)]
    command += [str(template), "-o", str(out_dir), *args]
    return run(command, cwd=out_dir.parent, timeout=timeout, env=env)


# --- combinations of options -------------------------------------------------------------------

OPTION_NAMES = ("dataset", "config_format", "tensorboard", "sweeps", "mlflow", "github_actions", "pre_commit")
OPTIONS = {
    key: value if isinstance(value, list) else [True, False]
    for key, value in json.loads((REPO / "cookiecutter.json").read_text(encoding="utf-8")).items()
    if key in (*OPTION_NAMES, "license", "python_version")
}
# Options that change the code, the configs and the dependencies: they meet in the same files
# (config, schema, requirements, pyproject, README, which modules exist), so every combination of
# them is baked. The others only change their own files (the workflow, the pre-commit config,
# LICENSE, lines of pyproject.toml and the README), each through a condition on one option.
INTERACTING = ("dataset", "config_format", "tensorboard", "sweeps", "mlflow")
FILE_LEVEL = ("github_actions", "pre_commit", "license", "python_version")
COMBINATIONS = [dict(zip(OPTIONS, values, strict=True)) for values in itertools.product(*OPTIONS.values())]


def product(names):
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(OPTIONS[n] for n in names))]


def value_pairs(answers):
    """The (option, value, option, value) pairs that one combination bakes together."""
    items = sorted((name, json.dumps(value)) for name, value in answers.items())
    return {(a, b) for a, b in itertools.combinations(items, 2)}


def curated_combinations():
    """The combinations the default test run bakes: every combination of the interacting options
    (48), each joined to a different combination of the file-level ones (also 48), chosen so that
    every value of every option is baked together with every value of every other option."""
    covered, chosen = set(), []
    unused = product(FILE_LEVEL)
    # Greedy: each next combination bakes the most pairs not yet baked. The dataset, which has
    # the most values, varies fastest, so that it meets every file-level value early.
    for core in product(INTERACTING[::-1]):
        best = max(unused, key=lambda rest: len(value_pairs({**core, **rest}) - covered))
        unused.remove(best)
        chosen.append({name: {**core, **best}[name] for name in OPTIONS})
        covered |= value_pairs(chosen[-1])
    # Should the greedy choice ever leave a pair out, the first combination with that pair closes the gap.
    for (name_a, value_a), (name_b, value_b) in sorted(set().union(*map(value_pairs, COMBINATIONS)) - covered):
        chosen.append({**COMBINATIONS[0], name_a: json.loads(value_a), name_b: json.loads(value_b)})
    return chosen


CURATED = curated_combinations()


def combination_id(answers):
    flags = [name for name in ("tensorboard", "sweeps", "mlflow", "github_actions", "pre_commit") if answers[name]]
    parts = [answers["dataset"], answers["config_format"], *flags, answers["license"], answers["python_version"]]
    return "-".join(parts)


def bake_combination(answers, root):
    """Bake one combination into ``root/<combination id>/my_project`` once, whatever the number of
    pytest-xdist workers asking for it: the first one bakes into a staging folder and renames it
    into place; a failed bake is kept as ``root/<id>.error`` for the others to report.

    Returns (project folder, None) or (project folder, the error as text)."""
    from cookiecutter.main import cookiecutter
    from filelock import FileLock

    root = Path(root)
    name = combination_id(answers)
    final, error_file = root / name, root / f"{name}.error"
    with FileLock(str(root / f"{name}.lock")):
        if not final.is_dir() and not error_file.is_file():
            staging = root.parent / f"{root.name}-staging" / name
            config = write_cookiecutter_config(staging.parent / f"{name}-home")
            previous = os.environ.get(SKIP_ENV)
            os.environ[SKIP_ENV] = "1"
            try:
                cookiecutter(
                    str(REPO), no_input=True, extra_context=answers, output_dir=str(staging), config_file=config
                )
            except Exception as err:  # reported by every test of this combination
                error_file.write_text(f"{type(err).__name__}: {err}", encoding="utf-8")
            else:
                os.replace(staging, final)
            finally:
                if previous is None:
                    os.environ.pop(SKIP_ENV)
                else:
                    os.environ[SKIP_ENV] = previous
    error = error_file.read_text(encoding="utf-8") if error_file.is_file() else None
    return final / "my_project", error


def write_cookiecutter_config(home):
    """A private cookiecutter config in ``home``: no replay files or clones in the user's home."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(home / 'templates'))}\nreplay_dir: {json.dumps(str(home / 'replay'))}\n",
        encoding="utf-8",
    )
    return str(config)
