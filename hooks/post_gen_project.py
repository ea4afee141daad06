"""Check the freshly generated project, then train it for a couple of batches.

Runs on cookiecutter's own interpreter from a rendered temporary copy, in the project root,
standard library only: it never imports torch. Steps:

0. The files of options that were not chosen are removed (see ``unused_paths``).
1. The config is checked against the project's own ``config.schema.json`` by the project's own
   checker, ``python parse_config.py <config>``, on an interpreter that has jsonschema (and
   ruamel.yaml for YAML; torch is not needed). The schema is the one definition of the rules:
   train.py checks the same. Without such an interpreter, a notice says how to check later.
2. Smoke run: the project's own ``train.py -c <config> --smoke`` runs in a subprocess on an
   interpreter that has torch (and torchvision, ruamel.yaml or tensorboard when the options need
   them). Skipped when PYTORCH_TEMPLATE_SKIP_SMOKE=1 (works everywhere, cruft included), when
   the private answer ``_smoke_run`` is false, or, with a notice and exit 0, when no such
   interpreter is found. PYTORCH_TEMPLATE_PYTHON names the interpreter.
3. The project must hold nothing new afterwards: ``__pycache__`` folders the run created are
   removed, anything else it wrote or changed is an error.

Inside ``cruft update`` and ``cruft diff`` only step 0 runs, and the hook prints nothing. Those
commands render the template (twice for an update) only to compute a diff, in a throw-away
folder; a config check or a training there would cost seconds and print a training log before
the diff. Such a render is recognised by two facts together (measured on cruft 2.16):

* cruft put ``_commit`` (the template commit) into the answers: it does so in every render it
  makes, ``cruft create`` included, and plain cookiecutter never does;
* the project is being written into a folder made by Python's ``tempfile.TemporaryDirectory()``:
  its parent is a direct child of ``tempfile.gettempdir()`` named ``tmp`` followed by letters,
  digits or ``_`` (both paths resolved, so macOS's /var -> /private/var link does not matter).
  ``cruft create`` writes into the user's output folder instead, so it still gets the full
  check and smoke run; so does a plain cookiecutter bake, whatever its output folder.

Step 0 still runs there, so the rendered project is exactly what a new bake holds and the diff
shows only real template changes.

Problems are printed as ``ERROR: <what is wrong> - <how to fix it>`` and the hook exits 1, which
makes cookiecutter delete the project. The hook is idempotent: no git, no network, no prompts.
The answers are embedded below only as JSON data; they never become code.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_SLUG = json.loads(
    r"""
{{ cookiecutter.project_slug | tojson }}
""".strip()
)
OPTIONS = json.loads(
    r"""
{
  "dataset": {{ cookiecutter.dataset | tojson }},
  "config_format": {{ cookiecutter.config_format | tojson }},
  "tensorboard": {{ cookiecutter.tensorboard | tojson }},
  "sweeps": {{ cookiecutter.sweeps | tojson }},
  "mlflow": {{ cookiecutter.mlflow | tojson }},
  "github_actions": {{ cookiecutter.github_actions | tojson }},
  "pre_commit": {{ cookiecutter.pre_commit | tojson }},
  "license": {{ cookiecutter.license | tojson }}
}
""".strip()
)
SMOKE_RUN_ANSWER = json.loads(
    r"""
{{ cookiecutter.get("_smoke_run", none) | tojson }}
""".strip()
)
# Set by cruft in every render it makes (see the module docstring); absent under cookiecutter.
CRUFT_COMMIT = json.loads(
    r"""
{{ cookiecutter.get("_commit", none) | tojson }}
""".strip()
)

SKIP_ENV = "PYTORCH_TEMPLATE_SKIP_SMOKE"
PYTHON_ENV = "PYTORCH_TEMPLATE_PYTHON"
CONFIG_FILE = "config.json"
TRAIN_SCRIPT = "train.py"
CONFIG_CHECK = "parse_config.py"
SMOKE_TIMEOUT_S = 300
PROBE_TIMEOUT_S = 60
OUTPUT_TAIL_LINES = 40
SUMMARY_LINES = 8
KEEP_HINT = (
    "re-run cookiecutter with --keep-project-on-failure to keep the project and debug it, "
    f"or set {SKIP_ENV}=1 to skip the smoke run"
)
MODULE_PROBE = "import importlib.util, sys; sys.exit(0 if all(map(importlib.util.find_spec, sys.argv[1:])) else 1)"
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off", ""})
# The folder names tempfile.TemporaryDirectory() makes: "tmp" and random [a-z0-9_] characters
# (not mktemp's "tmp.XXXXXXXXXX", which a user may well choose as an output folder).
TEMP_FOLDER_NAME = re.compile(r"tmp[a-z0-9_]+")


class HookError(Exception):
    """A problem to report as ``ERROR: <what> - <fix>``."""

    def __init__(self, what, fix):
        super().__init__(f"{what} - {fix}")
        self.what = what
        self.fix = fix


# --- 0. files of the options not chosen ------------------------------------------------------


def unused_paths(options):
    """Return the files and folders (relative, '/'-separated) that the chosen options leave out."""
    paths = []
    for dataset, files in (
        ("digits", ["tests/test_digits.py"]),
        ("mnist", ["data_loader/mnist.py", "tests/test_mnist.py"]),
        ("image_folder", ["data_loader/image_folder.py", "tests/test_image_folder.py"]),
    ):
        if options["dataset"] != dataset:
            paths += files
    paths.append("config.yaml" if options["config_format"] == "json" else "config.json")
    if not is_yes(options["tensorboard"]):
        paths.append("tests/test_tensorboard.py")
    if not is_yes(options["sweeps"]):
        paths += ["sweep.py", "utils/search_space.py", "tests/test_sweep.py"]
    if not is_yes(options["mlflow"]):
        paths += ["logger/mlflow_tracker.py", "tests/test_mlflow.py"]
    if not is_yes(options["github_actions"]):
        paths.append(".github")
    if not is_yes(options["pre_commit"]):
        paths.append(".pre-commit-config.yaml")
    if options["license"] == "none":
        paths.append("LICENSE")
    return paths


def remove_unused(project_dir, options):
    """Delete what ``unused_paths`` lists; a path that is already gone is fine (idempotent)."""
    for relative in unused_paths(options):
        path = Path(project_dir, *relative.split("/"))
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    if not is_yes(options["sweeps"]):
        drop_schema_key(project_dir, "sweep")


def drop_schema_key(project_dir, key):
    """Take top-level ``key`` out of the project's config schema (a config may then not use it)."""
    path = Path(project_dir, "config.schema.json")
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["properties"].pop(key, None)
    path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def config_file(options):
    """Return the name of the project's config file."""
    return "config.yaml" if options["config_format"] == "yaml" else CONFIG_FILE


