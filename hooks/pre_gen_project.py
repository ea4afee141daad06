"""Check the answers before cookiecutter writes any file of the project.

Runs on cookiecutter's own interpreter, standard library only. Every problem found is
reported at once, one line each, as ``ERROR: <what is wrong> - <how to fix it>`` on stderr,
and the hook exits 1, so cookiecutter stops and deletes the (still empty) project folder.

The answers are embedded below only as JSON data; they never become code.
"""

import json
import keyword
import re
import sys

ANSWERS = json.loads(
    r"""
{
  "project_name": {{ cookiecutter.project_name | tojson }},
  "project_slug": {{ cookiecutter.project_slug | tojson }},
  "description": {{ cookiecutter.description | tojson }},
  "author_name": {{ cookiecutter.author_name | tojson }},
  "dataset": {{ cookiecutter.dataset | tojson }},
  "config_format": {{ cookiecutter.config_format | tojson }},
  "tensorboard": {{ cookiecutter.tensorboard | tojson }},
  "sweeps": {{ cookiecutter.sweeps | tojson }},
  "mlflow": {{ cookiecutter.mlflow | tojson }},
  "github_actions": {{ cookiecutter.github_actions | tojson }},
  "pre_commit": {{ cookiecutter.pre_commit | tojson }},
  "license": {{ cookiecutter.license | tojson }},
  "python_version": {{ cookiecutter.python_version | tojson }},
  "_smoke_run": {{ cookiecutter.get("_smoke_run", none) | tojson }}
}
""".strip()
)

MIN_COOKIECUTTER = (2, 7)
# The choices of cookiecutter.json; answers from a replay file or --no-input bypass its checks.
CHOICES = {
    "dataset": ("digits", "mnist", "image_folder"),
    "config_format": ("json", "yaml"),
    "license": ("MIT", "BSD-3-Clause", "Apache-2.0", "none"),
    "python_version": ("3.10", "3.11", "3.12"),
}
YES_NO_OPTIONS = ("tensorboard", "sweeps", "mlflow", "github_actions", "pre_commit")
MAX_PROJECT_NAME = 100
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]*")

# Names the project folder must not take: modules the generated project imports, its own
# top-level modules and packages, and tools it is run with. The standard library is added below.
RESERVED_NAMES = frozenset(
    {
        # third-party modules the project imports or is run with
        "torch",
        "torchvision",
        "torchaudio",
        "numpy",
        "tensorboard",
        "tqdm",
        "yaml",
        "ruamel",
        "jsonschema",
        "filelock",
        "optuna",
        "matplotlib",
        "mlflow",
        "sqlalchemy",
        "alembic",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "packaging",
        "pytest",
        "conftest",
        "setuptools",
        "pip",
        "cookiecutter",
        # the project's own modules and folders
        "base",
        "config",
        "data",
        "data_loader",
        "export",
        "logger",
        "model",
        "parse_config",
        "predict",
        "saved",
        "slurm",
        "sweep",
        "test",
        "tests",
        "train",
        "trainer",
        "utils",
    }
)
STDLIB_NAMES = frozenset(getattr(sys, "stdlib_module_names", ()))
# Folder names Windows refuses, whatever the extension or case.
WINDOWS_DEVICE_NAMES = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
)
SOFT_KEYWORDS = frozenset(getattr(keyword, "softkwlist", ()))

# The words cookiecutter 2.7 itself accepts for a boolean variable.
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})


