"""Errors caused by user input.

train.py and test.py print them as one line on stderr and exit with code 2, without a traceback:
the message alone must say what is wrong and how to fix it.
"""


class UserError(Exception):
    """Base class: a problem the user can fix by changing their input."""


class ConfigError(UserError):
    """A bad config file, config value or command-line option."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or does not fit the config."""
