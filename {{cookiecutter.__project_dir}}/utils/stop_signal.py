"""Turn SIGINT (Ctrl-C) and SIGTERM (preemption, `kill`) into a request to stop cleanly."""

import os
import signal
import threading


class StopSignal:
    """While active, the first SIGINT/SIGTERM only sets `received`; the training loop then saves
    at the next step boundary and exits. A second signal exits at once: checkpoints are written
    atomically, so even that cannot leave a broken file behind.
    """

    SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            os._exit(128 + signum)
        self.received = signum  # nothing else here: the loop decides when it is safe to stop

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():  # handlers only work there
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
