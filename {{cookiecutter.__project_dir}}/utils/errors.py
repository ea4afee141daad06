"""Errors caused by user input.

train.py and test.py print them as one line on stderr and exit with code 2, without a traceback:
the message alone must say what is wrong and how to fix it.
"""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name): for one-line reports."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UserError(Exception):
    """Base class: a problem the user can fix by changing their input."""


class ConfigError(UserError):
    """A bad config file, config value or command-line option."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or does not fit the config."""


class DataError(UserError):
    """A data file that cannot be read; the message names it."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker process re-raises this in the main process as DataError("Caught
        # DataError in DataLoader worker ...<its traceback>...DataError: <message>"): keep <message>.
        if message.startswith("Caught DataError"):
            message = message.rstrip().splitlines()[-1].split("DataError: ", 1)[-1]
        super().__init__(message)


class TrainingStopped(Exception):
    """Training ended early on purpose; `exit_code` is what train.py exits with."""

    exit_code: int


class Interrupted(TrainingStopped):
    """SIGINT or SIGTERM arrived; a checkpoint was saved. Exit code 128 + signal (130, 143)."""

    def __init__(self, signum: int, checkpoint) -> None:
        super().__init__(f"stopped by signal {signum}; resume with: python train.py -r {checkpoint}")
        self.exit_code = 128 + signum


class NonFiniteLoss(TrainingStopped):
    """The loss became NaN or infinite; the step was not applied. Exit code 3."""

    exit_code = 3