def is_control(char):
    """Return True for characters that must not appear in a single-line answer."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0 or char in "\u2028\u2029"


def parse_version(text):
    """Return the leading numeric release of a version string, e.g. '2.10.0rc1' -> (2, 10, 0)."""
    numbers = []
    for part in str(text).split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.group() != part:
            break
    return tuple(numbers)


def check_cookiecutter_version(version):
    """Return the problems with the running cookiecutter version (an empty list when fine)."""
    wanted = ".".join(map(str, MIN_COOKIECUTTER))
    fix = f"upgrade it: pip install 'cookiecutter>={wanted}' (or pipx upgrade cookiecutter)"
    found = parse_version(version)
    if not found or found < MIN_COOKIECUTTER:
        return [f"cookiecutter {version} is too old, this template needs >= {wanted} - {fix}"]
    return []


def check_slug(slug):
    """Return the problems with project_slug (an empty list when it is usable)."""
    fix = "choose a lowercase Python identifier such as 'my_project' (--no-input project_slug=...)"
    if not isinstance(slug, str) or not slug:
        return [f"project_slug is empty - {fix}"]
    problems = []
    if any(sep in slug for sep in ("/", "\\")) or ".." in slug:
        problems.append(f"project_slug {slug!r} contains a path separator or '..' - {fix}")
    if any(quote in slug for quote in "'\"`"):
        problems.append(f"project_slug {slug!r} contains a quote - {fix}")
    if any(char.isspace() for char in slug):
        problems.append(f"project_slug {slug!r} contains whitespace - {fix}")
    if not slug.isascii():
        problems.append(f"project_slug {slug!r} contains non-ASCII characters - {fix}")
    if problems:
        return problems
    if SLUG_PATTERN.fullmatch(slug) is None:
        if slug[0].isdigit():
            why = "starts with a digit"
        elif slug != slug.lower():
            why = "contains uppercase letters"
        else:
            why = "is not a lowercase identifier (letters, digits, '_', starting with a letter)"
        return [f"project_slug {slug!r} {why} - {fix}"]
    if keyword.iskeyword(slug) or slug in SOFT_KEYWORDS:
        return [f"project_slug {slug!r} is a Python keyword - {fix}"]
    if slug in RESERVED_NAMES:
        return [f"project_slug {slug!r} would shadow the module or folder {slug!r} the project uses - {fix}"]
    if slug in STDLIB_NAMES:
        return [f"project_slug {slug!r} would shadow the standard-library module {slug!r} - {fix}"]
    if slug in WINDOWS_DEVICE_NAMES:
        return [f"project_slug {slug!r} is a device name Windows cannot use as a folder - {fix}"]
    return []


def check_text(key, value, max_length=None):
    """Return the problems with a free-text, single-line answer."""
    fix = f"give {key} as one line of plain text (--no-input {key}=...)"
    if not isinstance(value, str):
        return [f"{key} must be text, got {type(value).__name__} - {fix}"]
    problems = []
    if any(char in value for char in "\r\n\u2028\u2029"):
        problems.append(f"{key} {value!r} spans several lines - {fix}")
    elif any(is_control(char) for char in value):
        problems.append(f"{key} {value!r} contains control characters - {fix}")
    if max_length is not None and len(value) > max_length:
        problems.append(f"{key} is {len(value)} characters long - shorten it to {max_length}")
    return problems


def check_smoke_run(value):
    """Return the problems with the private _smoke_run switch (a bool or a yes/no word)."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return []
    return [
        f"_smoke_run {value!r} is not a yes/no value - use true or false "
        "(or set PYTORCH_TEMPLATE_SKIP_SMOKE=1 to skip the smoke run)"
    ]


def check_choice(key, value):
    """Return the problems with the answer to a choice variable."""
    allowed = CHOICES[key]
    if value in allowed:
        return []
    close = [choice for choice in allowed if str(value).strip().lower() == choice.lower()]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return [f"{key} {value!r} is not one of {', '.join(allowed)}{hint} - pass one of them (--no-input {key}=...)"]


def check_yes_no(key, value):
    """Return the problems with the answer to a yes/no variable (a bool, or a word on the CLI)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return []
    return [f"{key} {value!r} is not a yes/no value - use true or false (--no-input {key}=false)"]


def validate(answers, version):
    """Return every problem with the answers and the cookiecutter version, in a stable order."""
    problems = check_cookiecutter_version(version)
    name = answers.get("project_name")
    if isinstance(name, str) and not name.strip():
        problems.append("project_name is empty - give the project a name (--no-input project_name=...)")
    else:
        problems += check_text("project_name", name, MAX_PROJECT_NAME)
    problems += check_slug(answers.get("project_slug"))
    problems += check_text("description", answers.get("description"))
    problems += check_text("author_name", answers.get("author_name"))
    for key in CHOICES:
        problems += check_choice(key, answers.get(key))
    for key in YES_NO_OPTIONS:
        problems += check_yes_no(key, answers.get(key))
    problems += check_smoke_run(answers.get("_smoke_run"))
    return problems


def installed_cookiecutter_version():
    """Return the version of the cookiecutter running this hook ('unknown' if not importable)."""
    try:
        import cookiecutter
    except ImportError:
        return "unknown"
    return getattr(cookiecutter, "__version__", "unknown")


def main():
    """Validate the embedded answers; print every problem and return 1 if there is any."""
    problems = validate(ANSWERS, installed_cookiecutter_version())
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
