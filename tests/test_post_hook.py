"""Fast tier: the post-generation hook's functions, rendered as cookiecutter renders them.

The smoke run is exercised here with tiny fake ``train.py`` scripts, so every outcome (pass,
fail, timeout, files left behind, skipped) is checked in well under a second each.
"""

import importlib.util
import json
import os
import shutil
import stat
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest
from cookiecutter.utils import create_env_with_context

from helpers import HOOKS, PYTHON_ENV, SKIP_ENV, load_hook, render_context, run

GOOD_CONFIG = {
    "name": "Demo",
    "arch": {"type": "Net", "args": {}},
    "data_loader": {"type": "Loader", "args": {"batch_size": 4}},
    "optimizer": {"type": "Adam", "args": {"lr": 0.001}},
    "loss": "cross_entropy",
    "metrics": ["accuracy"],
    "trainer": {"epochs": 1},
}


@pytest.fixture
def hook(tmp_path):
    return load_hook("post_gen_project", tmp_path)


def fake_python(path, *flags):
    """Write an executable that runs this interpreter with extra flags (-S hides torch)."""
    if os.name == "nt":  # CI runs the fast tier on Windows too
        pytest.skip("the fake interpreters are POSIX shell scripts")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" {" ".join(flags)} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


ACCEPTING_CHECK = "import sys\nprint(sys.argv[1] + ': follows config.schema.json')\n"


def fake_project(root, train_py, config=None, check_py=ACCEPTING_CHECK):
    """A project folder with a config.json, the given train.py source and a config checker
    (parse_config.py) that accepts it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config or GOOD_CONFIG), encoding="utf-8")
    (root / "train.py").write_text(textwrap.dedent(train_py), encoding="utf-8")
    (root / "parse_config.py").write_text(check_py, encoding="utf-8")
    return root


def env_for(**extra):
    """A minimal environment for the hook: this interpreter first on PATH, nothing skipped."""
    env = {"PATH": os.environ["PATH"]}
    if "SYSTEMROOT" in os.environ:  # Windows: Python and its sockets need it to start
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    env.update(extra)
    return env


# --- interpreter choice ----------------------------------------------------------------------


def test_python_named_by_env_var_is_used(hook, tmp_path):
    """PYTORCH_TEMPLATE_PYTHON=<path to a Python with torch> is the interpreter used."""
    python = fake_python(tmp_path / "bin" / "py-with-torch")
    assert hook.choose_python(env_for(**{PYTHON_ENV: str(python)})) == str(python)


def test_python_named_by_env_var_may_be_a_command_on_path(hook, tmp_path):
    """PYTORCH_TEMPLATE_PYTHON may also be a command name found on PATH."""
    python = fake_python(tmp_path / "bin" / "mypython")
    env = {"PATH": str(python.parent), PYTHON_ENV: "mypython"}
    assert hook.choose_python(env) == str(python)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda d: d / "missing" / "python", "is not an existing file", id="missing"),
        pytest.param(lambda d: fake_python(d / "py-no-torch", "-S"), "has no torch", id="no-torch"),
        pytest.param(lambda d: d, "is not an existing file", id="a-folder"),
    ],
)
def test_bad_python_in_env_var_is_an_error_naming_it(hook, tmp_path, make, message):
    """A PYTORCH_TEMPLATE_PYTHON that does not exist or lacks torch is an error naming the
    variable, never silently replaced by another interpreter."""
    python = make(tmp_path)
    with pytest.raises(hook.HookError) as caught:
        hook.choose_python(env_for(**{PYTHON_ENV: str(python)}))
    assert caught.value.what.startswith(f"{PYTHON_ENV}={python}")
    assert message in caught.value.what
    assert PYTHON_ENV in caught.value.fix


def test_cookiecutters_own_python_is_used_when_it_has_torch(hook):
    """Without the env var, cookiecutter's interpreter is used if it has torch."""
    assert hook.choose_python(env_for()) == sys.executable


