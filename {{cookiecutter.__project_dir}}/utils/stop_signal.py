"""Turn SIGINT (Ctrl-C) and SIGTERM (preemption, `kill`) into a request to stop cleanly."""

import os
import signal
import threading
import time


class StopSignal:
    """While active, the first SIGINT/SIGTERM only sets `received`; the training loop then saves
    at the next step boundary and exits. A later signal exits at once: checkpoints are written
    atomically, so even that cannot leave a broken file behind.

    A repeat within `SAME_REQUEST_S` seconds counts as the same request: Ctrl-C reaches every
    process of a terminal's process group, and torchrun then forwards a SIGTERM of its own.
    """

    SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)
    SAME_REQUEST_S = 2.0

    def __init__(self) -> None:
        self.received: int | None = None
        self._received_at = 0.0
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.received is None:
            self.received, self._received_at = signum, now  # the loop decides when it is safe to stop
        elif now - self._received_at > self.SAME_REQUEST_S:
            os._exit(128 + signum)

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():  # handlers only work there
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
