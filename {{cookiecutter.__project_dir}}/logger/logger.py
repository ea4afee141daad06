"""Console and file logging for the entry scripts (never configured at import time)."""

import contextlib
import functools
import logging
import logging.handlers
import sys
from pathlib import Path

from tqdm import tqdm

from utils.errors import in_project

LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_in_project = functools.lru_cache(maxsize=None)(in_project)


def own_debug_lines(record: logging.LogRecord) -> bool:
    """A handler filter: at verbosity 2, libraries' debug lines (PIL's, for every image read) would
    bury the run's own; those of the project's files stay."""
    return record.levelno > logging.DEBUG or _in_project(record.pathname)


class ConsoleHandler(logging.StreamHandler):
    """Writes each record through `tqdm.write`, which clears the progress bars on the terminal
    first and redraws them after: a line logged while a bar is shown (the checkpoint writer's
    "Saved ..." from its thread, say) gets a terminal line of its own instead of the bar's."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream, end=self.terminator)
            self.flush()
        except RecursionError:  # as logging.StreamHandler does
            raise
        except Exception:
            self.handleError(record)


def setup_logging(verbosity: int = 1) -> None:
    """Log to the console now and keep the records until `log_file` names the file.

    The run folder is created only after the config is validated, so early records (what was
    built from which config key) wait in memory and still reach the run's log file.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(LEVELS.get(verbosity, logging.INFO))
    console = ConsoleHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(own_debug_lines)
    root.addHandler(console)
    _keep_records(root)


@contextlib.contextmanager
def log_file(path: Path | None):
    """Append the log to `path` while the block runs (None: to no file), starting with the records
    kept so far; sweep.py gives each trial's run folder its own."""
    if path is None:
        yield
        return
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(FORMAT))
    file_handler.addFilter(own_debug_lines)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.handlers.MemoryHandler):
            handler.setTarget(file_handler)
            handler.flush()
            root.removeHandler(handler)
            handler.close()
    root.addHandler(file_handler)
    try:
        yield
    finally:
        root.removeHandler(file_handler)
        file_handler.close()
        _keep_records(root)  # for the next run of this process (sweep.py's next trial)


def _keep_records(root: logging.Logger) -> None:
    root.addHandler(logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1))