def test_python_on_path_is_used_when_cookiecutter_lacks_torch(hook, tmp_path):
    """When cookiecutter's interpreter lacks torch (pipx/uvx), python3 on PATH with torch is used,
    even when it starts the same interpreter as cookiecutter's (paths are compared as found).
    A launcher script, not a symlink: a symlink to a venv's python, placed outside the venv,
    starts the base interpreter without the venv's packages."""
    no_torch = fake_python(tmp_path / "venv" / "bin" / "python", "-S")
    with_torch = fake_python(tmp_path / "bin" / "python3")
    env = {"PATH": f"{no_torch.parent}{os.pathsep}{with_torch.parent}"}
    assert hook.choose_python(env, current=str(no_torch)) == str(with_torch)


def test_no_python_with_torch_gives_none(hook, tmp_path):
    """When neither cookiecutter's interpreter nor python3/python on PATH has torch: None."""
    no_torch = fake_python(tmp_path / "bin" / "python3", "-S")
    fake_python(tmp_path / "bin" / "python", "-S")
    assert hook.choose_python({"PATH": str(no_torch.parent)}, current=str(no_torch)) is None


# --- the config check ------------------------------------------------------------------------


def test_config_is_checked_by_the_projects_own_checker(hook, tmp_path):
    """The hook runs `python parse_config.py config.json` in the project: the project's own schema
    and its checker are the one definition of a valid config."""
    check = "import sys, os\nassert sys.argv[1:] == ['config.json'] and os.path.isfile('config.schema.json')\n"
    project = fake_project(tmp_path / "p", "", check_py=check)
    (project / "config.schema.json").write_text("{}", encoding="utf-8")
    assert hook.check_config(project, env_for(), hook.OPTIONS) is None


def test_config_breaking_the_real_schema_fails_the_hook_before_any_smoke_run(hook, default_project, tmp_path, capsys):
    """With the template's real parse_config.py and schema, a config that breaks a rule makes the
    hook exit 1 with an ERROR line naming the key; train.py never runs."""
    project = tmp_path / "p"
    shutil.copytree(default_project, project)
    config = json.loads((project / "config.json").read_text(encoding="utf-8"))
    config["trainer"]["epochs"] = 0
    (project / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (project / "train.py").write_text("open('RAN', 'w').close()\n", encoding="utf-8")
    assert hook.main(project, env_for()) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: config.json breaks the project's config.schema.json: ")
    assert "config key 'trainer.epochs': got 0, expected an integer >= 1 - fix the template" in err
    assert not (project / "RAN").exists()


def test_real_template_config_passes_the_check(hook, default_project):
    assert hook.check_config(default_project, env_for(), hook.OPTIONS) is None


def test_no_python_for_the_config_check_is_a_notice(hook, tmp_path, capsys, monkeypatch):
    """Without a Python that has jsonschema, the project is kept with a notice saying how to check later."""
    monkeypatch.setattr(hook, "choose_python", lambda environ, modules: None)
    project = fake_project(tmp_path / "p", "raise SystemExit('must not run')\n")
    assert hook.main(project, env_for()) == 0
    out = capsys.readouterr().out
    assert "The config check was skipped: no Python with jsonschema was found" in out
    assert f"cd {hook.PROJECT_SLUG} && python parse_config.py config.json" in out


# --- skip switches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "answer", "reason"),
    [
        ({SKIP_ENV: "1"}, True, f"{SKIP_ENV} is set"),
        ({SKIP_ENV: "true"}, None, f"{SKIP_ENV} is set"),
        ({SKIP_ENV: "0"}, True, None),
        ({SKIP_ENV: ""}, True, None),
        ({}, True, None),
        ({}, None, None),  # cruft drops _ variables: the smoke run stays on
        ({}, False, "_smoke_run is false"),
        ({}, "False", "_smoke_run is false"),
        ({}, "no", "_smoke_run is false"),
        ({}, "0", "_smoke_run is false"),
        ({}, "yes", None),
    ],
)
def test_skip_switches(hook, environ, answer, reason):
    """PYTORCH_TEMPLATE_SKIP_SMOKE=1 always skips; _smoke_run skips when false, whether it
    arrives as a bool or as a word such as 'False', 'no' or '0'."""
    assert hook.skip_reason(environ, answer) == reason


