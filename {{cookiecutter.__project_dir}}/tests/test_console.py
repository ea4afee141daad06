"""What the console shows while a progress bar is drawn: every log line on a terminal line of its
own, never appended to the bar's."""

import io
import logging
import sys
import threading

from logger import setup_logging
from utils.batches import progress


class Terminal(io.StringIO):
    """Records what is written, and says it is a terminal so that `progress` draws its bar."""

    def isatty(self) -> bool:
        return True


def screen_lines(text: str) -> list[str]:
    """The lines a terminal shows for `text`: a carriage return goes back to the start of the line,
    and what follows overwrites what was there."""
    lines = []
    for written in text.split("\n"):
        line = ""
        for part in written.split("\r"):
            line = part + line[len(part) :]
        lines.append(line.rstrip())
    return lines


def on_one_terminal(monkeypatch) -> Terminal:
    """stdout and stderr on one terminal, as in a shell, and the project's logging set up on it.
    Called in the test itself: pytest puts its own sys.stdout and sys.stderr back between a
    fixture and the test (conftest.py's `console_logging_removed` takes the handlers away)."""
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    setup_logging(1)
    return screen


def test_a_line_logged_from_another_thread_while_a_bar_is_drawn_gets_a_line_of_its_own(monkeypatch):
    """The checkpoint writer's "Saved ..." comes from its thread while the next epoch's bar is on
    the screen: the bar is cleared first, the line written, the bar drawn again below it."""
    terminal = on_one_terminal(monkeypatch)
    saved = "Saved saved/Digits/run/checkpoint-epoch1.pth"
    for step, _ in enumerate(progress(range(5), "epoch 2")):
        if step == 2:
            writer = threading.Thread(target=logging.getLogger("utils.checkpoint").info, args=(saved,))
            writer.start()
            writer.join()
    written = terminal.getvalue()
    assert "epoch 2:" in written.split(saved)[0]  # the bar was on the screen when the line came
    lines = screen_lines(written)
    assert saved in lines, lines
    assert not [line for line in lines if "Saved" in line and line != saved]


def test_without_a_bar_a_log_line_is_written_as_it_is(monkeypatch):
    """With no bar on the screen (stderr is not a terminal, or between bars), a record is its
    message and a newline, nothing more."""
    terminal = on_one_terminal(monkeypatch)
    logging.getLogger("train").info("Run folder: %s", "saved/Digits/run")
    assert terminal.getvalue() == "Run folder: saved/Digits/run\n"