def required_modules(options):
    """Return the modules the smoke run imports, beyond the standard library."""
    modules = ["torch", "numpy", "jsonschema", "filelock"]
    if options["dataset"] != "digits":
        modules.append("torchvision")
    if options["config_format"] == "yaml":
        modules.append("ruamel")  # ruamel.yaml (find_spec of a dotted name imports its parent)
    if is_yes(options["tensorboard"]):
        modules.append("tensorboard")
    return modules


# --- 1. the config, against the project's own schema -----------------------------------------


def schema_modules(options):
    """Return the modules the project's config check imports."""
    return ["jsonschema", "ruamel"] if options["config_format"] == "yaml" else ["jsonschema"]


def check_config(project_dir, environ, options):
    """Check the config with ``python parse_config.py <config>``; raise HookError when it breaks the
    schema, return a notice when no interpreter can run the check, else None."""
    config = config_file(options)
    modules = schema_modules(options)
    python = choose_python(environ, modules=modules)
    if python is None:
        return (
            f"The config check was skipped: no Python with {', '.join(modules)} was found. Check later with:\n"
            f"  cd {PROJECT_SLUG} && python parse_config.py {config}"
        )
    try:
        result = run_in_project([python, CONFIG_CHECK, config], project_dir, environ, PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as err:
        raise HookError(f"the config check could not run with {python} ({err})", KEEP_HINT) from None
    if result.returncode != 0:
        raise HookError(
            f"{config} breaks the project's config.schema.json: {tail(result.stdout, 1)}", "fix the template"
        )
    return None


# --- 2. smoke run ----------------------------------------------------------------------------


def is_yes(value, default=True):
    """Read a yes/no answer that may arrive as a bool or as a word ('False', 'no', '0')."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_WORDS
    return bool(value)


def skip_reason(environ, smoke_answer):
    """Return why the smoke run is skipped, or None when it should run."""
    if is_yes(environ.get(SKIP_ENV), default=False):
        return f"{SKIP_ENV} is set"
    if not is_yes(smoke_answer):
        return "_smoke_run is false"
    return None


def smoke_env(environ):
    """Return the environment of the subprocesses: no bytecode files, one OpenMP thread."""
    env = dict(environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_in_project(command, project_dir, environ, timeout):
    """Run one of the project's scripts in its folder, without stdin; return the finished process
    with stdout and stderr merged into its text output."""
    return subprocess.run(
        command,
        cwd=project_dir,
        env=smoke_env(environ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )


def has_modules(python, environ, modules=("torch",)):
    """Return True if ``python`` can find every module (checked in a subprocess, none imported)."""
    try:
        probe = subprocess.run(
            [python, "-c", MODULE_PROBE, *modules],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=smoke_env(environ),
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def choose_python(environ, current=sys.executable, modules=("torch",)):
    """Return the interpreter for the smoke run, or None when no Python with ``modules`` is found.

    Order: $PYTORCH_TEMPLATE_PYTHON (must work, else HookError), cookiecutter's own interpreter
    if it has the modules, then ``python3`` and ``python`` on PATH.
    """
    wanted = " and ".join(modules)
    named = environ.get(PYTHON_ENV, "")
    if named:
        found = named if os.sep in named else shutil.which(named, path=environ.get("PATH"))
        if found is None or not Path(found).is_file():
            raise HookError(
                f"{PYTHON_ENV}={named} is not an existing file",
                f"set {PYTHON_ENV} to the absolute path of a Python that has torch, or unset it",
            )
        if not has_modules(found, environ, modules):
            raise HookError(
                f"{PYTHON_ENV}={named} has no {wanted}",
                f"install the project's requirements for it ({named} -m pip install -r requirements.txt) "
                f"or unset {PYTHON_ENV}",
            )
        return found
    if current:
        if current == sys.executable:
            current_has_all = all(importlib.util.find_spec(name) is not None for name in modules)
        else:
            current_has_all = has_modules(current, environ, modules)
        if current_has_all:
            return current
    # Compare paths as found, not resolved: a venv's python is a symlink to a base interpreter
    # whose packages differ from the venv's.
    tried = {os.path.abspath(current)} if current else set()
    for name in ("python3", "python"):
        found = shutil.which(name, path=environ.get("PATH"))
        if found is None or os.path.abspath(found) in tried:
            continue
        tried.add(os.path.abspath(found))
        if has_modules(found, environ, modules):
            return found
    return None


def tail(text, lines=OUTPUT_TAIL_LINES):
    """Return the last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_smoke(python, project_dir, environ, config=CONFIG_FILE):
    """Run ``train.py -c <config> --smoke``; return its output, raise HookError on failure."""
    if not Path(project_dir, TRAIN_SCRIPT).is_file():
        raise HookError(f"{TRAIN_SCRIPT} is missing from the generated project", "fix the template")
    try:
        result = run_in_project([python, TRAIN_SCRIPT, "-c", config, "--smoke"], project_dir, environ, SMOKE_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        output = err.output or ""
        if isinstance(output, bytes):
            output = output.decode("utf-8", "replace")
        print(tail(output), file=sys.stderr)
        raise HookError(f"smoke training failed: no result after {SMOKE_TIMEOUT_S} s", KEEP_HINT) from None
    except OSError as err:
        raise HookError(f"smoke training failed: cannot start {python} ({err})", KEEP_HINT) from None
    if result.returncode != 0:
        print(tail(result.stdout), file=sys.stderr)
        raise HookError(f"smoke training failed (exit status {result.returncode}, output above)", KEEP_HINT)
    return result.stdout


# --- 3. nothing left behind ------------------------------------------------------------------


def snapshot(project_dir):
    """Map every path under the project to (size, mtime) for files and None for folders."""
    entries = {}
    for root, dirs, files in os.walk(project_dir):
        for name in dirs:
            entries[os.path.relpath(os.path.join(root, name), project_dir)] = None
        for name in files:
            path = os.path.join(root, name)
            stat = os.lstat(path)
            entries[os.path.relpath(path, project_dir)] = (stat.st_size, stat.st_mtime_ns)
    return entries


def clean_up_after(project_dir, before):
    """Remove new ``__pycache__`` folders; return the other paths that appeared or changed."""
    for path in sorted(set(snapshot(project_dir)) - set(before)):
        if Path(path).name == "__pycache__" and Path(project_dir, path).is_dir():
            shutil.rmtree(Path(project_dir, path), ignore_errors=True)
    after = snapshot(project_dir)
    changed = [path for path in after if path not in before or after[path] != before[path]]
    changed += [path for path in before if path not in after]
    return sorted(changed)


# --- cruft's throw-away renders --------------------------------------------------------------


def is_cruft_rerender(project_dir, commit=CRUFT_COMMIT, temp_root=None):
    """Return True when cruft renders the project only to diff it (``cruft update``/``diff``):
    cruft's ``_commit`` answer is set and the project's parent folder is a
    ``TemporaryDirectory()`` directly under the system temp folder (rule in the docstring)."""
    if not isinstance(commit, str) or not commit:
        return False
    temp_root = tempfile.gettempdir() if temp_root is None else temp_root
    parent = Path(os.path.realpath(project_dir)).parent
    if not TEMP_FOLDER_NAME.fullmatch(parent.name):
        return False
    return os.path.normcase(str(parent.parent)) == os.path.normcase(os.path.realpath(temp_root))


# --- main ------------------------------------------------------------------------------------


def next_steps(slug, config=CONFIG_FILE):
    """Return the commands a user runs next."""
    return "\n".join(
        [
            "Next steps:",
            f"  cd {slug}",
            "  pip install -r requirements.txt -c constraints.txt   # the tested versions",
            f"  python train.py -c {config}",
            f"  python test.py -c {config} -r auto   # the newest run's best checkpoint",
            "  pip install pytest -c constraints.txt && python -m pytest",
        ]
    )


def smoke_check(project_dir, environ, smoke_answer, options=OPTIONS):
    """Run the smoke check unless skipped; print what happened; raise HookError on failure."""
    reason = skip_reason(environ, smoke_answer)
    if reason is not None:
        print(f"Smoke run skipped ({reason}).")
        return
    modules = required_modules(options)
    python = choose_python(environ, modules=modules)
    if python is None:
        print(
            f"Project {PROJECT_SLUG} created. The smoke check was skipped because no Python "
            f"with {', '.join(modules)} was found (cookiecutter's own interpreter, python3 and "
            f"python on PATH lack one; {PYTHON_ENV} can name one). Run it later with:\n"
            f"  cd {PROJECT_SLUG} && pip install -r requirements.txt -c constraints.txt && "
            f"python train.py -c {config_file(options)} --smoke"
        )
        return
    before = snapshot(project_dir)
    started = time.monotonic()
    try:
        output = run_smoke(python, project_dir, environ, config_file(options))
    finally:
        leftovers = clean_up_after(project_dir, before)
    if leftovers:
        raise HookError(
            f"the smoke run wrote into the project: {', '.join(leftovers[:10])}",
            "make train.py --smoke write only to a temporary directory",
        )
    print(tail(output, SUMMARY_LINES))
    print(f"Smoke run passed in {time.monotonic() - started:.1f} s with {python}.")


def main(project_dir=".", environ=None, smoke_answer=SMOKE_RUN_ANSWER, options=OPTIONS, commit=CRUFT_COMMIT):
    """Run every step (only step 0, silently, in a cruft update or diff render); print problems
    as ERROR lines and return the exit status."""
    environ = os.environ if environ is None else environ
    project_dir = os.path.abspath(project_dir)
    try:
        remove_unused(project_dir, options)
        if is_cruft_rerender(project_dir, commit):
            return 0  # the diff needs the files only; anything printed would precede the diff
        notice = check_config(project_dir, environ, options)
        if notice:
            print(notice)
        smoke_check(project_dir, environ, smoke_answer, options)
    except HookError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(next_steps(PROJECT_SLUG, config_file(options)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
