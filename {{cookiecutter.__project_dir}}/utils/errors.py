"""Mistakes in what the user gave us: a one-line message and exit code 2, never a traceback.

Only config, command-line, checkpoint and data-file mistakes are `UserError`s. An exception raised
by your own code (a model, loss or data loader) is a bug: it keeps its traceback.
"""

import argparse
import difflib
import importlib.util
import re
import sys
import threading
import traceback
from pathlib import Path

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROJECT_DIR = Path(__file__).resolve().parents[1]
INSTALLED = {"site-packages", "dist-packages"}  # a virtual environment may live inside the project
CHECKING_CODE = {PROJECT_DIR / "parse_config.py", PROJECT_DIR / "utils" / "dry_run.py"}  # not the user's


class UserError(Exception):
    """Base class: a problem the user fixes by changing their input, not their code."""


class ConfigError(UserError):
    """A bad config file, config value or command-line option."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, incomplete or does not fit the config."""


class WriteError(UserError):
    """A file of the run (TensorBoard events, say) could not be written: disk full, no permission."""


class DataError(UserError):
    """A data file or folder that cannot be used; the message names it. Raise it from your own
    data loader for a one-line error instead of a traceback."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker re-raises this in the main process as DataError("Caught DataError in
        # DataLoader worker ...<its traceback>...DataError: <message>"): keep <message>.
        if message.startswith("Caught DataError"):
            message = message.rstrip().splitlines()[-1].split("DataError: ", 1)[-1]
        super().__init__(message)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), without terminal colour codes."""
    text = ANSI_ESCAPE.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def report(error: UserError, prefix: str = "") -> int:
    """Print a user error as one line on stderr; return its exit code."""
    print(f"error: {prefix}{first_line(error)}", file=sys.stderr)
    return 2


def did_you_mean(word: str, choices) -> str:
    """A hint naming the closest of `choices` (the same name in other case first), or ''."""
    choices = [str(c) for c in choices]
    same_case = [c for c in choices if c.lower() == str(word).lower()]
    close = same_case or difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def section_of(config: dict, dotted: str, where: str) -> dict:
    """The mapping that holds the value of `dotted` (a.b.c: config["a"]["b"]); the value itself may
    be missing, the sections above it may not. `where` begins the error message."""
    *parents, _ = dotted.split(".")
    node, walked = config, []
    for key in parents:
        walked.append(key)
        if not isinstance(node.get(key), dict):
            choices = [k for k, v in node.items() if isinstance(v, dict)]
            raise ConfigError(f"{where}: no section '{'.'.join(walked)}'{did_you_mean(key, choices)}")
        node = node[key]
    return node


def is_user_bug(exc: BaseException, raised_there: bool = False) -> bool:
    """True when `exc` is a `UserError`, or passed through the project's own code (your model, your
    loader; with `raised_there`: was raised in it), not through the code that builds and checks
    it: such an error keeps its traceback. A library refusing a value the config gave it directly
    (an optimizer's learning rate, a loss given the wrong shapes) is one line."""
    if isinstance(exc, UserError) or "in DataLoader worker process" in str(exc):
        return True  # (a worker's error carries the worker's traceback in its message)
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in frames[-1:] if raised_there else frames:
        path = Path(frame.filename).resolve()
        if in_project(path) and not frame.filename.startswith("<") and path not in CHECKING_CODE:
            return True
    return False


def in_project(path) -> bool:
    """Whether `path` belongs to this project (and not to a virtual environment inside it)."""
    path = Path(path).resolve()
    return path.is_relative_to(PROJECT_DIR) and not INSTALLED & set(path.parts)


def is_project_module(module_name: str) -> bool:
    """Whether the top-level package of `module_name` is a folder or file of this project, found
    without importing anything (a module's import alone can run code)."""
    try:
        spec = importlib.util.find_spec(module_name.partition(".")[0])
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    # (a built-in or frozen module such as sys has no location: its origin is a word, not a path)
    places = list(spec.submodule_search_locations or ([spec.origin] if spec.has_location else []))
    return bool(places) and all(Path(place).is_absolute() and in_project(place) for place in places)


def quiet_thread_os_errors(args) -> None:
    """A `threading.excepthook` that leaves an OSError of a background writer (TensorBoard's: disk
    full, folder removed) to the main thread, which reports it in one line; others as usual."""
    if not issubclass(args.exc_type, OSError):
        threading.__excepthook__(args)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit code 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def script_arguments(doc: str, resume_help: str | None, config_help: str) -> ArgumentParser:
    """The options every entry script shares: -c, -r (when `resume_help`), -d and --set."""
    parser = ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help=config_help)
    if resume_help:
        parser.add_argument("-r", "--resume", help=resume_help)
        parser.add_argument(
            "--trust-checkpoint",
            action="store_true",
            help="without -c, let the checkpoint's config name code outside this project (only for files you trust)",
        )
    parser.add_argument("-d", "--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N, mps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    return parser