# --- the smoke run, with fake train.py scripts ---------------------------------------------


CHECKING_TRAIN_PY = """\
import os, sys
assert sys.argv[1:] == ["-c", "config.json", "--smoke"], sys.argv
assert os.path.isfile("config.json"), os.getcwd()
assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
assert os.environ["OMP_NUM_THREADS"] == "1"
assert sys.stdin.read() == ""
print("Smoke run passed on cpu: loss 2.3000 after 2 batches")
"""


def test_smoke_run_runs_train_py_and_prints_summary_and_next_steps(hook, tmp_path, capsys):
    """The hook runs `train.py -c config.json --smoke` in the project with
    PYTHONDONTWRITEBYTECODE=1, OMP_NUM_THREADS=1 and no stdin, shows its summary, then the next
    steps; running it twice gives the same result (idempotent)."""
    project = fake_project(tmp_path / "p", CHECKING_TRAIN_PY)
    before = sorted(project.rglob("*"))
    for _ in range(2):
        assert hook.main(project, env_for(OMP_NUM_THREADS="8")) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert "Smoke run passed on cpu" in out
        assert "Smoke run passed in" in out
        assert f"cd {hook.PROJECT_SLUG}" in out
        assert sorted(project.rglob("*")) == before


def test_failed_smoke_run_shows_output_tail_and_how_to_keep_project(hook, tmp_path, capsys):
    """A failing smoke run makes the hook exit 1, show the end of train.py's output, then
    'ERROR: smoke training failed' with --keep-project-on-failure and the skip variable."""
    train = "import sys\nfor i in range(100):\n    print('line', i)\nsys.exit('boom: bad tensor')\n"
    project = fake_project(tmp_path / "p", train)
    assert hook.main(project, env_for()) == 1
    err = capsys.readouterr().err
    assert "boom: bad tensor" in err
    assert "line 99" in err
    assert "line 10\n" not in err  # only the tail
    last = err.strip().splitlines()[-1]
    assert last.startswith("ERROR: smoke training failed (exit status 1")
    assert "--keep-project-on-failure" in last
    assert f"{SKIP_ENV}=1" in last


def test_smoke_run_that_hangs_is_stopped(hook, tmp_path, capsys, monkeypatch):
    """A smoke run that exceeds the time limit is stopped and reported as a failure."""
    monkeypatch.setattr(hook, "SMOKE_TIMEOUT_S", 1)
    train = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    project = fake_project(tmp_path / "p", train)
    assert hook.main(project, env_for()) == 1
    err = capsys.readouterr().err
    assert "ERROR: smoke training failed: no result after 1 s" in err
    assert "started" in err


def test_pycache_written_by_the_smoke_run_is_removed(hook, tmp_path, capsys):
    """__pycache__ folders the smoke run creates are removed; the project is left as generated."""
    train = """\
import os
os.makedirs("model/__pycache__")
open("model/__pycache__/model.cpython-311.pyc", "wb").close()
os.makedirs("__pycache__")
"""
    project = fake_project(tmp_path / "p", train)
    (project / "model").mkdir()
    before = sorted(project.rglob("*"))
    assert hook.main(project, env_for()) == 0, capsys.readouterr().err
    assert sorted(project.rglob("*")) == before


def test_smoke_run_writing_into_the_project_is_an_error(hook, tmp_path, capsys):
    """A smoke run that writes outputs (saved/ runs) or edits files in the project fails the hook,
    naming what it wrote."""
    train = """\
import os
os.makedirs("saved/run1")
open("saved/run1/checkpoint.pth", "w").close()
with open("config.json", "a") as f:
    f.write(" ")
"""
    project = fake_project(tmp_path / "p", train)
    assert hook.main(project, env_for()) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: the smoke run wrote into the project: config.json, saved")
    assert "saved/run1/checkpoint.pth" in err


