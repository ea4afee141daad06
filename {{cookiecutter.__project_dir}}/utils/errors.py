"""Mistakes in what the user gave us: a one-line message and exit code 2, never a traceback.

Only config, command-line, checkpoint and data-file mistakes are `UserError`s. An exception raised
by your own code (a model, loss or data loader) is a bug: it keeps its traceback.
"""

import argparse
import re
import sys
import threading

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), without terminal colour codes."""
    text = ANSI_ESCAPE.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def report(error: UserError, prefix: str = "") -> int:
    """Print a user error as one line on stderr; return its exit code."""
    print(f"error: {prefix}{first_line(error)}", file=sys.stderr)
    return 2


def quiet_thread_os_errors(args) -> None:
    """A `threading.excepthook` that leaves an OSError of a background writer (TensorBoard's: disk
    full, folder removed) to the main thread, which reports it in one line; others as usual."""
    if not issubclass(args.exc_type, OSError):
        threading.__excepthook__(args)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit code 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")