def test_missing_python_with_torch_is_a_notice_not_a_failure(hook, tmp_path, capsys, monkeypatch):
    """Without any Python that has torch, the project is kept (exit 0) and the user is told the
    smoke check was skipped and the exact commands to run it later."""
    monkeypatch.setattr(hook, "choose_python", lambda environ, modules: None)
    project = fake_project(tmp_path / "p", "raise SystemExit('must not run')\n")
    assert hook.main(project, env_for()) == 0
    out = capsys.readouterr().out
    assert (
        "smoke check was skipped because no Python with torch, numpy, jsonschema, filelock, tensorboard was found"
        in out
    )
    assert f"cd {hook.PROJECT_SLUG} && pip install -r requirements.txt -c constraints.txt && " in out
    assert "&& python train.py -c config.json --smoke" in out


@pytest.mark.parametrize("answer", [False, "False", "no", "0"])
def test_smoke_answer_false_skips_the_run(hook, tmp_path, capsys, answer):
    """_smoke_run false (bool or word) skips train.py and still exits 0 with next steps."""
    project = fake_project(tmp_path / "p", "raise SystemExit('must not run')\n")
    assert hook.main(project, env_for(), smoke_answer=answer) == 0
    assert "Smoke run skipped (_smoke_run is false)" in capsys.readouterr().out


def test_rendered_hook_runs_as_a_script(tmp_path):
    """The rendered hook runs as cookiecutter runs it: `python hook.py` in the project folder."""
    hook = load_hook("post_gen_project", tmp_path)
    project = fake_project(tmp_path / "p", CHECKING_TRAIN_PY)
    result = run([sys.executable, hook.__file__], cwd=project, timeout=60, env={SKIP_ENV: ""})
    assert result.returncode == 0, result.stdout
    assert "Smoke run passed on cpu" in result.stdout


def test_hooks_render_when_cruft_drops_private_variables(tmp_path):
    """Under cruft, which drops `_` variables, both hooks still render and the smoke run stays
    on (PYTORCH_TEMPLATE_SKIP_SMOKE=1 is the switch that works there)."""
    pre = load_hook("pre_gen_project", tmp_path, drop_private=True)
    assert pre.ANSWERS["_smoke_run"] is None
    assert pre.validate(pre.ANSWERS, "2.7.1") == []
    post = load_hook("post_gen_project", tmp_path, drop_private=True)
    assert post.SMOKE_RUN_ANSWER is None
    assert post.skip_reason({}, post.SMOKE_RUN_ANSWER) is None
    assert post.skip_reason({SKIP_ENV: "1"}, post.SMOKE_RUN_ANSWER) == f"{SKIP_ENV} is set"


# --- cruft's throw-away renders (cruft update, cruft diff) --------------------------------------

CRUFT_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def load_hook_as_cruft_renders(tmp_path, commit=CRUFT_COMMIT, **answers):
    """Render and import the post-gen hook with the answers cruft adds to every render it makes
    (``_template`` and ``_commit``); helpers.load_hook cannot, as cookiecutter ignores extra
    answers that cookiecutter.json lacks."""
    context = render_context(**answers)
    context["cookiecutter"].update(_template="https://example.com/template.git", _commit=commit)
    source = (HOOKS / "post_gen_project.py").read_text(encoding="utf-8")
    path = tmp_path / f"post_gen_project_{uuid.uuid4().hex}.py"
    path.write_text(create_env_with_context(context).from_string(source).render(**context), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A project whose config check and training both fail loudly: a quiet hook ran neither.
LOUD_TRAIN_PY = "print('epoch 1/1  loss 2.3')\nraise SystemExit('the smoke run ran')\n"
LOUD_CHECK_PY = "raise SystemExit('the config check ran')\n"


@pytest.fixture
def cruft_render_dir():
    """A folder like the one cruft update and cruft diff render into: tempfile.TemporaryDirectory()."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def test_cruft_update_or_diff_render_only_removes_unused_files_and_prints_nothing(tmp_path, cruft_render_dir, capsys):
    """Inside `cruft update` and `cruft diff` (cruft's _commit answer, a TemporaryDirectory under
    the system temp folder) the hook removes the files of the options not chosen, so the diff
    is exact, and does nothing else: no config check, no smoke run, not one printed line, even
    with the smoke run switched on."""
    hook = load_hook_as_cruft_renders(tmp_path, sweeps=False)
    assert hook.CRUFT_COMMIT == CRUFT_COMMIT
    project = fake_project(cruft_render_dir / "my_project", LOUD_TRAIN_PY, check_py=LOUD_CHECK_PY)
    for relative in ("sweep.py", "data_loader/mnist.py", "tests/test_sweep.py"):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text("x", encoding="utf-8")
    (project / "config.schema.json").write_text(json.dumps({"properties": {"sweep": {}}}), encoding="utf-8")
    assert hook.main(project, env_for(**{SKIP_ENV: ""})) == 0
    assert capsys.readouterr() == ("", "")
    assert not (project / "sweep.py").exists()
    assert not (project / "data_loader" / "mnist.py").exists()
    assert not (project / "tests" / "test_sweep.py").exists()
    assert json.loads((project / "config.schema.json").read_text(encoding="utf-8")) == {"properties": {}}


def test_cruft_create_and_plain_bakes_still_check_and_smoke_run(tmp_path, cruft_render_dir, capsys):
    """`cruft create` (cruft's _commit answer, the user's output folder) and a plain cookiecutter
    bake (no _commit, even into a temporary folder) still get the config check and the smoke run."""
    created = load_hook_as_cruft_renders(tmp_path)
    project = fake_project(tmp_path / "out" / "my_project", CHECKING_TRAIN_PY)
    assert created.main(project, env_for()) == 0
    assert "Smoke run passed on cpu" in capsys.readouterr().out
    plain = load_hook("post_gen_project", tmp_path)
    assert plain.CRUFT_COMMIT is None
    project = fake_project(cruft_render_dir / "my_project", CHECKING_TRAIN_PY)
    assert plain.main(project, env_for()) == 0
    assert "Smoke run passed on cpu" in capsys.readouterr().out


def test_a_cruft_render_is_told_by_commit_and_temporary_folder_together(tmp_path, cruft_render_dir):
    """A render is a cruft update/diff render only with cruft's _commit answer and a project whose
    parent is a TemporaryDirectory() (``tmp`` and [a-z0-9_]) directly under the system temp
    folder: not a user's output folder, not mktemp's ``tmp.XXXXXXXXXX``, not deeper inside."""
    hook = load_hook("post_gen_project", tmp_path)
    root = cruft_render_dir.parent
    assert hook.is_cruft_rerender(cruft_render_dir / "my_project", CRUFT_COMMIT)
    assert hook.is_cruft_rerender(str(cruft_render_dir / "my_project"), CRUFT_COMMIT, temp_root=str(root))
    assert not hook.is_cruft_rerender(cruft_render_dir / "my_project", None)
    assert not hook.is_cruft_rerender(cruft_render_dir / "my_project", "")
    assert not hook.is_cruft_rerender(tmp_path / "out" / "my_project", CRUFT_COMMIT)
    assert not hook.is_cruft_rerender(cruft_render_dir / "deeper" / "my_project", CRUFT_COMMIT)
    assert not hook.is_cruft_rerender(root / "tmp.AbCdEf1234" / "my_project", CRUFT_COMMIT)
    assert not hook.is_cruft_rerender(root / "work" / "my_project", CRUFT_COMMIT)
    # Another temp folder (TMPDIR set differently) is not the one cruft renders into.
    assert not hook.is_cruft_rerender(cruft_render_dir / "my_project", CRUFT_COMMIT, temp_root=str(tmp_path))


def test_a_cruft_render_is_recognised_through_a_linked_temp_folder(tmp_path):
    """On macOS the temp folder is reached through a link (/var -> /private/var): the paths are
    compared resolved, whichever side names the link."""
    real = tmp_path / "private" / "var"
    render = real / "tmpab12_xyz" / "my_project"
    render.mkdir(parents=True)
    link = tmp_path / "var"
    try:
        link.symlink_to(real, target_is_directory=True)
    except OSError:  # Windows without the right to make links
        pytest.skip("cannot create a symbolic link here")
    hook = load_hook("post_gen_project", tmp_path)
    assert hook.is_cruft_rerender(render, CRUFT_COMMIT, temp_root=str(link))
    assert hook.is_cruft_rerender(link / "tmpab12_xyz" / "my_project", CRUFT_COMMIT, temp_root=str(real))


def test_rendered_hook_is_silent_as_a_script_in_a_cruft_render(tmp_path, cruft_render_dir):
    """Run as cookiecutter runs it under cruft update (`python hook.py` in the rendered project,
    a TemporaryDirectory), the hook prints nothing and exits 0; PYTORCH_TEMPLATE_SKIP_SMOKE is
    not needed."""
    hook = load_hook_as_cruft_renders(tmp_path)
    project = fake_project(cruft_render_dir / "my_project", LOUD_TRAIN_PY, check_py=LOUD_CHECK_PY)
    env = {SKIP_ENV: "", "TMPDIR": str(cruft_render_dir.parent)}
    result = run([sys.executable, hook.__file__], cwd=project, timeout=60, env=env)
    assert (result.returncode, result.stdout) == (0, "")


# --- options ---------------------------------------------------------------------------------


def test_unchosen_option_files_are_removed_and_removal_is_idempotent(tmp_path):
    """The hook deletes the files of the options not chosen, and the sweep section from the config
    schema when sweeps are off; run again (as cruft does), it finds nothing more to do and does
    not fail."""
    options = {"dataset": "mnist", "config_format": "yaml", "tensorboard": False, "sweeps": False, "mlflow": False}
    options.update(github_actions=False, pre_commit=False, license="none")
    hook = load_hook("post_gen_project", tmp_path, **options)
    project = tmp_path / "p"
    for relative in (
        "data_loader/mnist.py",
        "data_loader/image_folder.py",
        "tests/test_digits.py",
        "tests/test_tensorboard.py",
        "sweep.py",
        "utils/search_space.py",
        "tests/test_sweep.py",
        "logger/mlflow_tracker.py",
        "tests/test_mlflow.py",
        "config.json",
        "config.yaml",
        ".github/workflows/ci.yml",
        ".pre-commit-config.yaml",
        "LICENSE",
    ):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text("x", encoding="utf-8")
    schema = {"properties": {"name": {"type": "string"}, "sweep": {"type": "object"}}}
    (project / "config.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    hook.remove_unused(project, hook.OPTIONS)
    hook.remove_unused(project, hook.OPTIONS)
    left = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())
    assert left == ["config.schema.json", "config.yaml", "data_loader/mnist.py"]
    assert json.loads((project / "config.schema.json").read_text(encoding="utf-8")) == {
        "properties": {"name": {"type": "string"}}
    }
    assert not (project / ".github").exists()


@pytest.mark.parametrize(
    ("options", "extra"),
    [
        pytest.param({}, ["tensorboard"], id="defaults"),
        pytest.param({"dataset": "mnist", "tensorboard": False}, ["torchvision"], id="mnist"),
        pytest.param(
            {"config_format": "yaml", "dataset": "image_folder"}, ["torchvision", "ruamel", "tensorboard"], id="yaml"
        ),
    ],
)
def test_smoke_run_needs_a_python_with_the_options_modules(tmp_path, options, extra):
    """The smoke run's interpreter must have what the chosen options import (torchvision for
    MNIST and image folders, ruamel.yaml for YAML), else it is skipped with a notice."""
    hook = load_hook("post_gen_project", tmp_path, **options)
    assert hook.required_modules(hook.OPTIONS) == ["torch", "numpy", "jsonschema", "filelock", *extra]
    assert hook.choose_python(env_for(), modules=["torch", "no_such_module_here"]) is None
